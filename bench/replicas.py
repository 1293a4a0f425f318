"""Several replicas on PostgreSQL: slot utilisation, takeover after kill -9, and ack times.

- utilisation: the capacity workload (200 jobs from 20 people, concurrency 10, generations of
  3 s +- 1 s, a 6 s rate window: Luma's timings scaled down 10x) sent alternately to two
  `lumabot run` replicas on one PostgreSQL, against one process on SQLite (bench/capacity.py's
  run, repeated here). Target: no more than 1 point below.
- takeover: 30 generations pending, all owned by replica A; A is killed with -9; the time until
  replica B polls the last of them again (LUMABOT_TAKEOVER_SECONDS=10 here; 30 by default).
- ack: bench/ack.py's run (1,000 generations pending, 200 probes) on PostgreSQL, with SQLite's
  figures from the same run for comparison.

The PostgreSQL is a throwaway cluster (lumabot/testing/postgres.py), fsync off.

    python -m bench.replicas
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from pathlib import Path

from lumabot.store import open_store
from lumabot.testing.fake_luma import FakeLuma, Outcome
from lumabot.testing.fake_slack import FakeSlack
from lumabot.testing.postgres import PostgresCluster
from lumabot.testing.process import bot_env

from . import ack, capacity
from .common import BotProcess, Poster, fmt_seconds, table
from lumabot.testing.store import job_ids, unsettled_count

TAKEOVER, ORPHANS = 10.0, 30


async def _utilisation_two_replicas(url: str, seed: int = 7) -> dict:
    rnd = random.Random(seed)
    luma = FakeLuma(latency_fn=lambda: rnd.uniform(2.0, 4.0), concurrency_limit=capacity.CONCURRENCY,
                    rpm_limit=30, rpm_window=6.0, concurrency_retry_after=6, image_long_side=32)
    slack = FakeSlack()
    await slack.start()
    await luma.start()
    env = dict(LUMABOT_DATABASE_URL=url, LUMABOT_LOG_LEVEL="WARNING",
               LUMABOT_LUMA_CONCURRENCY=str(capacity.CONCURRENCY), LUMABOT_LUMA_RATE_WINDOW="6",
               LUMABOT_POLL_INTERVAL="0.2", LUMABOT_FIRST_POLL_DELAY="2",
               LUMABOT_GENERATION_TIMEOUT="60", LUMABOT_MAX_QUEUED_PER_USER=str(capacity.JOBS),
               LUMABOT_QUEUE_UPDATE_INTERVAL="0.5", LUMABOT_MAX_POLLS_PER_SECOND="500")
    with tempfile.TemporaryDirectory() as tmp:
        procs = [BotProcess(bot_env(slack, luma, Path(tmp) / "unused.db", **env), Path(tmp)) for _ in range(2)]
        await asyncio.gather(*(p.start() for p in procs))
        posters = [Poster(slack, p.url) for p in procs]
        store = open_store(url)
        await store.open()
        try:
            users = [f"U{i:02d}" for i in range(capacity.USERS)]
            n = 0
            for k in range(capacity.JOBS // capacity.USERS):
                for u in users:
                    status, body, _ = await posters[n % 2].command(f"{u} picture {k}", user_id=u)
                    assert status == 200 and not body, body
                    n += 1
            while await unsettled_count(store):
                await asyncio.sleep(0.2)
            states = [(await store.jobs.get(i)).state.value for i in await job_ids(store)]
        finally:
            await store.close()
            for poster in posters:
                await poster.close()
            for p in procs:
                await p.stop()
            await luma.stop()
            await slack.stop()
    gens = list(luma.generations.values())
    wall = max(g.completes_at for g in gens) - min(g.created_at for g in gens)
    busy = sum(g.completes_at - g.created_at for g in gens)
    return {"utilisation": busy / (capacity.CONCURRENCY * wall),
            "failed": sum(1 for s in states if s != "done"), "429": luma.stats["429"],
            "429_concurrency": luma.stats["concurrency"]}


async def _takeover(url: str) -> dict:
    luma = FakeLuma(image_long_side=32)
    luma.script(*[Outcome(hold=True) for _ in range(ORPHANS)])
    slack = FakeSlack()
    await slack.start()
    await luma.start()
    env = dict(LUMABOT_DATABASE_URL=url, LUMABOT_LOG_LEVEL="WARNING", LUMABOT_FIRST_POLL_DELAY="0",
               LUMABOT_TAKEOVER_SECONDS=str(TAKEOVER), LUMABOT_LUMA_CONCURRENCY=str(ORPHANS),
               LUMABOT_MAX_QUEUED_PER_USER=str(ORPHANS), LUMABOT_GENERATION_TIMEOUT="600")
    with tempfile.TemporaryDirectory() as tmp:
        a, b = (BotProcess(bot_env(slack, luma, Path(tmp) / "unused.db", **env), Path(tmp)) for _ in range(2))
        await asyncio.gather(a.start(), b.start())
        poster = Poster(slack, a.url)
        try:
            for i in range(ORPHANS):
                status, body, _ = await poster.command(f"orphan {i}", user_id=f"U{i % 5}")
                assert status == 200 and not body, body
            while len(luma.generations) < ORPHANS or any(
                    not _gets_since(luma, g, 0.0) for g in luma.generations):
                await asyncio.sleep(0.1)
            a.kill9()
            killed = time.monotonic()
            await a.wait()
            while not all(_gets_since(luma, g, killed) for g in luma.generations):
                if time.monotonic() - killed > 10 * TAKEOVER:
                    raise RuntimeError("the orphans were not taken over")
                await asyncio.sleep(0.05)
            firsts = [min(_gets_since(luma, g, killed)) - killed for g in luma.generations]
            luma.release_all()
        finally:
            await poster.close()
            for p in (a, b):
                await p.stop()
            await luma.stop()
            await slack.stop()
    return {"last": max(firsts)}


def _gets_since(luma: FakeLuma, generation_id: str, since: float) -> list[float]:
    return [r.at for r in luma.requests
            if r.method == "GET" and r.path.endswith(generation_id) and r.at > since]


async def run() -> dict:
    cluster = PostgresCluster()
    cluster.start()
    try:
        await cluster.create_template()
        one_process = await capacity.run()
        two_replicas = await _utilisation_two_replicas(await cluster.new_database())
        takeover = await _takeover(await cluster.new_database())
        ack_pg = await ack.run(LUMABOT_DATABASE_URL=await cluster.new_database())
        ack_sqlite = await ack.run()
    finally:
        cluster.stop()
    return {"one": one_process, "two": two_replicas, "takeover": takeover,
            "ack_pg": ack_pg, "ack_sqlite": ack_sqlite}


def rows(f: dict) -> list[tuple[str, str, str, bool | None]]:
    one, two = f["one"]["utilisation"], f["two"]["utilisation"]
    return [
        ("slot utilisation, one process (SQLite)", f"{one * 100:.1f} %", "", None),
        ("slot utilisation, two replicas (PostgreSQL)", f"{two * 100:.1f} %",
         ">= one process - 1 point", two >= one - 0.01),
        ("  failed jobs; 429s (concurrency)", f"{f['two']['failed']}; {f['two']['429']} "
                                              f"({f['two']['429_concurrency']})", "0; rare", f["two"]["failed"] == 0),
        (f"takeover: kill -9 -> last of {ORPHANS} orphans polled again",
         f"{f['takeover']['last']:.1f} s", f"~ LUMABOT_TAKEOVER_SECONDS ({TAKEOVER:g} s) + 1 s",
         f["takeover"]["last"] <= TAKEOVER + 2.0),
        ("ack p50 / p99, 1,000 pending, PostgreSQL",
         f"{fmt_seconds(f['ack_pg']['p50'])} / {fmt_seconds(f['ack_pg']['p99'])}", "p99 <= 100 ms",
         f["ack_pg"]["p99"] <= ack.TARGET_P99),
        ("ack p50 / p99, 1,000 pending, SQLite",
         f"{fmt_seconds(f['ack_sqlite']['p50'])} / {fmt_seconds(f['ack_sqlite']['p99'])}", "", None),
    ]


def main() -> None:
    print("replicas: utilisation with two replicas, takeover after kill -9, ack on PostgreSQL")
    print(table(rows(asyncio.run(run()))))


if __name__ == "__main__":
    main()
