"""100,000 jobs waiting for a Luma slot in one process: ack latency, event-loop lag and memory
while commands keep arriving (issue #14, goal 2).

The database is filled before the bot starts: 100,000 `/imagine` jobs from 100 people, queued,
their status messages already posted (as after a restart; posting 100,000 status messages
through the fake Slack first would only measure that). lumabot (`python -m lumabot run`, a
subprocess) then resumes them all: concurrency 1 and a fake Luma that holds every generation,
so one job is in flight and the rest wait. Once it is ready, `/imagine` commands arrive at 20 a
second for 30 s from other people; each one's HTTP response time is an ack. Measured: ack
p50/p99, the bot's event-loop lag p99 over the window (its own histogram), its RSS, and its RSS
per waiting job over an empty bot's (a second bot on an empty database, same settings), taken
at the end of the window; and, in this process, what one parked job costs the scheduler.

A waiting job is parked: an id in the scheduler's line, no task and no live `Job` until its
turn. The resume claims the jobs 1,000 at a time and keeps only the ids of those it parks, so
its own memory follows the batch, not the line.

Targets (issue #14): ack p99 <= 20 ms, event-loop lag p99 <= 20 ms, memory <= 2 KB per waiting
job.

    python -m bench.waiting
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from lumabot.jobs.models import GenerationParams, Job
from lumabot.store import open_store
from lumabot.testing.fake_luma import FakeLuma, Outcome
from lumabot.testing.fake_slack import FakeSlack
from lumabot.testing.process import bot_env

from .common import BotProcess, Poster, bucket_delta, bucket_quantile, fmt_seconds, quantile, table

JOBS, USERS = 100_000, 100
RATE, WINDOW = 20.0, 30.0
TARGET_ACK, TARGET_LAG, TARGET_BYTES = 0.020, 0.020, 2048
LAG = "lumabot_event_loop_lag_seconds"
ENV = dict(LUMABOT_LUMA_CONCURRENCY="1", LUMABOT_MAX_QUEUED_PER_USER="1000000", LUMABOT_FIRST_POLL_DELAY="0",
           LUMABOT_GENERATION_TIMEOUT="3600", LUMABOT_LOG_LEVEL="WARNING")


async def fill(path: Path, team: str, jobs: int) -> None:
    store = open_store(f"sqlite:///{path}")
    await store.open()
    try:
        for i in range(jobs):
            job = Job(team_id=team, user_id=f"U{i % USERS:03d}", channel_id="C1", status_ts=f"1700000000.{i:06d}",
                      params=GenerationParams(prompt=f"waiting picture {i}"))
            await store.jobs.create(job)
    finally:
        await store.close()


async def parked_bytes(jobs: int) -> float:
    """What a parked waiting job costs the scheduler, in this process (tracemalloc)."""
    import tracemalloc
    import uuid

    from lumabot.runner.scheduler import Scheduler

    scheduler = Scheduler(1)
    scheduler.on_grant = lambda job_id: None
    scheduler.hold("in flight")
    ids = [uuid.uuid4().hex for _ in range(jobs)]  # (ids exist anyway: they are the jobs' keys)
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for i, job_id in enumerate(ids):
            scheduler.park(job_id, f"U{i % USERS:03d}")
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    return sum(d.size_diff for d in after.compare_to(before, "filename")) / jobs


async def rss_of_an_empty_bot(slack: FakeSlack, luma: FakeLuma) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        bot = BotProcess(bot_env(slack, luma, Path(tmp) / "empty.db", **ENV), Path(tmp))
        await bot.start()
        try:
            await asyncio.sleep(2.0)
            return bot.rss_bytes()
        finally:
            await bot.stop()


async def run(jobs: int = JOBS) -> dict:
    slack, luma = FakeSlack(), FakeLuma(image_long_side=16, record_requests=False)
    luma.script(*[Outcome(hold=True) for _ in range(jobs + 1000)])
    await slack.start()
    await luma.start()
    try:
        empty = await rss_of_an_empty_bot(slack, luma)
        with tempfile.TemporaryDirectory() as tmp:
            db = Path(tmp) / "bench.db"
            t0 = time.monotonic()
            await fill(db, slack.team_id, jobs)
            filled = time.monotonic() - t0
            bot = BotProcess(bot_env(slack, luma, db, **ENV), Path(tmp))
            t0 = time.monotonic()
            await bot.start(timeout=600)
            resumed = time.monotonic() - t0
            poster = Poster(slack, bot.url, connections=20)
            try:
                await asyncio.sleep(5.0)  # the resumed tasks settle into the line
                before, acks, peak = await bot.metrics(), [], bot.rss_bytes()
                w0 = time.monotonic()
                for i in range(int(RATE * WINDOW)):
                    await asyncio.sleep(max(0.0, w0 + i / RATE - time.monotonic()))
                    status, body, elapsed = await poster.command(f"late picture {i}", user_id=f"V{i % 50:03d}")
                    assert status == 200 and not body, (status, body)
                    acks.append(elapsed)
                    peak = max(peak, bot.rss_bytes())
                after = await bot.metrics()
                waiting = after.value("lumabot_queue_depth")
                now_rss = bot.rss_bytes()
            finally:
                await poster.close()
                await bot.stop()
    finally:
        await luma.stop()
        await slack.stop()
    lag = bucket_delta(after.buckets(LAG), before.buckets(LAG))
    return {"parked": await parked_bytes(jobs), "jobs": jobs, "filled": filled, "resumed": resumed, "waiting": waiting,
            "ack_p50": quantile(acks, 0.5), "ack_p99": quantile(acks, 0.99), "ack_max": max(acks),
            "lag_p99": bucket_quantile(lag, 0.99), "rss_mb": peak / 2**20, "empty_mb": empty / 2**20,
            "per_job": (now_rss - empty) / jobs}


def rows(f: dict) -> list[tuple[str, str, str, bool | None]]:
    return [
        (f"ack p50 / p99 ({f['jobs']:,} waiting, {RATE:.0f} commands a second)",
         f"{fmt_seconds(f['ack_p50'])} / {fmt_seconds(f['ack_p99'])}", "p99 <= 20 ms", f["ack_p99"] <= TARGET_ACK),
        ("  ack max", fmt_seconds(f["ack_max"]), "", None),
        ("event-loop lag p99", fmt_seconds(f["lag_p99"]), "<= 20 ms", f["lag_p99"] <= TARGET_LAG),
        ("memory per waiting job (RSS at the end over an empty bot's)", f"{f['per_job'] / 1024:.1f} KB", "<= 2 KB",
         f["per_job"] <= TARGET_BYTES),
        ("  a parked job in the scheduler (tracemalloc, in process)", f"{f['parked']:.0f} bytes", "", None),
        ("  bot RSS peak in the window / empty bot RSS", f"{f['rss_mb']:.0f} MB / {f['empty_mb']:.0f} MB", "", None),
        ("  jobs waiting (bot's gauge)", f"{f['waiting']:,.0f}", "", None),
        ("  time to fill the database / to resume and be ready",
         f"{f['filled']:.0f} s / {f['resumed']:.0f} s", "", None),
    ]


def main() -> None:
    print(f"waiting: {JOBS:,} jobs waiting for a slot (bot in a subprocess)")
    print(table(rows(asyncio.run(run()))))


if __name__ == "__main__":
    main()
