"""How good the poll planner's plans are after it learned from its own polls, without one run's
luck: each plan scored on the distribution itself (bench/poll_bound.py), against the exact bound
at the plan's own GETs per job. No bot, no fakes: the planner (lumabot/runner/polling.py) is
fed the intervals its own polls would see, for latencies drawn from the benchmarks' lognormal
(p50 30 s, p95 60 s, scaled 20x as in bench/polls.py), 4 seeds.

- after a number of jobs without a line (polled by the plan without a line: one or two GETs at
  about the same ages every time), then a number with one (polled by the backlog plan), and
  after such a burst a quiet spell longer than the planner's window (what it keeps of the burst);
- `--explore EPS`: a share EPS of the jobs without a line polled first at a random age between
  0.3 and 1 times the plan's first (not in lumabot: what it would take to keep the shape below
  the first poll known), and what that costs them in GETs.

    python -m bench.plan_learning [--explore EPS]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import statistics

from lumabot.runner.polling import PollPlanner

from .common import table
from .poll_bound import exact_least_delay, score
from .polls import DIST, HORIZON, KEY, P50, SIGMA, SCALE, plan_of

SLOTS = 10
SEEDS = (1, 2, 3, 4)
# What the planner learned from: jobs without a line, then with one, then without again.
SCENARIOS = ((30, 0, 0), (30, 200, 0), (1000, 0, 0), (1000, 100, 0), (30, 200, 1000))


def learn(seed: int, quiet: int, busy: int, after: int = 0, explore: float = 0.0) -> tuple[PollPlanner, float]:
    """A planner that saw `quiet` jobs polled without a line, then `busy` with one, then
    `after` without; and the GETs per job of those without."""
    rnd, choose = random.Random(seed), random.Random(seed + 1000)
    planner = PollPlanner(first_poll_delay=20.0 / SCALE, poll_interval=2.0 / SCALE, max_polls_per_second=50 * SCALE)
    quiet_gets = 0
    for i in range(quiet + busy + after):
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


def excess(planner: PollPlanner, *, backlog: bool) -> tuple[float, float]:
    """(the plan's expected delay over the bound at its GETs, its GETs per job)"""
    delay, gets = score(DIST, plan_of(planner, backlog=backlog, slots=SLOTS))
    return delay / exact_least_delay(DIST, gets) - 1, gets


async def run(explore: float = 0.0) -> dict:
    out: dict = {"explore": explore}
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
