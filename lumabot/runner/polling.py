"""When to poll a pending generation, and which poll goes first when polls must wait.

Luma has no webhook: a finished generation is only seen by polling it, and every GET is a
request. The planner learns how long generations take, per model and type (an edit apart from
an image), from what its polls saw: each generation finished somewhere between the last poll
that saw it running and the one that saw it finished (`record_seen`). The distribution is the
one that best explains those intervals (Turnbull's estimate, by EM on a grid: `Latencies`), and
each job's polls are planned from it. Without a line every generation is polled at about the
same one or two ages, which say how many finished before the first poll and not where: the
intervals of generations polled densely from their first poll (while jobs waited, or before
anything was learned) are kept after the window has moved on, a fifth of it (`KEPT`), and give
that shape after a quiet spell.

- A job's polls are the ones that make its expected detection delay plus c per GET least: the
  exact optimum for what was learned, by a dynamic programme over the estimate's grid (made
  again with the estimate, when a twentieth of its latencies are new; bench/poll_bound.py
  computes the same bound for a known distribution). Sparse while few finish, dense where most
  do. c is the price of a GET in seconds of waiting: of a person's wait (`STEADY_PRICE` x the
  median latency: about two GETs per job) or, while other jobs wait for a Luma slot, of idle
  slot, which a finished generation left unseen keeps from them (`BACKLOG_PRICE` x the median:
  cheaper, so denser). In the thin tail the estimate cannot place, gaps stay no longer than
  where it could. Gaps are at least `min_gap`; a generation older than any seen is polled
  every LUMABOT_POLL_INTERVAL.
- Until it has seen `min_samples` latencies of that model and type it polls as before: first
  after LUMABOT_FIRST_POLL_DELAY, then every LUMABOT_POLL_INTERVAL (a quarter of it while jobs
  wait for a slot).
- All polls together stay under LUMABOT_MAX_POLLS_PER_SECOND. When more are due than that
  allows, the one most likely to find its generation finished goes first (after a restart:
  the jobs most likely done, not all at once nor in creation order), and with very many
  generations pending the gaps stretch to match the cap.
"""

from __future__ import annotations

import asyncio
import bisect
import heapq
import itertools
from collections import deque
from typing import Awaitable, Callable

BACKLOG_SPEEDUP = 4       # the fallback interval's speed-up while jobs wait for a slot
STEADY_PRICE = 0.2        # without a line, a GET is worth this share of the median latency of a person's wait
BACKLOG_PRICE = 0.0085    # under backlog, a GET is worth this share of the median latency of idle slot
GRID = 200                # cells of the estimate, from 0 to the latest age a generation was seen done
EM_ROUNDS = 60            # rounds of EM from a uniform start
EM_ROUNDS_AGAIN = 8       # ... and from the last estimate, when new intervals came in
REFRESH = 20              # the estimate is made again when a twentieth of its intervals are new
DENSE = 0.9               # a plan's gaps past this share done are no longer than its longest before it
SMOOTHING = 0.1           # each EM round smooths the estimate over this share of the median either side
KEPT = 5                  # densely polled intervals kept past the window: a KEPT-th of it
Key = tuple[str, str]     # (model, type)
# A plan: the grid's edges, the share done by each, the integral of t dF up to each, the least
# cost from each, and the longest gap after the first poll.
Plan = tuple[list[float], list[float], list[float], list[float], float]


class Latencies:
    """How long generations of one model and type take, from the latest `window` of what polls
    saw: each generation finished within (last seen running, first seen done] (an exact latency
    is an interval of no width). The estimate is the distribution most likely to have given
    those intervals, kept as one sorted point per interval at its quantiles (for `cdf` and
    `age_at`), brought up to date when it is next read after a twentieth of what it holds came
    in new (a few EM rounds from the last estimate, and the backlog plan: a few milliseconds
    for 500 intervals, on the event loop, so not at every completion: it is what a freed
    slot's next create would wait for).

    Intervals of generations polled densely from their first poll that the window has moved
    past are kept, the latest `kept` of them (a fifth of the window), and count with it. A quiet
    spell's intervals all begin at 0 or at the one or two ages every generation is polled at:
    after one, the window alone has the estimate spread what finished before the first poll
    evenly down to 0, and the burst that follows was planned up to a fifth worse than it could
    be (bench/plan_learning.py). Which generations are kept is settled before their latency is
    known (`PollPlanner.polls_densely`), so the kept ones are not skewed towards short or long
    latencies, as keeping the narrow intervals would be."""

    def __init__(self, window: int, kept: int):
        self._seen: deque[tuple[float, float, bool]] = deque(maxlen=window)   # (interval, to be kept)
        self._kept: deque[tuple[float, float]] = deque(maxlen=kept)
        self._points: list[float] = []
        self._p: list[float] = []   # the last estimate's cell probabilities, on a grid up to _top
        self._top = 0.0
        self._plans: dict[float, Plan] = {}   # by price, made from the current estimate
        self._stale = False
        self._new = 0   # intervals that came in since the last estimate

    def add(self, seconds: float) -> None:
        self.add_seen(seconds, seconds)

    def add_seen(self, running_at: float, done_at: float, dense: bool = False) -> None:
        if len(self._seen) == self._seen.maxlen and self._seen[0][2]:
            self._kept.append(self._seen[0][:2])
        self._seen.append((max(0.0, running_at), max(running_at, done_at, 0.0), dense))
        self._new += 1
        if not self._points or self._new * REFRESH >= len(self._seen):
            self._stale = True

    def __len__(self) -> int:
        return len(self._seen)

    @property
    def _sorted(self) -> list[float]:
        if self._stale:
            self._estimate()
        return self._points

    def _estimate(self) -> None:
        """Turnbull's estimate on a grid: the cell probabilities p that maximise the likelihood
        of the intervals, by EM (each round shares every interval among the cells it covers in
        proportion to p). Each round costs one pass over the intervals and one over the cells."""
        seen = [*self._kept, *((low, high) for low, high, _ in self._seen)]
        n, top = len(seen), max(high for _, high in seen)
        width = max(top, 1e-6) / GRID
        spans = [(min(int(low / width), GRID - 1), min(int(high / width), GRID - 1) + 1) for low, high in seen]
        again = top == self._top and len(self._p) == GRID
        p = [max(pj, 1e-9) for pj in self._p] if again else [1.0 / GRID] * GRID
        # Smoothing (EMS): where the intervals cannot tell where in them generations finished,
        # the plain estimate piles their mass at the intervals' ends, the planner then polls
        # there, and learns more intervals ending there. A light box filter each round keeps the
        # estimate a density.
        middles = sorted((low + high) / 2 for low, high in seen)
        reach = max(1, round(SMOOTHING * middles[n // 2] / width))
        for _ in range(EM_ROUNDS_AGAIN if again else EM_ROUNDS):
            cumulative = list(itertools.accumulate(p, initial=0.0))
            shares = [0.0] * (GRID + 1)
            for a, b in spans:
                mass = cumulative[b] - cumulative[a]
                if mass > 0.0:
                    shares[a] += 1.0 / mass
                    shares[b] -= 1.0 / mass
            p = _smooth([pj * sj / n for pj, sj in zip(p, itertools.accumulate(shares[:GRID]))], reach)
        # One point per interval, at the quantiles (k + 1/2) / n, spread evenly within cells.
        points: list[float] = []
        cumulative = list(itertools.accumulate(p, initial=0.0))
        total = cumulative[-1] or 1.0
        j = 0
        for k in range(n):
            q = (k + 0.5) / n * total
            while j < GRID - 1 and cumulative[j + 1] < q:
                j += 1
            inside = (q - cumulative[j]) / p[j] if p[j] > 0 else 0.5
            points.append((j + min(max(inside, 0.0), 1.0)) * width)
        self._points, self._p, self._top = points, p, top
        self._plans, self._stale, self._new = {}, False, 0

    def cdf(self, t: float) -> float:
        """The share of generations finished within `t` seconds."""
        return bisect.bisect_right(self._sorted, t) / len(self._sorted)

    def poll_after(self, age: float, price: float) -> float | None:
        """The age of the next poll of a generation last looked at `age` (0: at its creation),
        the one that starts the least expected detection delay plus `price` x the median
        latency per GET from there on (on the estimate's grid, completions spread evenly within
        a cell), and after the first poll no later than the plan's longest gap where latencies
        are dense; None past the oldest latency seen."""
        edges, done, partial, value, longest = self._plan(price)
        top = len(edges) - 1
        if age >= edges[top]:
            return None
        width = edges[1]
        i = min(int(age / width), top - 1)
        done_at = done[i] + (done[i + 1] - done[i]) * (age - edges[i]) / width
        partial_at = partial[i] + (done_at - done[i]) * (edges[i] + age) / 2
        best = edges[min(range(i + 1, top + 1), key=lambda k: edges[k] * (done[k] - done_at)
                         - (partial[k] - partial_at) + value[k])]
        return best if age <= 0.0 else min(best, age + longest)

    def _plan(self, price: float) -> Plan:
        """The exact optimum on the estimate's grid (a dynamic programme, as bench/poll_bound.py
        computes the bound): with the last poll at edge j and the generation not seen done, the
        next at edge k costs price x median x P(still running at j) (the GET) plus the delay of
        the completions in between, and value[j] is the least such cost from j on. Returns
        (edges, share done by each edge, the integral of t dF up to each edge, value, the
        longest gap).

        The estimate ends at the oldest latency seen, as if every generation were done by then;
        the real tail goes on, thin, and the optimum for the estimate leaves its last stragglers
        a long gap before that age (a generation 10 % over it waited half a median). So past the
        first poll no gap is longer than the plan's longest before the age by which `DENSE` of
        them finished: in a tail the estimate cannot place, the polls go on at the pace they had
        where it could."""
        if self._stale:
            self._estimate()   # (which drops the plans)
        plan = self._plans.get(price)
        if plan is None:
            p = self._p
            size, total = len(p), sum(p) or 1.0
            width = max(self._top, 1e-6) / size
            edges = [j * width for j in range(size + 1)]
            done = [share / total for share in itertools.accumulate(p, initial=0.0)]
            partial = list(itertools.accumulate((pj / total * (j + 0.5) * width for j, pj in enumerate(p)),
                                                initial=0.0))
            per_get = price * self.age_at(0.5)
            value = [0.0] * (size + 1)
            nearest = [size] * (size + 1)   # the edge of the next poll, from each edge
            for j in range(size - 1, -1, -1):
                costs = [edges[k] * (done[k] - done[j]) - (partial[k] - partial[j]) + value[k]
                         for k in range(j + 1, size + 1)]
                best = min(range(len(costs)), key=costs.__getitem__)
                value[j], nearest[j] = per_get * (1.0 - done[j]) + costs[best], j + 1 + best
            dense, longest, j = self.age_at(DENSE), 0.0, nearest[0]
            while j < size and edges[nearest[j]] <= dense:
                longest, j = max(longest, edges[nearest[j]] - edges[j]), nearest[j]
            plan = self._plans[price] = (edges, done, partial, value, longest or edges[size])
        return plan

    def age_at(self, share: float) -> float:
        """The age by which `share` of generations have finished (linear between samples)."""
        s = self._sorted
        pos = min(max(share, 0.0), 1.0) * (len(s) - 1)
        i = int(pos)
        return s[i] if i + 1 >= len(s) else s[i] + (s[i + 1] - s[i]) * (pos - i)


def _smooth(p: list[float], reach: int) -> list[float]:
    """`p` averaged over `reach` cells either side (fewer at the edges), in one pass."""
    cumulative = list(itertools.accumulate(p, initial=0.0))
    size = len(p)
    return [(cumulative[min(size, j + reach + 1)] - cumulative[max(0, j - reach)]) / (min(size, j + reach + 1) - max(0, j - reach))
            for j in range(size)]


class PollPlanner:
    def __init__(self, *, first_poll_delay: float, poll_interval: float, max_polls_per_second: float,
                 window: int = 500, min_samples: int = 20,
                 clock: Callable[[], float] | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep):
        self.first_poll_delay = first_poll_delay
        self.poll_interval = poll_interval
        self.max_polls_per_second = max_polls_per_second
        self.min_samples = min_samples
        self.window = window
        self.min_gap = poll_interval / BACKLOG_SPEEDUP / 2
        self._latencies: dict[Key, Latencies] = {}
        self._clock = clock  # default: the event loop's clock
        self._sleep = sleep
        self._next_slot = 0.0
        self._waiting: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._dispatcher: asyncio.Task[None] | None = None

    # -- what it learns ------------------------------------------------------------------------
    @property
    def kept(self) -> int:
        """How many intervals of densely polled generations each latency class keeps past the window."""
        return max(1, self.window // KEPT)

    def record(self, key: Key, seconds: float) -> None:
        """A generation of `key` (model, type) took `seconds` from being sent to finishing."""
        self._latencies.setdefault(key, Latencies(self.window, self.kept)).add(max(0.0, seconds))

    def record_seen(self, key: Key, running_at: float, done_at: float, *, dense: bool = False) -> None:
        """A generation of `key` was seen running at age `running_at` (0: when it was sent)
        and finished at age `done_at`: it finished in between, at a time Luma does not say.
        Recording `done_at` would teach the planner every latency late by the detection delay
        (and a later-polling planner would then learn later still); the interval itself is
        what is learned from. `dense`: it was polled densely from its first poll (kept past the
        window: `polls_densely`)."""
        self._latencies.setdefault(key, Latencies(self.window, self.kept)).add_seen(running_at, done_at, dense)

    def polls_densely(self, key: Key, *, backlog: bool) -> bool:
        """Whether a generation of `key` whose polls begin now is polled densely from its first
        poll on: while jobs wait for a slot (the backlog plan), or before the planner has learned
        `key` (every LUMABOT_POLL_INTERVAL after the first). Settled before its latency can show:
        what it teaches is kept past the window (`Latencies`)."""
        return backlog or self._learned(key) is None

    def _learned(self, key: Key) -> Latencies | None:
        seen = self._latencies.get(key)
        return seen if seen is not None and len(seen) >= self.min_samples else None

    def chance(self, key: Key, last_age: float | None, age: float) -> float:
        """The chance that a generation of `key`, unfinished at `last_age` (None: never
        looked at), has finished by `age`. Before anything is learned, a stand-in that grows
        with the age."""
        seen = self._learned(key)
        if seen is None:  # nothing learned: the older, the likelier
            return age / (age + self.first_poll_delay + self.poll_interval)
        before = seen.cdf(last_age) if last_age is not None else 0.0
        if before >= 1.0:
            return 1.0  # older than anything seen: likely done, or stuck; either way, look
        return max(0.0, (seen.cdf(age) - before) / (1.0 - before))

    # -- when to poll --------------------------------------------------------------------------
    def next_poll_age(self, key: Key, last_age: float | None, *, backlog: bool, polling: int = 1) -> float:
        """The age (seconds since it was sent) at which to poll a generation next, given the
        age of its last poll (None: never polled), whether jobs wait for a slot, and how many
        generations are being polled (their gaps stretch to keep the poll rate under the cap)."""
        floor = polling / self.max_polls_per_second
        seen = self._learned(key)
        if seen is None:
            if last_age is None:
                return self.first_poll_delay
            return last_age + max(self.poll_interval / BACKLOG_SPEEDUP if backlog else self.poll_interval, floor)
        before = seen.cdf(last_age) if last_age is not None else 0.0
        start = last_age if last_age is not None else 0.0
        if before >= 1.0:  # older than anything seen: every interval, as before it learned
            return start + max(self.poll_interval, floor)
        # Under backlog a finished generation left unseen keeps a slot idle, and a GET is
        # weighed against that idle time; otherwise against the person's wait, and dearer.
        due = seen.poll_after(start, BACKLOG_PRICE if backlog else STEADY_PRICE)
        if due is None:  # past the oldest seen
            return start + max(self.poll_interval, floor)
        return start + max(due - start, self.min_gap, floor)

    # -- the poll rate cap ---------------------------------------------------------------------
    def _now(self) -> float:
        return self._clock() if self._clock else asyncio.get_running_loop().time()

    async def pace(self, priority: float = 0.0) -> None:
        """Wait for this poll's turn: all polls together stay under max_polls_per_second as a
        real rate (not just on average), and when polls queue up, the one with the highest
        `priority` (its chance of finding the generation finished) goes first."""
        now = self._now()
        if not self._waiting and self._next_slot <= now:
            self._next_slot = now + 1.0 / self.max_polls_per_second
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (-priority, next(self._seq), future))
        if self._dispatcher is None or self._dispatcher.done():
            self._dispatcher = asyncio.ensure_future(self._dispatch())
        await future

    async def _dispatch(self) -> None:
        while self._waiting:
            now = self._now()
            if self._next_slot > now:
                await self._sleep(self._next_slot - now)
                continue
            _, _, future = heapq.heappop(self._waiting)
            if future.done():  # its poll was cancelled
                continue
            self._next_slot = max(now, self._next_slot) + 1.0 / self.max_polls_per_second
            future.set_result(None)

    def close(self) -> None:
        if self._dispatcher is not None:
            self._dispatcher.cancel()
