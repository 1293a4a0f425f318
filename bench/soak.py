"""A soak that shows leaks (issue #21): two `/imagine` a second for 30 minutes, no restarts,
Luma's latencies scaled down (2-4 s), every image delivered. Every minute: the bot's RSS, its
open file descriptors, its asyncio tasks (`lumabot_asyncio_tasks`) and the database's size (file
and WAL). Growth per hour is the slope of a least-squares line through the samples after the
warm-up (the first 10 minutes: the bot's caches fill, up to the 10,000 rows of its written-rows
cache and the poll planner's 500 latencies), and again over the second half alone (a leak keeps
climbing; a cache filling up levels off).

Targets: RSS growth <= 5 MB an hour after the warm-up; no growth of file descriptors or tasks:
their counts go up and down by one or two with the work in flight, so the figure is whether the
highest count of the last third of the soak is above the highest of its first third after the
warm-up (a leak climbs past it; the slopes are printed too).

    python -m bench.soak            # 30 minutes
    python -m bench.soak 10         # a shorter soak (minutes)
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import time
from pathlib import Path

from lumabot.testing.fake_luma import FakeLuma

from .common import proc_rig, table

MINUTES, WARM_UP, RATE = 30, 10, 2.0
RSS_TARGET_MB_PER_HOUR = 5.0


def slope_per_hour(points: list[tuple[float, float]]) -> float:
    """The least-squares slope of (seconds, value) points, per hour."""
    n = len(points)
    if n < 2:
        return float("nan")
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    var = sum((t - mx) ** 2 for t, _ in points)
    return 3600 * sum((t - mx) * (v - my) for t, v in points) / var if var else float("nan")


async def run(minutes: float = MINUTES) -> dict:
    rnd = random.Random(7)
    luma = FakeLuma(latency_fn=lambda: rnd.uniform(2.0, 4.0), image_long_side=32)
    async with proc_rig(luma, LUMABOT_FIRST_POLL_DELAY="1", LUMABOT_POLL_INTERVAL="0.3",
                        LUMABOT_MAX_QUEUED_PER_USER="50") as r:
        proc = r.proc
        db = Path(proc.env["LUMABOT_DATABASE_URL"][len("sqlite:///"):])
        samples: list[dict] = []
        stop = asyncio.Event()
        sent = failed = 0

        async def typing() -> None:
            nonlocal sent, failed
            i = 0
            next_at = time.monotonic()
            while not stop.is_set():
                status, body, _ = await r.command(f"a lighthouse {i}", user_id=f"U{i % 30:02d}")
                sent += 1
                failed += status != 200 or bool(body)
                i += 1
                next_at += 1 / RATE
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))

        async def sample(at: float) -> None:
            scrape = await proc.metrics()
            samples.append({
                "t": at, "rss": proc.rss_bytes() / 2**20, "fds": len(os.listdir(f"/proc/{proc.pid}/fd")),
                "tasks": scrape.value("lumabot_asyncio_tasks"),
                "db": sum(p.stat().st_size for p in (db, Path(f"{db}-wal")) if p.exists()) / 2**20,
                "delivered": scrape.value("lumabot_jobs_finished_total", outcome="done")})

        typer = asyncio.ensure_future(typing())
        start = time.monotonic()
        for minute in range(int(minutes) + 1):
            await asyncio.sleep(max(0.0, start + 60 * minute - time.monotonic()))
            await sample(60.0 * minute)
            last = samples[-1]
            print(f"   {minute:3d} min: RSS {last['rss']:.1f} MB, {last['fds']} fds, {last['tasks']:.0f} tasks, "
                  f"database {last['db']:.1f} MB, {last['delivered']:.0f} delivered", flush=True)
        stop.set()
        await typer
    after = [s for s in samples if s["t"] >= WARM_UP * 60]
    late = [s for s in samples if s["t"] >= minutes * 30]
    third = max(1, len(after) // 3)
    climb = {k: max(s[k] for s in after[-third:]) - max(s[k] for s in after[:third]) if after else 0
             for k in ("fds", "tasks")}
    return {"minutes": minutes, "sent": sent, "failed": failed, "samples": samples,
            **{f"{k}_slope": slope_per_hour([(s["t"], s[k]) for s in after]) for k in ("rss", "fds", "tasks", "db")},
            **{f"{k}_late": slope_per_hour([(s["t"], s[k]) for s in late]) for k in ("rss", "fds", "tasks")},
            **{f"{k}_climb": v for k, v in climb.items()}}


def rows(f: dict) -> list[tuple[str, str, str, bool | None]]:
    first, last = f["samples"][0], f["samples"][-1]
    return [
        (f"RSS growth after {WARM_UP} min warm-up ({f['minutes']:.0f} min soak)", f"{f['rss_slope']:+.1f} MB/h",
         f"<= {RSS_TARGET_MB_PER_HOUR:.0f} MB/h", f["rss_slope"] <= RSS_TARGET_MB_PER_HOUR),
        ("open file descriptors: last third's highest over the first third's (slope)",
         f"{f['fds_climb']:+d} ({f['fds_slope']:+.1f}/h)", "<= 0", f["fds_climb"] <= 0),
        ("asyncio tasks: last third's highest over the first third's (slope)",
         f"{f['tasks_climb']:+.0f} ({f['tasks_slope']:+.1f}/h)", "<= 0", f["tasks_climb"] <= 0),
        ("database size (file + WAL), growth", f"{f['db_slope']:+.1f} MB/h", "", None),
        ("  second half alone: RSS / fds / tasks growth",
         f"{f['rss_late']:+.1f} MB/h / {f['fds_late']:+.1f} / {f['tasks_late']:+.1f}", "", None),
        ("  RSS first / last sample", f"{first['rss']:.0f} / {last['rss']:.0f} MB", "", None),
        ("  fds min / max after the warm-up", f"{min(s['fds'] for s in f['samples'] if s['t'] >= WARM_UP * 60)} / "
                                             f"{max(s['fds'] for s in f['samples'] if s['t'] >= WARM_UP * 60)}", "", None),
        ("  fds / tasks at the last sample", f"{last['fds']} / {last['tasks']:.0f}", "", None),
        ("  commands sent / refused / delivered", f"{f['sent']} / {f['failed']} / {last['delivered']:.0f}", "", None),
    ]


def main() -> None:
    minutes = float(sys.argv[1]) if len(sys.argv) > 1 else MINUTES
    print(table(rows(asyncio.run(run(minutes)))))


if __name__ == "__main__":
    main()
