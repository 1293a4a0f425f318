"""Retrying with backoff until a deadline: the one helper behind every retry loop.

A wait starts at `first` seconds and doubles up to MAX_BACKOFF, with ±20 % jitter so that jobs
that failed together do not retry together.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Awaitable, Callable, TypeVar

T = TypeVar("T")

MAX_BACKOFF = 30.0


class Backoff:
    """Waits between retries: `first` seconds, doubling up to MAX_BACKOFF, with ±20 % jitter."""

    def __init__(self, first: float):
        self.first = self._next = first

    def delay(self) -> float:
        seconds = self._next * random.uniform(0.8, 1.2)
        self._next = min(self._next * 2, MAX_BACKOFF)
        return seconds

    async def sleep(self) -> None:
        await asyncio.sleep(self.delay())

    def reset(self) -> None:
        self._next = self.first


async def retry(call: Callable[[], Awaitable[T]], *, transient: Callable[[Exception], bool],
                backoff: float, until: float | None = None,
                on_retry: Callable[[Exception], None] | None = None,
                clock: Callable[[], float] = time.time) -> T:
    """`call()` until it succeeds. A failure `transient` says may pass is retried after a backoff
    wait, until the time `until` on `clock` (None: for ever); any other failure, or one past the
    deadline, is raised."""
    waits = Backoff(backoff)
    while True:
        try:
            return await call()
        except Exception as exc:
            if not transient(exc) or (until is not None and clock() >= until):
                raise
            if on_retry is not None:
                on_retry(exc)
            await waits.sleep()
