"""One process tracks 1,000 pending generations at once and delivers every image once."""

from __future__ import annotations

import asyncio
import time

from lumabot.jobs.models import JobState
from lumabot.testing.fake_luma import Outcome

N = 1000


async def test_one_thousand_pending_generations(start_bot, slack, luma):
    h = await start_bot(LUMABOT_LUMA_CONCURRENCY=str(N), LUMABOT_POLL_INTERVAL="0.5",
                        LUMABOT_GENERATION_TIMEOUT="60", LUMABOT_DELIVERY_TIMEOUT="60")
    luma.script(*[Outcome(hold=True) for _ in range(N)])
    sem = asyncio.Semaphore(50)
    ack_times: list[float] = []

    async def one(i: int) -> None:
        async with sem:
            t0 = time.monotonic()
            status, _ = await h.command(f"picture number {i}", user_id=f"U{i % 37}")
            ack_times.append(time.monotonic() - t0)
            assert status == 200

    await asyncio.gather(*(one(i) for i in range(N)))
    await luma.wait_for(lambda: len(luma.generations) == N, timeout=60)
    assert luma.in_flight() == N  # all pending at Luma at once, all tracked by one process
    # While they are pending, the bot still answers at once.
    t0 = time.monotonic()
    status, body = await h.command("a cat --ar 4:3")
    assert status == 200 and "not an aspect ratio" in body
    assert time.monotonic() - t0 < 0.5

    luma.release_all()
    await slack.wait_for(lambda: len([f for f in slack.files if f.shared]) == N, timeout=90)
    jobs = await h.jobs()
    assert len(jobs) == N
    until = time.monotonic() + 30
    while not all(j.settled for j in jobs) and time.monotonic() < until:
        await asyncio.sleep(0.1)
        jobs = await h.jobs()
    assert all(j.state == JobState.DONE for j in jobs)
    # Every image in its own thread, once.
    roots = {j.status_ts for j in jobs}
    assert len(roots) == N
    shared = [f for f in slack.files if f.shared]
    assert sorted(f.thread_ts for f in shared) == sorted(roots)
    ack_times.sort()
    print(f"\nack p50={ack_times[N // 2] * 1000:.0f} ms p99={ack_times[int(N * .99)] * 1000:.0f} ms")
