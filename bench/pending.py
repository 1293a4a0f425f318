"""10,000 generations pending at once: the bot's memory, CPU, event-loop lag and poll rate.

lumabot runs as a subprocess (`python -m lumabot run`, HTTP mode), so its resident memory
(/proc/<pid>/status VmRSS) and CPU time (/proc/<pid>/stat utime + stime) are its own; the fake
Slack and fake Luma run in this process (the fake Luma without request records, to save memory).
Luma holds every generation. 10,000 `/imagine` commands from 100 people are posted, 100 at a
time; once Luma has 10,000 generations, a 30 s window measures the bot at rest with everything
pending: peak RSS (sampled every 0.5 s), CPU (% of one core), event-loop lag (the bot's own
`lumabot_event_loop_lag_seconds` histogram, a 100 ms timer: the difference of its buckets
across the window; a quantile is reported as the upper bound of its bucket) and Luma GETs per
second. Then every generation completes at once and the time to deliver all 10,000 images is
reported (informational: at the default cap of 50 polls a second, noticing 10,000 completions
takes 200 s by design).

Settings: LUMABOT_LUMA_CONCURRENCY=10000, LUMABOT_MAX_QUEUED_PER_USER=10000, default poll
settings (every 2 s, at most LUMABOT_MAX_POLLS_PER_SECOND=50 polls a second) except
LUMABOT_FIRST_POLL_DELAY=0 so that polling starts at once, and LUMABOT_GENERATION_TIMEOUT=3600
so that no job times out while the benchmark holds it. Nothing is time-scaled.

    python -m bench.pending
"""

from __future__ import annotations

import asyncio
import time

from lumabot.testing.fake_luma import FakeLuma, Outcome

from .common import bucket_delta, bucket_quantile, fmt_seconds, proc_rig, table

JOBS, USERS, POSTING = 10_000, 100, 100
WINDOW = 30.0
DELIVERY_WAIT = 300.0  # give up waiting for deliveries after this long
TARGET_RSS_MB, TARGET_LAG_P99 = 300, 0.050
LAG = "lumabot_event_loop_lag_seconds"


async def run(jobs: int = JOBS) -> dict:
    luma = FakeLuma(image_long_side=16, record_requests=False)
    luma.script(*[Outcome(hold=True) for _ in range(jobs)])
    async with proc_rig(luma, connections=POSTING, LUMABOT_LUMA_CONCURRENCY=str(jobs),
                        LUMABOT_MAX_QUEUED_PER_USER=str(jobs), LUMABOT_FIRST_POLL_DELAY="0",
                        LUMABOT_GENERATION_TIMEOUT="3600") as r:
        bot = r.proc
        t0 = time.monotonic()
        acks = await r.post_pending(jobs, users=USERS, at_once=POSTING)
        posted = time.monotonic() - t0
        await r.until_generations(jobs, timeout=600 - posted, every=0.2)
        created = time.monotonic() - t0

        # -- the steady window ------------------------------------------------------------------
        before = await bot.metrics()
        cpu0, gets0, w0 = bot.cpu_seconds(), luma.stats["gets"], time.monotonic()
        peak = 0
        ticks: list[tuple[float, int]] = []  # (time, GETs so far), every 0.5 s
        while time.monotonic() - w0 < WINDOW:
            peak = max(peak, bot.rss_bytes())
            ticks.append((time.monotonic(), luma.stats["gets"]))
            await asyncio.sleep(0.5)
        after = await bot.metrics()
        cpu1, gets1, w1 = bot.cpu_seconds(), luma.stats["gets"], time.monotonic()
        peak = max(peak, bot.rss_bytes())
        ticks.append((w1, gets1))
        burst = max((g2 - g1) / (t2 - t1) for (t1, g1), (t2, g2) in zip(ticks, ticks[2:]))
        lag = bucket_delta(after.buckets(LAG), before.buckets(LAG))
        hwm = bot.peak_rss_bytes()
        in_flight = after.value("lumabot_luma_in_flight")

        # -- everything completes at once -------------------------------------------------------
        luma.release_all()
        r0 = time.monotonic()
        delivered = 0
        while time.monotonic() - r0 < DELIVERY_WAIT:
            delivered = sum(1 for f in r.slack.files if f.shared)
            if delivered >= jobs:
                break
            await asyncio.sleep(1.0)
        delivery_wall = time.monotonic() - r0
        acks.sort()
    window = w1 - w0
    return {
        "jobs": jobs, "posted": posted, "created": created,
        "ack_p99": acks[int(0.99 * (len(acks) - 1))],
        "rss_peak_mb": peak / 2**20, "hwm_mb": hwm / 2**20,
        "cpu_pct": 100 * (cpu1 - cpu0) / window,
        "lag_p50": bucket_quantile(lag, 0.50), "lag_p99": bucket_quantile(lag, 0.99),
        "lag_samples": lag.get(float("inf"), 0.0),
        "gets_per_s": (gets1 - gets0) / window, "gets_burst": burst, "in_flight": in_flight,
        "delivered": delivered, "delivery_wall": delivery_wall,
        "log_problems": len(r.proc.log_problems()),
    }


def rows(f: dict) -> list[tuple[str, str, str, bool | None]]:
    n = f["jobs"]
    done = f"{f['delivered']:,} of {n:,} in {f['delivery_wall']:.0f} s"
    return [
        (f"bot RSS, peak ({n:,} pending)", f"{f['rss_peak_mb']:.0f} MB", "<= 300 MB",
         f["rss_peak_mb"] <= TARGET_RSS_MB),
        ("generations in flight (bot's gauge)", f"{f['in_flight']:,.0f}", "", None),
        ("bot RSS high-water mark since start", f"{f['hwm_mb']:.0f} MB", "", None),
        ("bot CPU (of one core)", f"{f['cpu_pct']:.0f} %", "", None),
        ("event-loop lag p50", fmt_seconds(f["lag_p50"]), "", None),
        ("event-loop lag p99", fmt_seconds(f["lag_p99"]), "<= 50 ms", f["lag_p99"] <= TARGET_LAG_P99),
        ("Luma GETs per second, window mean / busiest 1 s",
         f"{f['gets_per_s']:.0f} / {f['gets_burst']:.0f}", "cap 50", None),
        (f"time to create {n:,} jobs ({POSTING} commands at a time)", f"{f['created']:.0f} s", "", None),
        ("  /imagine acked per second meanwhile", f"{f['jobs'] / f['posted']:.0f}", "", None),
        ("  ack p99 meanwhile (queueing: 100 in flight)", fmt_seconds(f["ack_p99"]), "", None),
        ("delivered after all complete at once", done, "", None),
        ("bot log lines at WARNING or above", str(f["log_problems"]), "", None),
    ]


def main() -> None:
    print(f"pending: {JOBS:,} generations pending at once, {WINDOW:.0f} s window (bot in a subprocess)")
    print(table(rows(asyncio.run(run()))))


if __name__ == "__main__":
    main()
