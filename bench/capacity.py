"""Capacity benchmark: 200 queued jobs from 20 users, Luma concurrency 10.

Luma's latencies (30-60 s) and its 60 s rate window are scaled down 10x: generations take
3 s +- 1 s, the rate window is 6 s (30 requests per window, the old default), lumabot polls
every 0.2 s with a first poll after 2 s and a poll cap of 500 a second. Prints slot utilisation (busy slot-seconds over
10 x wall time), failed jobs, 429s and how long each person waited for a first image.

    python -m bench.capacity
    python -m bench.capacity --batches   # the same, half the people asking `--n 4` at a time,
                                         # beside everyone asking one at a time (8 images each)
    python -m bench.capacity --accounts 4  # the same workload in each of 4 workspaces at once
                                           # (OAuth mode), each on its own Luma account (its
                                           # admins set its key): utilisation per account
    python -m bench.capacity --accounts 4 --postgres   # the same on two replicas (PostgreSQL)
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


async def run_accounts(accounts: int, seed: int = 7, *, database: str | None = None) -> dict:
    """The capacity workload (JOBS jobs from USERS people) in each of `accounts` workspaces at
    once, each workspace on its own Luma account with the same limits (concurrency 10, 30
    requests a window): lumabot keeps a line and limits per account, so each account's slot
    utilisation should be the one-account figure. `database`: a PostgreSQL URL, two replicas
    on it (the commands dealt between them); else SQLite and one process."""
    import tempfile
    from pathlib import Path

    from lumabot.store import open_store
    from lumabot.testing.fake_slack.oauth import FakeSlackOrg

    from .common import BotProcess, bucket_delta, bucket_quantile
    from .tenants import LAG, REDIRECT, Org, at_most

    teams = [f"T{i:02d}" for i in range(accounts)]
    keys = {team: f"luma-key-{team}" for team in teams}
    org = FakeSlackOrg()
    for team in teams:
        org.add_workspace(team)
    # Each account draws its latencies from its own stream of the same seed: every account's
    # workload is the one-account run's (one shared stream dealt them out in arrival order, and
    # the lowest of n accounts was then partly the luck of the draw).
    draws = {key: random.Random(seed) for key in keys.values()}
    luma = FakeLuma(latency_of_key=lambda key: draws[key].uniform(2.0, 4.0), rpm_window=6.0,
                    concurrency_retry_after=6, image_long_side=32)
    for key in keys.values():
        luma.add_key(key, concurrency_limit=CONCURRENCY, rpm_limit=30)
    await org.start()
    await luma.start()
    with tempfile.TemporaryDirectory() as tmp:
        url = database or f"sqlite:///{Path(tmp) / 'bench.db'}"
        # lumabot in a process of its own (as deployed): the fakes here do not share its CPU.
        env = {
            "SLACK_CLIENT_ID": org.client_id, "SLACK_CLIENT_SECRET": org.client_secret,
            "SLACK_SIGNING_SECRET": org.signing_secret, "SLACK_API_URL": org.api_url,
            "SLACK_AUTHORIZE_URL": org.authorize_url, "SLACK_REDIRECT_URI": REDIRECT,
            "LUMA_AGENTS_API_KEY": luma.api_key, "LUMA_BASE_URL": luma.base_url,
            "LUMABOT_DATABASE_URL": url, "LUMABOT_HOST": "127.0.0.1",
            "LUMABOT_LOG_LEVEL": "WARNING", "LUMABOT_LUMA_CONCURRENCY": str(CONCURRENCY),
            "LUMABOT_LUMA_RATE_WINDOW": "6", "LUMABOT_POLL_INTERVAL": "0.2", "LUMABOT_FIRST_POLL_DELAY": "2",
            "LUMABOT_GENERATION_TIMEOUT": "600", "LUMABOT_MAX_QUEUED_PER_USER": str(JOBS),
            "LUMABOT_CONFIRM_ABOVE_USD": "off", "LUMABOT_QUEUE_UPDATE_INTERVAL": "0.5",
            "LUMABOT_MAX_POLLS_PER_SECOND": str(500 * accounts)}
        bots = [BotProcess({**env, "LUMABOT_REPLICA_ID": f"replica-{i}"}, Path(tmp)) for i in range(2 if database else 1)]
        for bot in bots:
            await bot.start()
        store = open_store(url)
        await store.open()
        slacks = [Org(org, bot.base) for bot in bots]
        try:
            for team in teams:
                await slacks[0].install(team)
                # what the admin's form saves (no LUMABOT_ENCRYPTION_KEY: stored as it is)
                await store.luma_keys.set(team, keys[team], by="UADMIN", at=time.time())
            users = [f"U{i:02d}" for i in range(USERS)]
            t0, cpu0, own0 = time.monotonic(), sum(b.cpu_seconds() for b in bots), time.process_time()
            lag0 = [(await b.metrics()).buckets(LAG) for b in bots]
            for n in range(JOBS // USERS):
                await at_most(50, [slacks[(i + n) % len(slacks)].command(team, f"{u} picture {n}", u)
                                   for i, (u, team) in enumerate((u, t) for u in users for t in teams)])
            while await unsettled_count(store):
                await asyncio.sleep(0.2)
            wall = time.monotonic() - t0
            cpu = (sum(b.cpu_seconds() for b in bots) - cpu0) / wall
            fakes_cpu = (time.process_time() - own0) / wall
            lag = max([bucket_quantile(bucket_delta((await b.metrics()).buckets(LAG), before), 0.99)
                       for b, before in zip(bots, lag0)])
            per_account = {}
            for team, key in keys.items():
                gens = luma.created_with(key)
                span = max(g.completes_at for g in gens) - min(g.created_at for g in gens)
                per_account[team] = (len(gens), sum(g.completes_at - g.created_at for g in gens) / (CONCURRENCY * span))
            detect, handover = _gaps(luma)
            steady = {team: _steady(luma.created_with(key)) for team, key in keys.items()}
            rows = [j for i in await job_ids(store) if (j := await store.jobs.get(i))]
        finally:
            for slack in slacks:
                await slack.close()
            await store.close()
            for bot in bots:
                await bot.stop()
            await luma.stop()
            await org.stop()
    return {"per_account": per_account, "wall": wall, "429": luma.stats["429"], "cpu": cpu, "fakes_cpu": fakes_cpu, "lag_ms": lag * 1000,
            "detect_ms": detect * 1000, "handover_ms": handover * 1000, "steady": steady,
            "failed": sum(1 for j in rows if j.state != JobState.DONE),
            "default_account_creates": len(luma.created_with(luma.api_key))}


def _steady(gens: list) -> float:
    """Slot utilisation away from the start and the end (the middle of the account's span,
    10 s in from each side): how well the line keeps its slots busy once it is full."""
    start = min(g.created_at for g in gens) + 10.0
    end = max(g.completes_at for g in gens) - 10.0
    busy = sum(max(0.0, min(g.completes_at, end) - max(g.created_at, start)) for g in gens)
    return busy / (CONCURRENCY * (end - start))


def _gaps(luma: FakeLuma) -> tuple[float, float]:
    """Where a slot's time goes between two generations, medians over every generation after
    which its account had another to send: from done at Luma to the GET that saw it (detection),
    and from that GET to the next create of the same account (handover)."""
    seen: dict[str, float] = {}
    for r in luma.requests:
        if r.method == "GET" and r.path.startswith("/v1/") and r.generation_id and r.generation_id not in seen:
            g = luma.generations.get(r.generation_id)
            if g is not None and g.completes_at is not None and r.at >= g.completes_at:
                seen[r.generation_id] = r.at
    creates: dict[str, list[float]] = {}
    for g in luma.generations.values():
        creates.setdefault(g.api_key, []).append(g.created_at)
    detect, handover = [], []
    for gid, at in seen.items():
        g = luma.generations[gid]
        later = [c for c in creates[g.api_key] if c >= at]
        detect.append(at - g.completes_at)
        if later:
            handover.append(min(later) - at)
    return statistics.median(detect), statistics.median(handover)


async def _accounts_pair(n: int, *, postgres: bool) -> tuple[dict, dict]:
    """One account, then `n`, on one throwaway PostgreSQL (a fresh database each) or SQLite."""
    if not postgres:
        return await run_accounts(1), await run_accounts(n)
    from lumabot.testing.postgres import PostgresCluster

    cluster = PostgresCluster()
    cluster.start()
    try:
        await cluster.create_template()
        return (await run_accounts(1, database=await cluster.new_database()),
                await run_accounts(n, database=await cluster.new_database()))
    finally:
        cluster.stop()


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

    if "--accounts" in sys.argv:
        n = int(sys.argv[sys.argv.index("--accounts") + 1])
        print(f"capacity per Luma account: {JOBS} jobs from {USERS} people in each workspace, concurrency "
              f"{CONCURRENCY} per account, lumabot as a subprocess in OAuth mode; one workspace on its own key, "
              f"then {n} at once")
        if "--postgres" in sys.argv:
            print("  (PostgreSQL, two replicas, each command to one of them in turn)")
        one, many = asyncio.run(_accounts_pair(n, postgres="--postgres" in sys.argv))
        base, base_steady = one["per_account"]["T00"][1], one["steady"]["T00"]
        utils = [u for _, u in many["per_account"].values()]
        steady = list(many["steady"].values())
        print(table([
            ("slot utilisation, one account (whole run; steady)", f"{base * 100:.1f} %; {base_steady * 100:.1f} %",
             "", None),
            (f"per account of {n}, lowest (whole run)", f"{min(utils) * 100:.1f} %",
             f">= {(base - 0.01) * 100:.1f} %", min(utils) >= base - 0.01),
            (f"per account of {n}, lowest (steady: 10 s in from each end)", f"{min(steady) * 100:.1f} %",
             f">= {(base_steady - 0.01) * 100:.1f} %", min(steady) >= base_steady - 0.01),
            ("  each account, whole run", ", ".join(f"{u * 100:.1f}" for u in utils) + " %", "", None),
            ("  jobs per account", ", ".join(str(c) for c, _ in many["per_account"].values()), "", None),
            ("  sent with the shared key", str(many["default_account_creates"]), "0",
             many["default_account_creates"] == 0),
            ("median detection; handover (ms), one account", f"{one['detect_ms']:.0f}; {one['handover_ms']:.1f}",
             "", None),
            (f"median detection; handover (ms), {n} accounts", f"{many['detect_ms']:.0f}; {many['handover_ms']:.1f}",
             "", None),
            ("bot CPU (share of one core, replicas summed), one; n accounts", f"{one['cpu'] * 100:.0f} %; {many['cpu'] * 100:.0f} %",
             "", None),
            ("event-loop lag p99 (bucket bound, the worst replica), one; n accounts",
             f"{one['lag_ms']:.0f}; {many['lag_ms']:.0f} ms", "", None),
            ("the fakes' CPU (this process, share of one core), one; n accounts",
             f"{one['fakes_cpu'] * 100:.0f} %; {many['fakes_cpu'] * 100:.0f} %", "", None),
            ("failed jobs; 429s", f"{many['failed']}; {many['429']}", "0; rare", many["failed"] == 0),
        ]))
        return

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
