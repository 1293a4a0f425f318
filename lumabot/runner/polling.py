"""When to poll a pending generation, and which poll goes first when polls must wait.

Luma has no webhook: a finished generation is only seen by polling it, and every GET is a
request. The planner learns how long generations take, per model and type (an edit apart from
an image), from the latencies it sees, and plans each job's polls from that distribution:

- The next poll of a job comes when the chance that it finished since its last poll reaches
  `STEADY_CHANCE` (about two GETs per job).
- While other jobs wait for a Luma slot, a finished generation left unseen keeps a slot idle:
  polls start when `BACKLOG_FIRST_CHANCE` of generations are done, and the gap between two
  polls shrinks as the square root of the rate at which those still running finish (the gap
  that balances a GET against the idle time it saves), at most LUMABOT_POLL_INTERVAL.
  Gaps are at least `min_gap`; a generation older than any seen is polled every
  LUMABOT_POLL_INTERVAL.
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
import math
import heapq
import itertools
from collections import deque
from typing import Awaitable, Callable

BACKLOG_SPEEDUP = 4       # the fallback interval's speed-up while jobs wait for a slot
STEADY_CHANCE = 0.55      # poll when it finished since the last poll with this chance
BACKLOG_FIRST_CHANCE = 0.05  # under backlog, the first poll when this share is done
BACKLOG_GAP = 0.12        # under backlog, gaps of this share of the median at a typical finishing rate
Key = tuple[str, str]     # (model, type)


class Latencies:
    """The latest latencies seen for one model and type, kept sorted for quantiles."""

    def __init__(self, window: int):
        self._order: deque[float] = deque(maxlen=window)
        self._sorted: list[float] = []

    def add(self, seconds: float) -> None:
        if len(self._order) == self._order.maxlen:
            old = self._order[0]
            del self._sorted[bisect.bisect_left(self._sorted, old)]
        self._order.append(seconds)
        bisect.insort(self._sorted, seconds)

    def __len__(self) -> int:
        return len(self._sorted)

    def cdf(self, t: float) -> float:
        """The share of generations finished within `t` seconds."""
        return bisect.bisect_right(self._sorted, t) / len(self._sorted)

    def hazard(self, age: float) -> float:
        """How fast generations still running at `age` finish (per second), from the share
        of them finished within the next tenth of the median latency."""
        width = max(self.age_at(0.5) / 10, 1e-3)
        alive = 1.0 - self.cdf(age)
        floor = 1.0 / (10 * width * len(self._sorted))  # a window with no sample is not "never"
        if alive <= 0.0:
            return 1.0 / width
        return max((self.cdf(age + width) - self.cdf(age)) / (alive * width), floor)

    def age_at(self, share: float) -> float:
        """The age by which `share` of generations have finished (linear between samples)."""
        s = self._sorted
        pos = min(max(share, 0.0), 1.0) * (len(s) - 1)
        i = int(pos)
        return s[i] if i + 1 >= len(s) else s[i] + (s[i + 1] - s[i]) * (pos - i)


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
    def record(self, key: Key, seconds: float) -> None:
        """A generation of `key` (model, type) was seen finished `seconds` after it was sent."""
        self._latencies.setdefault(key, Latencies(self.window)).add(max(0.0, seconds))

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
        if not backlog or last_age is None:
            target = BACKLOG_FIRST_CHANCE if backlog else STEADY_CHANCE
            return start + max(seen.age_at(before + target * (1.0 - before)) - start, self.min_gap, floor)
        # Under backlog a finished generation left unseen keeps a slot idle: the gap that
        # balances a GET against the idle time it saves shrinks as the square root of the rate
        # at which the generations still running finish.
        gap = BACKLOG_GAP * math.sqrt(seen.age_at(0.5) / seen.hazard(start))
        return start + max(min(gap, self.poll_interval), self.min_gap, floor)

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
