"""How well any poller that knows only the latency distribution can do: the least mean
detection delay for a given number of GETs per job (used by bench/polls.py to put the backlog
target in proportion). `least_delay` is Keller's continuous approximation; `exact_least_delay`
optimises the poll times themselves (a dynamic programme on a fine grid) and is the bound.

For a known distribution (density f, CDF F, hazard h = f / (1 - F)), polling at density n(t)
costs about the integral of f / (2n) in detection delay and of n (1 - F) in GETs; the best
trade-off polls at n(t) = sqrt(h(t) / 2c) (Keller's optimal inspection density), c the price of
a GET in seconds of delay. The schedule is built from that density and then scored exactly (the
expected delay and GETs of its discrete poll times); c is searched for the GET count asked.

    python -m bench.poll_bound
"""

from __future__ import annotations

import bisect
import math
import statistics
from statistics import NormalDist
from typing import Callable

_N = NormalDist()


class Lognormal:
    def __init__(self, p50: float, sigma: float):
        self.mu, self.sigma = math.log(p50), sigma

    @property
    def mean(self) -> float:
        return math.exp(self.mu + self.sigma ** 2 / 2)

    def partial_mean(self, t: float) -> float:
        """The integral of s f(s) ds from 0 to t."""
        return self.mean * _N.cdf((math.log(t) - self.mu - self.sigma ** 2) / self.sigma) if t > 0 else 0.0

    def cdf(self, t: float) -> float:
        return _N.cdf((math.log(t) - self.mu) / self.sigma) if t > 0 else 0.0

    def hazard(self, t: float) -> float:
        z = (math.log(t) - self.mu) / self.sigma
        survival = max(1e-300, 1.0 - _N.cdf(z))
        return _N.pdf(z) / (self.sigma * t) / survival


def score(dist: Lognormal, times: list[float]) -> tuple[float, float]:
    """(expected detection delay, expected GETs) of polling at `times` until the job is seen
    finished (its first poll at or after completion)."""
    delay = gets = 0.0
    prev = 0.0
    for t in times:
        gets += 1.0 - dist.cdf(prev)  # this poll is made if the job was not seen before
        steps = 16  # the delay of completions in (prev, t], by the midpoint rule
        for i in range(steps):
            a, b = prev + (t - prev) * i / steps, prev + (t - prev) * (i + 1) / steps
            delay += (t - (a + b) / 2) * (dist.cdf(b) - dist.cdf(a))
        prev = t
    return delay, gets


def schedule(dist: Lognormal, price: float) -> list[float]:
    """Poll times one unit of density sqrt(h / 2c) apart (the density integrated in small
    steps), up to `horizon` (past which nothing is left)."""
    horizon = math.exp(dist.mu + 5 * dist.sigma)
    times, t, acc = [], 0.0, 0.0
    step = dist.mean / 1000
    while t < horizon:
        t += step
        acc += math.sqrt(dist.hazard(t) / (2 * price)) * step
        if acc >= 1.0:
            times.append(t)
            acc = 0.0
    return times + [horizon]


def _price(dist: Lognormal, raise_price: Callable[[float, float], bool]) -> tuple[float, float]:
    """Bisect the price of a GET (a lower price buys more GETs and less delay) on
    `raise_price(delay, GETs)` of its schedule: (the last price raised from, the last lowered
    from)."""
    lo, hi = 1e-7, 10.0
    for _ in range(30):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if raise_price(*score(dist, schedule(dist, mid))) else (lo, mid)
    return lo, hi


def least_delay(dist: Lognormal, gets: float) -> float:
    """The least expected detection delay (seconds) with `gets` GETs per job on average."""
    _, price = _price(dist, lambda _delay, used: used > gets)
    return score(dist, schedule(dist, price))[0]


def least_gets(dist: Lognormal, delay: float) -> float:
    """The fewest GETs per job on average for an expected detection delay of `delay` s."""
    price, _ = _price(dist, lambda d, _used: d < delay)
    return score(dist, schedule(dist, price))[1]


# -- the exact optimum ----------------------------------------------------------------------------
# Keller's density is a continuous approximation. The exact optimum over poll times on a fine
# grid is a small dynamic programme: with the last poll at g_j and the job not seen yet, the next
# poll at g_k costs c * P(T > g_j) (it is made only if the job was not seen) plus the delay of
# the completions in (g_j, g_k], and V(j) = min over k of that + V(k).

def _grid(dist: Lognormal, points: int) -> list[float]:
    """Poll times to choose from: equal steps of probability (fine where completions are dense)
    merged with equal steps of time (fine in the tail, where they are sparse), to the horizon."""
    horizon = math.exp(dist.mu + 5 * dist.sigma)
    qs = [math.exp(dist.mu + dist.sigma * _N.inv_cdf(i / points)) for i in range(1, points)]
    even = [horizon * i / points for i in range(1, points)]
    return [0.0] + sorted(set(qs + even)) + [horizon]


def exact_schedule(dist: Lognormal, price: float, points: int = 400, window: int = 400) -> list[float]:
    """The poll times (on the grid) that minimise expected delay + price x expected GETs."""
    g = _grid(dist, points)
    n = len(g)
    cdf = [dist.cdf(t) for t in g]
    # G(x) = integral of s f(s) ds from 0 to x: the lognormal's partial expectation, exactly
    first = [dist.partial_mean(t) for t in g]
    value, nxt = [0.0] * n, [n - 1] * n
    for j in range(n - 2, -1, -1):
        survive = price * (1.0 - cdf[j])
        best, arg = math.inf, n - 1
        for k in range(j + 1, min(n, j + 1 + window)):
            cost = survive + g[k] * (cdf[k] - cdf[j]) - (first[k] - first[j]) + value[k]
            if cost < best:
                best, arg = cost, k
        if j + window < n - 1:  # the horizon itself is always a choice
            cost = survive + g[-1] * (cdf[-1] - cdf[j]) - (first[-1] - first[j])
            if cost < best:
                best, arg = cost, n - 1
        value[j], nxt[j] = best, arg
    times, j = [], 0
    while j < n - 1:
        j = nxt[j]
        times.append(g[j])
    return times


def exact_plan(dist: Lognormal, gets: float) -> list[float]:
    """The poll times of the least expected detection delay with at most `gets` GETs per job
    (the price of a GET bisected), optimising the poll times themselves (a fine grid)."""
    lo, hi = 1e-7, 10.0
    for _ in range(26):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if score(dist, exact_schedule(dist, mid))[1] > gets else (lo, mid)
    return exact_schedule(dist, hi)


def exact_least_delay(dist: Lognormal, gets: float) -> float:
    """The least expected detection delay with `gets` GETs per job: the bound."""
    return score(dist, exact_plan(dist, gets))[0]


def realized_delay(times: list[float], latencies: list[float]) -> float:
    """The mean detection delay of polling at `times` the generations that took `latencies`:
    what one finite sample gives, against `score`'s expectation."""
    last = len(times) - 1
    return statistics.fmean(times[min(bisect.bisect_left(times, t), last)] - t   # the first poll at or after
                            for t in latencies)


def main() -> None:
    dist = Lognormal(30.0, math.log(2.0) / 1.6449)  # uni-1: p50 30 s, p95 60 s (unscaled)
    for gets in (2, 4, 7.4, 16):
        d, exact = least_delay(dist, gets), exact_least_delay(dist, gets)
        print(f"{gets:5} GETs per job: least mean detection delay {exact:.2f} s exactly ({exact / dist.mean:.1%} of "
              f"the mean latency); Keller's density gives {d:.2f} s ({d / exact - 1:+.1%})")
    print(f"a mean delay of 1 % of the mean latency takes {least_gets(dist, dist.mean / 100):.0f} GETs per job")


if __name__ == "__main__":
    main()
