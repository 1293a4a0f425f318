"""How good the poll planner's plans are after it learned from its own polls, without one run's
luck: each plan scored on the distribution itself (bench/poll_bound.py), against the exact bound
at the plan's own GETs per job. No bot, no fakes: the planner (lumabot/runner/polling.py) is
fed the intervals its own polls would see, for latencies drawn from the benchmarks' lognormal
(p50 30 s, p95 60 s, scaled 20x as in bench/polls.py), 4 seeds.

- after a number of jobs without a line (polled by the plan without a line: one or two GETs at
  about the same ages every time), then a number with one (polled by the backlog plan), and
  after such a burst a quiet spell longer than the planner's window (what it keeps of the burst);
- the learning curve of a burst after 30 jobs without a line: the backlog plan every 25 jobs of
  the burst, and the same for a planner fed the exact latencies (what 30, 55, ... latencies
  allow any estimate that assumes no shape), 12 seeds: what a burst's first plans lose while
  the planner learns (the bound read between points: within 1 %);
- `--explore EPS`: a share EPS of the jobs without a line polled first at a random age between
  0.3 and 1 times the plan's first (not in lumabot: what it would take to keep the shape below
  the first poll known), and what that costs them in GETs.

    python -m bench.plan_learning [--explore EPS]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import math
import random
import statistics
from typing import Callable

from lumabot.runner.polling import PollPlanner

from .common import table
from .poll_bound import exact_least_delay, score
from .polls import DIST, HORIZON, KEY, P50, SIGMA, SCALE, plan_of

SLOTS = 10
SEEDS = (1, 2, 3, 4)
# What the planner learned from: jobs without a line, then with one, then without again.
SCENARIOS = ((30, 0, 0), (30, 200, 0), (1000, 0, 0), (1000, 100, 0), (30, 200, 1000))
CURVE_SEEDS, CURVE_STEP, CURVE_QUIET, CURVE_BUSY = range(1, 13), 25, 30, 200


def planner_of_the_bench() -> PollPlanner:
    return PollPlanner(first_poll_delay=20.0 / SCALE, poll_interval=2.0 / SCALE, max_polls_per_second=50 * SCALE)


def learn(seed: int, quiet: int, busy: int, after: int = 0, explore: float = 0.0,
          every: Callable[[int, PollPlanner], None] | None = None) -> tuple[PollPlanner, float]:
    """A planner that saw `quiet` jobs polled without a line, then `busy` with one, then
    `after` without; and the GETs per job of those without. `every(i, planner)` is called
    before each job."""
    rnd, choose = random.Random(seed), random.Random(seed + 1000)
    planner = planner_of_the_bench()
    quiet_gets = 0
    for i in range(quiet + busy + after):
        if every is not None:
            every(i, planner)
        latency, last, backlog = P50 * math.exp(SIGMA * rnd.gauss(0, 1)), None, quiet <= i < quiet + busy
        dense = planner.polls_densely(KEY, backlog=backlog)
        early = not backlog and choose.random() < explore
        while True:
            age = planner.next_poll_age(KEY, last, backlog=backlog, polling=SLOTS)
            if early and last is None:
                age *= choose.uniform(0.3, 1.0)
            quiet_gets += not backlog
            if age >= latency or age >= HORIZON:
                break
            last = age
        planner.record_seen(KEY, last or 0.0, age, dense=dense)
    return planner, quiet_gets / max(quiet + after, 1)


BOUND_STEP = 0.25   # the bound is computed every this many GETs per job, and read between


@functools.lru_cache(maxsize=None)
def _bound_at(k: int) -> float:
    return exact_least_delay(DIST, k * BOUND_STEP)


def rough_bound(gets: float) -> float:
    """The exact bound at `gets` GETs per job read linearly between points BOUND_STEP apart
    (each costs two seconds): within 1 % of it (the curve's own computation is not smooth to
    better than about half of that)."""
    k = int(gets / BOUND_STEP)
    share = gets / BOUND_STEP - k
    return _bound_at(k) * (1 - share) + _bound_at(k + 1) * share


def excess(planner: PollPlanner, *, backlog: bool, rough: bool = False) -> tuple[float, float]:
    """(the plan's expected delay over the bound at its GETs, its GETs per job); `rough`: the
    bound read from points (`rough_bound`)."""
    delay, gets = score(DIST, plan_of(planner, backlog=backlog, slots=SLOTS))
    return delay / (rough_bound(gets) if rough else exact_least_delay(DIST, gets)) - 1, gets


def curve(seed: int) -> tuple[list[float], list[float]]:
    """The backlog plan's expected delay over the bound every CURVE_STEP jobs of a burst after
    CURVE_QUIET jobs without a line: learned from the planner's own polls, and from the exact
    latencies of the same jobs."""
    learnt: list[float] = []

    def look(i: int, planner: PollPlanner) -> None:
        if i >= CURVE_QUIET and (i - CURVE_QUIET) % CURVE_STEP == 0:
            learnt.append(excess(planner, backlog=True, rough=True)[0])

    learn(seed, CURVE_QUIET, CURVE_BUSY, every=look)
    rnd, exact = random.Random(seed), planner_of_the_bench()
    from_exact = []
    for i in range(CURVE_QUIET + CURVE_BUSY):
        if i >= CURVE_QUIET and (i - CURVE_QUIET) % CURVE_STEP == 0:
            from_exact.append(excess(exact, backlog=True, rough=True)[0])
        exact.record(KEY, P50 * math.exp(SIGMA * rnd.gauss(0, 1)))
    return learnt, from_exact


async def run(explore: float = 0.0) -> dict:
    out: dict = {"explore": explore}
    curves = [curve(seed) for seed in CURVE_SEEDS]
    out["curve"] = [statistics.fmean(c[0][k] for c in curves) for k in range(len(curves[0][0]))]
    out["curve_exact"] = [statistics.fmean(c[1][k] for c in curves) for k in range(len(curves[0][1]))]
    for quiet, busy, after in SCENARIOS:
        learnt = [learn(seed, quiet, busy, after, explore) for seed in SEEDS]
        out[quiet, busy, after] = {"backlog": [excess(p, backlog=True) for p, _ in learnt],
                            "steady": [excess(p, backlog=False) for p, _ in learnt],
                            "quiet_gets": [g for _, g in learnt]}
    return out


def rows(f: dict) -> list[tuple[str, str, str, bool | None]]:
    def plan(values: list[tuple[float, float]]) -> str:
        over = [e for e, _ in values]
        return (f"{statistics.median(over):+.0%} ({min(over):+.0%}..{max(over):+.0%}) "
                f"at {statistics.median(g for _, g in values):.1f} GETs")

    out = []
    for quiet, busy, after in SCENARIOS:
        s = f[quiet, busy, after]
        what = (f"after {quiet} jobs without a line" + (f", then {busy} with one" if busy else "")
                + (f", then {after} without" if after else ""))
        out.append((f"{what}: backlog plan / plan without a line, over the bound",
                    f"{plan(s['backlog'])} / {plan(s['steady'])}", "", None))
    out.append((f"a burst after {CURVE_QUIET} jobs without a line: backlog plan over the bound every {CURVE_STEP} jobs; "
                f"their mean (means of {len(CURVE_SEEDS)} seeds)",
                ", ".join(f"{e:+.0%}" for e in f["curve"]) + f"; {statistics.fmean(f['curve']):+.1%}", "", None))
    out.append(("  ... the planner fed the exact latencies of the same jobs",
                ", ".join(f"{e:+.0%}" for e in f["curve_exact"]) + f"; {statistics.fmean(f['curve_exact']):+.1%}",
                "", None))
    out.append(("  GETs per job without a line (the 1000)" + (f", {f['explore']:.0%} of first polls exploring"
                                                                  if f["explore"] else ""),
                f"{statistics.median(f[1000, 0, 0]['quiet_gets']):.2f}", "", None))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description="The poll planner's plans after learning, scored on the distribution.")
    parser.add_argument("--explore", type=float, default=0.0, help="share of quiet jobs polled first at a random age")
    explore = parser.parse_args().explore
    print(table(rows(asyncio.run(run(explore)))))


if __name__ == "__main__":
    main()
