"""Capacity benchmark: 200 queued jobs from 20 users, Luma concurrency 10.

Luma's latencies (30-60 s) and its 60 s rate window are scaled down 10x: generations take
3 s +- 1 s, the rate window is 6 s (30 requests per window, the old default), lumabot polls
every 0.2 s with a first poll after 2 s and a poll cap of 500 a second. Prints slot utilisation (busy slot-seconds over
10 x wall time), failed jobs, 429s and how long each person waited for a first image.

    python -m bench.capacity
    python -m bench.capacity --batches   # the same, half the people asking `--n 4` at a time,
                                         # beside everyone asking one at a time (8 images each)
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time

from lumabot.jobs.models import JobState
from lumabot.testing.fake_luma import FakeLuma

from .common import rig, table
from lumabot.testing.store import job_ids, unsettled_count

JOBS, USERS, CONCURRENCY = 200, 20, 10


async def run(seed: int = 7, *, batches: bool = False, per_user: int = JOBS // USERS) -> dict:
    """With `batches`, the even-numbered people ask for their images four at a time (`--n 4`)."""
    rnd = random.Random(seed)
    luma = FakeLuma(latency_fn=lambda: rnd.uniform(2.0, 4.0), concurrency_limit=CONCURRENCY,
                    rpm_limit=30, rpm_window=6.0, concurrency_retry_after=6, image_long_side=32)
    async with rig(luma, LUMABOT_LUMA_CONCURRENCY=str(CONCURRENCY), LUMABOT_LUMA_RATE_WINDOW="6",
                   LUMABOT_POLL_INTERVAL="0.2", LUMABOT_FIRST_POLL_DELAY="2",
                   LUMABOT_GENERATION_TIMEOUT="60", LUMABOT_MAX_QUEUED_PER_USER=str(JOBS),
                   LUMABOT_CONFIRM_ABOVE_USD="off",
                   LUMABOT_QUEUE_UPDATE_INTERVAL="0.5",
                   # time runs 10x faster, so rates run 10x higher: the poll cap scales too
                   LUMABOT_MAX_POLLS_PER_SECOND="500") as r:
        asked: dict[str, float] = {}
        users = [f"U{i:02d}" for i in range(USERS)]
        # Everyone asks for `per_user` images, in a burst; the first user asks first.
        t0 = time.monotonic()
        for n in range(per_user):
            for i, u in enumerate(users):
                batch = batches and i % 2 == 0
                if batch and n % 4:
                    continue  # asked for four at once
                asked.setdefault(u, time.monotonic())
                text = f"{u} picture {n} --n 4" if batch else f"{u} picture {n}"
                status, body, *_ = await r.command(text, user_id=u)
                assert status == 200 and not body, body
        store = r.bot.store
        while await unsettled_count(store):
            await asyncio.sleep(0.1)
        wall_end = time.monotonic()
        rows = [(j.user_id, j.state.value, j.finished_at, j.created_at)
                for i in await job_ids(store) if (j := await store.jobs.get(i))]
        gens = list(luma.generations.values())
        first_created = min(g.created_at for g in gens)
        last_done = max(g.completes_at for g in gens)
        busy = sum(g.completes_at - g.created_at for g in gens)
        wall = last_done - first_created
        firsts = {}
        for user, state, finished_at, created_at in rows:
            if state == JobState.DONE.value:
                firsts[user] = min(firsts.get(user, 1e18), finished_at)
        # created_at/finished_at are wall-clock; `asked` is monotonic: compare via t0 offsets.
        base = min(r_[3] for r_ in rows)
        wait = {u: firsts[u] - base - (asked[u] - t0) for u in firsts}
        waits = sorted(wait.values())
        batchers = [wait[u] for i, u in enumerate(users) if u in wait and i % 2 == 0]
        singles = [wait[u] for i, u in enumerate(users) if u in wait and i % 2 == 1]
        return {
            "first_wait_batch": statistics.median(batchers) if batches else None,
            "first_wait_single": statistics.median(singles) if batches else None,
            "utilisation": busy / (CONCURRENCY * wall),
            "failed": sum(1 for r_ in rows if r_[1] != JobState.DONE.value),
            "done": sum(1 for r_ in rows if r_[1] == JobState.DONE.value),
            "429": luma.stats["429"], "429_rate": luma.stats["rate"],
            "429_concurrency": luma.stats["concurrency"],
            "wall": wall_end - t0, "first_wait_median": statistics.median(waits),
            "first_wait_max": max(waits), "first_wait_min": min(waits),
            "gets_per_job": luma.stats["gets"] / len(gens),
        }


def report(f: dict) -> str:
    return table([
        ("slot utilisation", f"{f['utilisation'] * 100:.1f} %", ">= 95 %", f["utilisation"] >= 0.95),
        ("failed jobs", f"{f['failed']} of {f['done'] + f['failed']}", "0", f["failed"] == 0),
        ("429s (rate / concurrency)", f"{f['429']} ({f['429_rate']} / {f['429_concurrency']})", "rare", None),
        ("first image, per person", f"min {f['first_wait_min']:.1f} s, median {f['first_wait_median']:.1f} s, "
                                    f"max {f['first_wait_max']:.1f} s", "", None),
        ("Luma GETs per job", f"{f['gets_per_job']:.1f}", "", None),
        ("wall time", f"{f['wall']:.1f} s", "", None),
    ])


def main() -> None:
    import sys

    if "--batches" in sys.argv:
        per_user = 8
        print(f"capacity with batches: {per_user * USERS} images from {USERS} people, concurrency {CONCURRENCY}, "
              "latency 3 s +- 1 s (10x scaled)")
        for batches in (False, True):
            f = asyncio.run(run(batches=batches, per_user=per_user))
            print("half the people asking --n 4 at a time:" if batches else "everyone asking one image at a time:")
            print(report(f))
            if batches:
                print(f"  first image, median: people asking --n 4 {f['first_wait_batch']:.1f} s, "
                      f"people asking one at a time {f['first_wait_single']:.1f} s")
        return
    print(f"capacity: {JOBS} jobs from {USERS} users, concurrency {CONCURRENCY}, latency 3 s +- 1 s (10x scaled)")
    print(report(asyncio.run(run())))


if __name__ == "__main__":
    main()
