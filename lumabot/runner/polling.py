"""When to poll a pending generation.

- The first poll comes at a low quantile (5 %) of the latencies lumabot has recently seen for
  that model, or after LUMABOT_FIRST_POLL_DELAY until it has seen enough: no GETs are spent
  while an image is almost surely not ready, and few images finish before the first poll.
- Then every LUMABOT_POLL_INTERVAL; four times as often while other jobs wait for a Luma
  slot, because noticing a finished generation sooner frees its slot sooner (Luma does not
  rate-limit GETs).
- All polls together stay under LUMABOT_MAX_POLLS_PER_SECOND (each poll waits for its slot),
  and with very many generations pending their intervals stretch to match, so the process stays
  responsive however much is pending.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque
from typing import Awaitable, Callable

BACKLOG_SPEEDUP = 4


class PollPlanner:
    def __init__(self, *, first_poll_delay: float, poll_interval: float, max_polls_per_second: float,
                 quantile: float = 0.05, window: int = 200, min_samples: int = 20,
                 clock: Callable[[], float] | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep):
        self.first_poll_delay = first_poll_delay
        self.poll_interval = poll_interval
        self.max_polls_per_second = max_polls_per_second
        self._next_slot = 0.0
        self.quantile = quantile
        self.min_samples = min_samples
        self._latencies: dict[str, deque[float]] = defaultdict(lambda: deque(maxlen=window))
        self._clock = clock  # default: the event loop's clock
        self._sleep = sleep

    def record(self, model: str, seconds: float) -> None:
        """A generation of `model` was seen completed `seconds` after it was submitted."""
        self._latencies[model].append(max(0.0, seconds))

    def first_poll_after(self, model: str) -> float:
        seen = self._latencies.get(model)
        if not seen or len(seen) < self.min_samples:
            return self.first_poll_delay
        ordered = sorted(seen)
        return ordered[int(self.quantile * (len(ordered) - 1))]

    async def pace(self) -> None:
        """Wait for this poll's turn: all polls together stay under max_polls_per_second, as
        a real rate (not just on average: generations polled together would come in bursts)."""
        now = self._clock() if self._clock else asyncio.get_running_loop().time()
        slot = max(now, self._next_slot)
        self._next_slot = slot + 1.0 / self.max_polls_per_second
        if slot > now:
            await self._sleep(slot - now)

    def interval(self, *, backlog: bool, polling: int = 1) -> float:
        """Seconds to the next poll of one generation, `polling` being how many are polled."""
        base = self.poll_interval / BACKLOG_SPEEDUP if backlog else self.poll_interval
        return max(base, polling / self.max_polls_per_second)
