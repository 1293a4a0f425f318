"""Polls per job, detection delay and slot utilisation: lumabot next to two references.

- naive: the loop of Luma's quickstart: create, wait 20 s, then GET every 2 s until terminal;
- clairvoyant: one GET per job, exactly when its generation completes (it reads the fake's
  record of when that is): the least any poller could do;
- lumabot: the real app (in process, HTTP mode, against the fakes), its poll planner learning
  the latencies as it goes (30 warm-up jobs first, not counted, as a running bot is warm).

One fake Luma, one latency distribution: lognormal with p50 30 s and p95 60 s, scaled down 20x
(p50 1.5 s), fixed per job index, so job i takes exactly as long for every contender. The
contenders run one after another in this process. Every time setting is scaled alike: the naive
loop waits 1 s and polls every 0.1 s; lumabot runs with LUMABOT_POLL_INTERVAL=0.1,
LUMABOT_FIRST_POLL_DELAY=1 and LUMABOT_MAX_POLLS_PER_SECOND=1000 (its 50, scaled).

- steady: 100 jobs, one every 0.1 s (scaled), 50 slots: no job waits for a slot;
- backlog: 200 jobs at once, 10 slots (each contender keeps to 10 generations in flight).

Detection delay: the first GET at or after the moment a generation turned completed, minus that
moment (the fake's records). Utilisation: the generations' own time over 10 slots' time from
the first create to the last completion; and while a line waits, from when all 10 slots first
ran to the last create (what polling and the handover decide, without the lottery of the ends:
how the first creates arrive, which latencies are left for the last round). Medians of
`REPEATS` runs (`--repeats`), with their spread. Next to the measured delays, each schedule
scored on the distribution itself (lumabot's plan at the end of its run, the loop's at the
interval it kept), and the bound's own plan on each run's latencies: one run's mean delay strays
about 10 % from its schedule's expectation, and each poller's luck is its own.

Targets (issue #14): steady, lumabot at most 2x the clairvoyant GETs per job with a detection
delay p50 of at most 1 s on the scaled clock; backlog, utilisation within 1 point of the
clairvoyant with no more GETs per job than the naive loop. Next to it, computed for the same
distribution (bench/poll_bound.py, its exact dynamic programme): the least mean detection delay
any poller that knows only the distribution can reach with each contender's own GETs per job,
the utilisation that allows, and the GETs per job 1 point from the clairvoyant would take.
Issue #27's targets: under backlog, utilisation at least the loop's with no more GETs and a mean
delay within 5 % of the bound; steady, at most 2 GETs and within 20 %.

`--oracle` adds a fourth contender under backlog: lumabot polling by the exact plan for the
true distribution (`ORACLE_GETS` per job) instead of what it learned; what is left of the gap
to the loop with nothing to learn is the handover and the first creates. `--backlog-jobs N`
lengthens the burst: one run's luck shrinks as its square root.

    python -m bench.polls [--repeats N] [--backlog-jobs N] [--oracle]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import re
import statistics
import time

import httpx
from luma_agents import AsyncLuma

from lumabot.runner.polling import PollPlanner
from lumabot.testing.fake_luma import FakeLuma, Outcome

from .common import rig, table
from .poll_bound import Lognormal, exact_least_delay, exact_plan, least_gets, realized_delay, score
from lumabot.testing.store import unsettled_count

SCALE = 20.0
P50, P95 = 30.0 / SCALE, 60.0 / SCALE
SIGMA = math.log(P95 / P50) / 1.6449
NAIVE_WAIT, NAIVE_INTERVAL = 20.0 / SCALE, 2.0 / SCALE
STEADY_JOBS, STEADY_SPACING, STEADY_SLOTS, WARM_UP = 100, 0.1, 50, 30
BACKLOG_JOBS, BACKLOG_SLOTS = 200, 10
REPEATS = 3
_INDEX = re.compile(r"job (\d+)$")
DIST = Lognormal(P50, SIGMA)
HORIZON = P50 * math.exp(5 * SIGMA)   # (as bench/poll_bound.py: nothing is left past it)
KEY = ("uni-1", "image")   # the latency class the planner learns these jobs in
# `--oracle`'s GETs per job (expected, on the distribution): 0.3 under the loop's schedule (8.1);
# over 200 jobs both read about 0.2 above their expected counts (over 1000, the oracle 0.2 under).
ORACLE_GETS = 7.8


class PromptTimedLuma(FakeLuma):
    """A fake Luma where the latency of "… job i" is the i-th of a fixed list."""

    def __init__(self, latencies: list[float], **kw):
        super().__init__(**kw)
        self.latencies = latencies

    def _new_generation(self, body, spec, now, key):
        m = _INDEX.search(spec["prompt"])
        self._script.appendleft(Outcome(latency=self.latencies[int(m.group(1)) if m else 0]))
        return super()._new_generation(body, spec, now, key)


def latencies(n: int, seed: int) -> list[float]:
    rnd = random.Random(seed)
    return [P50 * math.exp(SIGMA * rnd.gauss(0, 1)) for _ in range(n)]


def observe(luma: FakeLuma, prefix: str, slots: int) -> dict:
    """GETs per job, detection delays, utilisation (of `slots`) of the generations whose prompt
    starts with `prefix`."""
    gens = [g for g in luma.generations.values() if g.prompt.startswith(prefix)]
    ids = {g.id for g in gens}
    gets: dict[str, list[float]] = {}
    for rec in luma.requests:
        if rec.method == "GET" and rec.path.startswith("/v1/generations/") and rec.generation_id in ids:
            gets.setdefault(rec.generation_id, []).append(rec.at)
    # (A GET that reached the fake a hair before the completion can be answered "completed":
    # the fake reads its clock again to answer. Its delay is then 0.)
    delays = [max(0.0, min((t for t in gets.get(g.id, []) if t >= g.completes_at),
                           default=max(gets.get(g.id, []), default=math.nan)) - g.completes_at)
              for g in gens]
    first, last = min(g.created_at for g in gens), max(g.completes_at for g in gens)
    busy = sum(g.completes_at - g.created_at for g in gens)
    # While a line waits: from when every slot first ran to the last create (the line empty). The
    # ends (how the first creates arrive, which latencies are left for the last round) are not
    # the pollers' doing; in between, a slot is idle only from a completion to its next create.
    creates = sorted(g.created_at for g in gens)
    start, end = creates[min(slots, len(creates)) - 1], creates[-1]
    held = sum(max(0.0, min(g.completes_at, end) - max(g.created_at, start)) for g in gens)
    gaps = [b - a for v in gets.values() for a, b in zip(v, v[1:])]
    return {"gets": sum(len(v) for v in gets.values()) / len(gens), "delay_p50": statistics.median(delays),
            "gap": statistics.fmean(gaps) if gaps else math.nan,
            "delay_mean": statistics.fmean(delays), "busy": busy, "span": last - first,
            "line_util": held / (slots * (end - start)) if end > start else math.nan}


async def reference(luma: FakeLuma, name: str, n: int, slots: int, spacing: float, *, clairvoyant: bool) -> None:
    client = AsyncLuma(auth_token=luma.api_key, base_url=luma.base_url, max_retries=0,
                       http_client=httpx.AsyncClient(trust_env=False, limits=httpx.Limits(max_connections=200)))
    sem = asyncio.Semaphore(slots)

    async def one(i: int) -> None:
        async with sem:
            gen = await client.generations.create(prompt=f"{name} job {i}", model="uni-1", type="image")
            if clairvoyant:
                await asyncio.sleep(max(0.0, luma.generations[gen.id].completes_at - time.monotonic()))
                await client.generations.get(gen.id)
                return
            await asyncio.sleep(NAIVE_WAIT)
            while (await client.generations.get(gen.id)).state not in ("completed", "failed"):
                await asyncio.sleep(NAIVE_INTERVAL)

    t0 = time.monotonic()
    tasks = []
    for i in range(n):
        await asyncio.sleep(max(0.0, t0 + i * spacing - time.monotonic()))
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    await client.close()


def plan_of(planner: PollPlanner, *, backlog: bool, slots: int) -> list[float]:
    """The poll ages `planner` gives a new generation now (what a warm bot polls by), to the
    distribution's horizon."""
    ages = [planner.next_poll_age(KEY, None, backlog=backlog, polling=slots)]
    while ages[-1] < HORIZON:
        ages.append(planner.next_poll_age(KEY, ages[-1], backlog=backlog, polling=slots))
    return ages


def with_known_distribution(planner: PollPlanner) -> None:
    """Make `planner` poll generations under backlog by the exact plan for the true
    distribution (`ORACLE_GETS` per job) instead of what it learned: lumabot as it would do
    with nothing left to learn (`--oracle`)."""
    ages = exact_plan(DIST, ORACLE_GETS)
    learned = planner.next_poll_age

    def next_poll_age(key, last_age, *, backlog, polling=1):
        if not backlog:
            return learned(key, last_age, backlog=backlog, polling=polling)
        # (a poll leaves a little early: the next one is the plan's after the one nearest it)
        k = -1 if last_age is None else min(range(len(ages)), key=lambda i: abs(ages[i] - last_age))
        if k + 1 >= len(ages):
            return learned(key, last_age, backlog=backlog, polling=polling)
        return max(ages[k + 1], (last_age or 0.0) + polling / planner.max_polls_per_second)

    planner.next_poll_age = next_poll_age  # type: ignore[method-assign]


async def lumabot(luma: FakeLuma, name: str, n: int, slots: int, spacing: float, *,
                  oracle: bool = False) -> list[float]:
    """Run `n` jobs through the real app; returns its poll plan at the end (`plan_of`).
    `oracle`: under backlog it polls by the exact plan for the true distribution."""
    async with rig(luma, LUMABOT_LUMA_CONCURRENCY=str(slots), LUMABOT_POLL_INTERVAL=str(2.0 / SCALE),
                   LUMABOT_FIRST_POLL_DELAY=str(20.0 / SCALE), LUMABOT_MAX_POLLS_PER_SECOND=str(50 * SCALE),
                   LUMABOT_MAX_QUEUED_PER_USER="1000", LUMABOT_GENERATION_TIMEOUT="60",
                   LUMABOT_QUEUE_UPDATE_INTERVAL="0.25") as r:
        async def run(prefix: str, count: int, gap: float) -> None:
            t0 = time.monotonic()
            for i in range(count):
                await asyncio.sleep(max(0.0, t0 + i * gap - time.monotonic()))
                status, body, *_ = await r.command(f"{prefix} job {i}", user_id=f"U{i % 10}")
                assert status == 200 and not body, body
            while await unsettled_count(r.bot.store):
                await asyncio.sleep(0.05)

        await run("warm-up", WARM_UP, STEADY_SPACING)  # the planner learns, as a running bot has
        if oracle:
            with_known_distribution(r.bot.runner.polls)
        await run(name, n, spacing)
        return plan_of(r.bot.runner.polls, backlog=spacing == 0.0, slots=slots)


async def once(seed: int, backlog_jobs: int = BACKLOG_JOBS, oracle: bool = False) -> dict:
    lat = latencies(max(STEADY_JOBS, backlog_jobs, WARM_UP), seed)
    luma = PromptTimedLuma(lat, image_long_side=16)
    out: dict = {}
    for mode, n, slots, spacing in (("steady", STEADY_JOBS, STEADY_SLOTS, STEADY_SPACING),
                                    ("backlog", backlog_jobs, BACKLOG_SLOTS, 0.0)):
        plan = await lumabot(luma, f"{mode}-lumabot", n, slots, spacing)  # (the rig starts and stops the fake)
        contenders = ["naive", "clairvoyant", "lumabot"]
        if oracle and mode == "backlog":
            await lumabot(luma, f"{mode}-oracle", n, slots, spacing, oracle=True)
            contenders.append("oracle")
        await luma.start()
        try:
            await reference(luma, f"{mode}-naive", n, slots, spacing, clairvoyant=False)
            await reference(luma, f"{mode}-clairvoyant", n, slots, spacing, clairvoyant=True)
        finally:
            await luma.stop()
        for who in contenders:
            o = observe(luma, f"{mode}-{who} ", slots)
            out[f"{mode}_{who}_gets"] = o["gets"]
            out[f"{mode}_{who}_delay"] = o["delay_p50"]
            out[f"{mode}_{who}_mean_delay"] = o["delay_mean"]
            out[f"{mode}_{who}_util"] = o["busy"] / (slots * o["span"])
            out[f"{mode}_{who}_line_util"] = o["line_util"]
            if who == "naive":  # its schedule, at the interval it kept (a sleep after each answer)
                loop = [NAIVE_WAIT + k * o["gap"] for k in range(int((HORIZON - NAIVE_WAIT) / o["gap"]) + 2)]
        # Without one run's luck: each schedule scored on the distribution itself; and the
        # bound's own plan on this run's latencies (how far from its expectation a run of n strays).
        for who, times in (("lumabot", plan), ("naive", loop)):
            delay, gets = score(DIST, times)
            out[f"{mode}_{who}_plan"] = delay / exact_least_delay(DIST, gets) - 1
            out[f"{mode}_{who}_plan_delay"], out[f"{mode}_{who}_plan_gets"] = delay, gets
        best = exact_plan(DIST, out[f"{mode}_lumabot_gets"])
        out[f"{mode}_bound_on_run"] = realized_delay(best, lat[:n]) / score(DIST, best)[0] - 1
    return out


async def run(repeats: int = REPEATS, backlog_jobs: int = BACKLOG_JOBS, oracle: bool = False) -> dict:
    runs = [await once(seed, backlog_jobs, oracle) for seed in range(1, repeats + 1)]
    return {k: [r[k] for r in runs] for k in runs[0]}


def _m(values: list[float], fmt: str) -> str:
    med = statistics.median(values)
    return (fmt.format(med) + (f" ({fmt.format(min(values))}–{fmt.format(max(values))})" if len(values) > 1 else ""))


def rows(f: dict) -> list[tuple[str, str, str, bool | None]]:
    med = {k: statistics.median(v) for k, v in f.items()}
    ms = "{:.0f} ms"

    def delays(mode: str) -> str:
        return " / ".join(_m([d * 1000 for d in f[f"{mode}_{w}_delay"]], ms) for w in ("lumabot", "naive", "clairvoyant"))

    # The exact bound (bench/poll_bound.py's dynamic programme) at each poller's own GETs per job.
    bound = {(mode, w): exact_least_delay(DIST, med[f"{mode}_{w}_gets"])
             for mode in ("steady", "backlog") for w in ("lumabot", "naive")}
    best_lumabot, best_naive = bound["backlog", "lumabot"], bound["backlog", "naive"]

    def against_bound(mode: str) -> str:
        return " / ".join(f"{med[f'{mode}_{w}_mean_delay'] * 1000:.0f} ms vs {bound[mode, w] * 1000:.0f} ms "
                          f"({med[f'{mode}_{w}_mean_delay'] / bound[mode, w] - 1:+.0%})" for w in ("lumabot", "naive"))

    def plans(mode: str) -> str:
        return " / ".join(f"{med[f'{mode}_{w}_plan_delay'] * 1000:.0f} ms at {med[f'{mode}_{w}_plan_gets']:.1f} GETs "
                          f"({med[f'{mode}_{w}_plan']:+.0%})" for w in ("lumabot", "naive"))

    def luck(mode: str) -> str:
        return ", ".join(f"{x:+.0%}" for x in f[f"{mode}_bound_on_run"])

    steady_near = med["steady_lumabot_mean_delay"] <= 1.2 * bound["steady", "lumabot"]
    backlog_near = med["backlog_lumabot_mean_delay"] <= 1.05 * bound["backlog", "lumabot"]
    util_vs_loop = med["backlog_lumabot_util"] >= med["backlog_naive_util"]
    paired = [a - b for a, b in zip(f["backlog_lumabot_util"], f["backlog_naive_util"])]

    def bound_util(delay: float) -> float:
        return 100 * med["backlog_clairvoyant_util"] * DIST.mean / (DIST.mean + delay)

    gets_for_one_point = least_gets(DIST, DIST.mean / 99)  # mean / (mean + d) = 99 %
    steady_ok = (med["steady_lumabot_gets"] <= 2 * med["steady_clairvoyant_gets"]
                 and med["steady_lumabot_delay"] <= 1.0)
    util_ok = med["backlog_lumabot_util"] >= med["backlog_clairvoyant_util"] - 0.01
    gets_ok = med["backlog_lumabot_gets"] <= med["backlog_naive_gets"]
    oracle = []
    if "backlog_oracle_util" in f:
        to_loop = [a - b for a, b in zip(f["backlog_oracle_util"], f["backlog_naive_util"])]
        least = exact_least_delay(DIST, med["backlog_oracle_gets"])
        oracle = [
            ("  lumabot knowing the distribution (--oracle): GETs per job; mean delay vs the bound",
             _m(f["backlog_oracle_gets"], "{:.1f}") + f"; {med['backlog_oracle_mean_delay'] * 1000:.0f} ms vs "
             f"{least * 1000:.0f} ms ({med['backlog_oracle_mean_delay'] / least - 1:+.0%})",
             "", None),
            ("  ... it minus the loop in each run; their median; while a line waits",
             ", ".join(f"{d * 100:+.1f}" for d in to_loop) + f" points; {statistics.median(to_loop) * 100:+.1f}; "
             + ", ".join(f"{(a - b) * 100:+.1f}" for a, b in zip(f["backlog_oracle_line_util"], f["backlog_naive_line_util"])),
             "", None),
        ]
    return [
        ("steady: GETs per job, lumabot / naive / clairvoyant",
         " / ".join(_m(f[f"steady_{w}_gets"], "{:.1f}") for w in ("lumabot", "naive", "clairvoyant")),
         "lumabot <= 2x clairvoyant", steady_ok),
        ("  detection delay p50 (scaled clock), same order", delays("steady"), "lumabot <= 1 s", None),
        ("  ... unscaled (x20), lumabot / naive",
         f"{med['steady_lumabot_delay'] * SCALE:.1f} s / {med['steady_naive_delay'] * SCALE:.1f} s", "", None),
        ("  mean delay vs the exact bound at its own GETs, lumabot / naive", against_bound("steady"),
         "lumabot within 20 % (#27)", steady_near),
        ("    its schedule scored on the distribution (no run's luck): expected delay at its GETs, vs the bound",
         plans("steady"), "", None),
        ("    ... the bound's own plan on each run's latencies, vs its expectation (one run's luck)",
         luck("steady"), "", None),
        ("backlog: slot utilisation, lumabot / naive / clairvoyant",
         " / ".join(_m([u * 100 for u in f[f"backlog_{w}_util"]], "{:.1f} %") for w in ("lumabot", "naive", "clairvoyant")),
         "within 1 point of clairvoyant", util_ok),
        ("  GETs per job, lumabot / naive / clairvoyant",
         " / ".join(_m(f[f"backlog_{w}_gets"], "{:.1f}") for w in ("lumabot", "naive", "clairvoyant")),
         "lumabot <= naive", gets_ok),
        ("  detection delay p50 (scaled clock), same order", delays("backlog"), "", None),
        ("  mean detection delay (scaled clock), same order",
         " / ".join(_m([d * 1000 for d in f[f"backlog_{w}_mean_delay"]], ms) for w in ("lumabot", "naive", "clairvoyant")),
         "", None),
        ("  mean delay vs the exact bound at its own GETs, lumabot / naive", against_bound("backlog"),
         "lumabot within 5 % (#27)", backlog_near),
        ("    its schedule scored on the distribution (no run's luck): expected delay at its GETs, vs the bound",
         plans("backlog"), "", None),
        ("    ... the bound's own plan on each run's latencies, vs its expectation (one run's luck)",
         luck("backlog"), "", None),
        ("  utilisation, lumabot against the naive loop (medians of each)",
         f"{med['backlog_lumabot_util'] * 100:.1f} % vs {med['backlog_naive_util'] * 100:.1f} %",
         ">= the loop's (#27)", util_vs_loop),
        ("  ... lumabot minus the loop in each run (the same latencies); their median",
         ", ".join(f"{d * 100:+.1f}" for d in paired) + f" points; {statistics.median(paired) * 100:+.1f}",
         ">= 0 (#27, in the same run)", statistics.median(paired) >= 0),
        ("  ... while a line waits (all slots first busy to the last create), lumabot / naive",
         " / ".join(_m([u * 100 for u in f[f"backlog_{w}_line_util"]], "{:.1f} %") for w in ("lumabot", "naive"))
         + "; lumabot minus the loop in each run: "
         + ", ".join(f"{(a - b) * 100:+.1f}" for a, b in zip(f["backlog_lumabot_line_util"], f["backlog_naive_line_util"])),
         "", None),
        *oracle,
        ("  utilisation that allows, about (clairvoyant's x mean / (mean + delay))",
         f"{bound_util(best_lumabot):.1f} % / {bound_util(best_naive):.1f} %", "", None),
        ("  GETs per job the least delay for 1 point from clairvoyant takes",
         f"{gets_for_one_point:.0f}", "", None),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description="Polls per job, detection delay and slot utilisation.")
    parser.add_argument("--repeats", type=int, default=REPEATS, help=f"runs (seeds 1..N; default {REPEATS})")
    parser.add_argument("--backlog-jobs", type=int, default=BACKLOG_JOBS,
                        help=f"jobs in the backlog burst (default {BACKLOG_JOBS}; more shrink one run's luck)")
    parser.add_argument("--oracle", action="store_true",
                        help=f"also run lumabot polling the backlog by the exact plan for the true distribution "
                             f"({ORACLE_GETS} GETs per job): what is left with nothing to learn")
    args = parser.parse_args()
    print(f"polls: lognormal p50 30 s / p95 60 s scaled {SCALE:.0f}x; steady {STEADY_JOBS} jobs, backlog "
          f"{args.backlog_jobs} jobs on {BACKLOG_SLOTS} slots; medians of {args.repeats} runs (spread)")
    print(table(rows(asyncio.run(run(args.repeats, args.backlog_jobs, args.oracle)))))


if __name__ == "__main__":
    main()
