"""Ack latency of `/imagine` while 1,000 generations are pending.

lumabot runs as a subprocess (`python -m lumabot run`, HTTP mode) so that the fakes' CPU is not
spent on its event loop; the fake Slack and fake Luma run in this process. Luma holds every
generation (pending forever). 1,000 `/imagine` commands from 50 people are sent; once Luma has
1,000 generations, 200 more commands are sent one after another and each one's HTTP response
time (signed POST to /slack/events -> the bot's 200) is the ack latency. The 200 extra jobs
wait for a slot (LUMABOT_LUMA_CONCURRENCY=1000), so the bot is also polling the pending ones
(capped at LUMABOT_MAX_POLLS_PER_SECOND, default 50 a second) and updating places in line
meanwhile. The probes are sent 50 ms apart (20 a second, over 10 s), so the bot's background
work goes on between them. Poll settings are the defaults except LUMABOT_FIRST_POLL_DELAY=0, so
that polling is in full swing when the probes start; nothing is time-scaled.

    python -m bench.ack
"""

from __future__ import annotations

import asyncio
import statistics
import time

from lumabot.testing.fake_luma import FakeLuma, Outcome

from .common import bucket_delta, bucket_quantile, fmt_seconds, proc_rig, quantile, table

PENDING, PROBES, USERS = 1000, 200, 50
TARGET_P99 = 0.100
LAG = "lumabot_event_loop_lag_seconds"
SPACING = 0.05  # seconds between probes
SETTLE = 20.0


async def run(**env: str) -> dict:
    """`env`: more settings for the bot (bench/replicas.py runs this on PostgreSQL)."""
    luma = FakeLuma(image_long_side=32, record_requests=False)
    luma.script(*[Outcome(hold=True) for _ in range(PENDING + PROBES)])
    async with proc_rig(luma, connections=50, **env, LUMABOT_LUMA_CONCURRENCY=str(PENDING),
                        LUMABOT_MAX_QUEUED_PER_USER=str(PENDING + PROBES),
                        LUMABOT_FIRST_POLL_DELAY="0", LUMABOT_GENERATION_TIMEOUT="3600") as r:
        t0 = time.monotonic()
        await r.post_pending(PENDING, users=USERS)
        await r.until_generations(PENDING, timeout=300)
        setup = time.monotonic() - t0
        # One full sweep of polls (1,000 at 50 a second), so polling is at its steady rate.
        await asyncio.sleep(SETTLE)
        before = luma.stats["gets"]
        lag0 = (await r.proc.metrics()).buckets(LAG)
        lat = []
        t1 = time.monotonic()
        for i in range(PROBES):
            await asyncio.sleep(max(0.0, t1 + i * SPACING - time.monotonic()))
            status, body, elapsed = await r.command(f"probe picture {i}", user_id=f"U{i % USERS:03d}")
            assert status == 200 and not body, (status, body)
            lat.append(elapsed)
        probe_wall = time.monotonic() - t1
        gets_rate = (luma.stats["gets"] - before) / probe_wall
        lag = bucket_delta((await r.proc.metrics()).buckets(LAG), lag0)
        luma.release_all()
    return {"p50": statistics.median(lat), "p99": quantile(lat, 0.99), "max": max(lat),
            "setup": setup, "gets_per_s": gets_rate, "lag_p99": bucket_quantile(lag, 0.99)}


def rows(f: dict) -> list[tuple[str, str, str, bool | None]]:
    return [
        ("ack p50 (1,000 pending)", fmt_seconds(f["p50"]), "", None),
        ("ack p99 (1,000 pending)", fmt_seconds(f["p99"]), "<= 100 ms", f["p99"] <= TARGET_P99),
        ("ack max", fmt_seconds(f["max"]), "", None),
        ("  bot event-loop lag p99 meanwhile", fmt_seconds(f["lag_p99"]), "", None),
        ("  Luma GETs per second meanwhile", f"{f['gets_per_s']:.0f}", "", None),
        ("time to get 1,000 pending", f"{f['setup']:.1f} s", "", None),
    ]


def main() -> None:
    print(f"ack: {PROBES} /imagine one after another while {PENDING} generations are pending "
          "(bot in a subprocess)")
    print(table(rows(asyncio.run(run()))))


if __name__ == "__main__":
    main()
