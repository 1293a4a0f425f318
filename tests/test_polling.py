"""When lumabot polls: the first poll learns from observed latencies; polls speed up only while
other jobs wait for a Luma slot."""

from __future__ import annotations

import asyncio
import time

from lumabot.testing.fake_luma import Outcome


def _gets(luma, generation_id):
    return [r.at for r in luma.requests if r.method == "GET" and r.generation_id == generation_id]


async def _settle_all(h, n):
    until = time.monotonic() + 20
    while True:
        jobs = await h.jobs()
        if len(jobs) >= n and all(j.settled for j in jobs):
            return jobs
        assert time.monotonic() < until
        await asyncio.sleep(0.02)


async def test_first_poll_starts_at_a_low_quantile_of_seen_latencies(start_bot, slack, luma):
    h = await start_bot(LUMABOT_FIRST_POLL_DELAY="0", LUMABOT_POLL_INTERVAL="0.05",
                        LUMABOT_MAX_QUEUED_PER_USER="50")
    luma.script(*[Outcome(latency=0.4) for _ in range(21)])
    for i in range(20):
        await h.command(f"warm up {i}", user_id=f"U{i}")
    await _settle_all(h, 20)
    early = _gets(luma, next(iter(luma.generations)))
    await h.command("after learning", user_id="U99")
    jobs = await _settle_all(h, 21)
    last = [j for j in jobs if j.params.prompt == "after learning"][0]
    gen = luma.generations[last.generation_id]
    gets = _gets(luma, last.generation_id)
    # Before learning, polling began at once; now it waits until ~0.4 s (the 5 % quantile).
    assert early[0] - luma.generations[next(iter(luma.generations))].created_at < 0.1
    assert gets[0] - gen.created_at >= 0.35
    assert len(gets) <= 3


async def test_polls_speed_up_only_while_work_waits(start_bot, slack, luma):
    h = await start_bot(LUMABOT_LUMA_CONCURRENCY="1", LUMABOT_FIRST_POLL_DELAY="0",
                        LUMABOT_POLL_INTERVAL="0.2")
    luma.script(Outcome(latency=1.0), Outcome(latency=1.0))
    await h.command("alone", user_id="U1")
    await luma.wait_for(lambda: len(luma.generations) == 1)
    await asyncio.sleep(0.5)
    alone = _gets(luma, next(iter(luma.generations)))
    await h.command("waiting", user_id="U2")  # now one job waits for the only slot
    await _settle_all(h, 2)
    first_id = next(iter(luma.generations))
    all_gets = _gets(luma, first_id)
    before = [t for t in all_gets if t <= alone[-1]]
    after = [t for t in all_gets if t > alone[-1]]
    gap_before = (before[-1] - before[0]) / max(1, len(before) - 1)
    gap_after = (after[-1] - after[0]) / max(1, len(after) - 1) if len(after) > 1 else 0.05
    assert gap_before >= 0.15 and gap_after <= 0.1, (gap_before, gap_after)
