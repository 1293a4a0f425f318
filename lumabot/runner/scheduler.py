"""Admission to Luma: which job may submit next, and when.

Luma refuses (does not queue) requests over its per-account limits, so lumabot keeps its own
queue. A job holds a slot from the moment it submits until its generation reaches a terminal
state at Luma. At most `concurrency` slots are held; submissions are paced under the
requests-per-minute allowance learned from Luma's X-RateLimit-* headers; after a 429 "Rate
limit exceeded" nobody submits until Retry-After has passed; after a 429 "Too many concurrent
jobs" the concurrency estimate is lowered to what is in flight for a while. Waiting jobs are served round-robin
across users, so one person's fifty prompts do not starve a colleague's one.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Callable, Iterable, Protocol
from collections import OrderedDict, deque
from dataclasses import dataclass, field


class SlotScheduler(Protocol):
    """What the runner needs of admission to Luma: this module's Scheduler (one process), or
    shared_scheduler.SharedScheduler (several replicas, state in the database)."""

    on_grant: Callable[[str], None] | None  # called with a parked job's id when its slot is granted

    @property
    def in_flight(self) -> int: ...
    @property
    def waiting(self) -> int: ...
    @property
    def parked(self) -> int: ...
    async def acquire(self, job_id: str, user_key: str, *, front: bool = False) -> None: ...
    def hold(self, job_id: str) -> None: ...
    def release(self, job_id: str) -> None: ...
    def rate_limited(self, retry_after: float) -> None: ...
    def too_many_concurrent(self, job_id: str, retry_after: float) -> None: ...
    def observe_rate(self, limit: int | None, remaining: int | None, reset_at_unix: float | None) -> None: ...
    async def front(self, limit: int) -> list[tuple[str, int]]:
        """The first `limit` waiting jobs and their places in line (1 = next), in order."""
    @property
    def parks(self) -> bool:
        """Whether `park` can put jobs in line without a task."""
    def park(self, job_id: str, user_key: str, *, front: bool = False, always: bool = False) -> bool:
        """Put a job in line without a task waiting for it: `on_grant(job_id)` is called when
        its slot is granted. False when this scheduler does not park, or (unless `always`)
        when a slot is free now: the caller acquires."""
    def unpark(self, job_id: str) -> bool:
        """Take a parked job out of the line (cancelled); False if it is not parked here."""
    async def stop(self) -> None: ...


def probe_period(rate_window: float) -> float:
    """How long a concurrency ceiling learned from a 429 is trusted before probing one slot
    higher: 15 rate windows (15 minutes at Luma's scale), so probing costs at most a few 429s
    an hour."""
    return 15 * rate_window


def round_robin_front(queues: Iterable[Iterable[str]], limit: int) -> list[tuple[str, int]]:
    """The first `limit` waiting jobs and their places in line (1 = next), from each person's
    line of job ids in the order people take turns: the first of each line, then the second of
    each, and so on. Costs what it returns (plus one step per person), not the whole line."""
    lines = deque(iter(q) for q in queues)
    out: list[tuple[str, int]] = []
    while lines and len(out) < limit:
        for _ in range(len(lines)):
            if len(out) >= limit:
                break
            line = lines.popleft()
            job_id = next(line, None)
            if job_id is not None:
                out.append((job_id, len(out) + 1))
                lines.append(line)
    return out


@dataclass(eq=False, slots=True)
class _Waiter:
    job_id: str
    user_key: str
    future: asyncio.Future[None] | None = field(repr=False)  # None: parked (no task waits)


class Scheduler:
    def __init__(self, concurrency: int, *, rate_window: float = 60.0,
                 clock: Callable[[], float] = time.monotonic):
        self.concurrency = concurrency
        self.rate_window = rate_window
        self._clock = clock
        # Requests-per-minute allowance learned from X-RateLimit-Limit; None until seen
        # (missing headers: no pacing, 429s are still honoured).
        self.rate_limit: int | None = None
        self._recent: deque[float] = deque()  # when recent submissions were let through
        self._in_flight: set[str] = set()
        self._queues: OrderedDict[str, deque[_Waiter]] = OrderedDict()  # user -> waiters, in turn order
        self._waiting = 0  # waiters in the queues (kept, not summed: it is read at every poll)
        self._parked: dict[str, _Waiter] = {}
        # Called with a parked job's id when its slot is granted (the runner starts its task).
        self.on_grant: Callable[[str], None] | None = None
        self._paused_until = 0.0
        self._estimate = concurrency
        self._estimate_until = 0.0
        self._timer: asyncio.TimerHandle | None = None

    # -- state ---------------------------------------------------------------------------------
    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    @property
    def waiting(self) -> int:
        return self._waiting

    @property
    def parked(self) -> int:
        """Waiting jobs with no task (see `park`)."""
        return len(self._parked)

    @property
    def probe_period(self) -> float:
        return probe_period(self.rate_window)

    def limit(self) -> int:
        if self._estimate_until and self._clock() >= self._estimate_until:
            self._estimate += 1
            if self._estimate >= self.concurrency:
                self._estimate, self._estimate_until = self.concurrency, 0.0
            else:
                self._estimate_until = self._clock() + self.probe_period
        return self._estimate

    # -- admission -----------------------------------------------------------------------------
    async def acquire(self, job_id: str, user_key: str, *, front: bool = False) -> None:
        """Wait until `job_id` may submit to Luma; it then holds a slot until release()."""
        fut = asyncio.get_running_loop().create_future()
        waiter = _Waiter(job_id, user_key, fut)
        self._enqueue(waiter, front)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release(job_id)  # granted and cancelled in the same breath
            else:
                self._remove(waiter)
            raise

    @property
    def parks(self) -> bool:
        return self.on_grant is not None

    def park(self, job_id: str, user_key: str, *, front: bool = False, always: bool = False) -> bool:
        """A waiting job costs its id here, not a task and a live job, until its turn comes
        (then `on_grant`). A job that would not wait is not parked (it acquires), unless
        `always`: it is then granted at once."""
        if self.on_grant is None or job_id in self._parked or (not always and self._free_now()):
            return False
        waiter = _Waiter(job_id, sys.intern(user_key), None)  # one copy of each person's key
        self._parked[job_id] = waiter
        self._enqueue(waiter, front)
        return True

    def unpark(self, job_id: str) -> bool:
        waiter = self._parked.pop(job_id, None)
        if waiter is None:
            return False
        self._remove(waiter)
        return True

    def _free_now(self) -> bool:
        return (not self._queues and len(self._in_flight) < self.limit() and self.paused_for() <= 0
                and self._rate_wait() <= 0)

    def hold(self, job_id: str) -> None:
        """Count a generation already in flight at Luma (a job resumed after a restart)."""
        self._in_flight.add(job_id)

    def release(self, job_id: str) -> None:
        """The job's generation is terminal at Luma, or its submit failed: free the slot."""
        if job_id in self._in_flight:
            self._in_flight.discard(job_id)
            self._dispatch()

    def rate_limited(self, retry_after: float) -> None:
        """Luma said "Rate limit exceeded": nobody submits for `retry_after` seconds."""
        self._paused_until = max(self._paused_until, self._clock() + max(0.0, retry_after))

    def too_many_concurrent(self, job_id: str, retry_after: float) -> None:
        """Luma said "Too many concurrent jobs" to `job_id` (whose slot is released): the
        account holds no more than what we have in flight. That ceiling is kept for a probe
        period (see `limit`); the job waits for one of ours to finish."""
        others = len(self._in_flight - {job_id})
        if others == 0:
            # Someone else uses the account's slots: wait as told.
            self.rate_limited(retry_after)
        else:
            self._estimate = max(1, min(self._estimate, others))
            self._estimate_until = self._clock() + max(retry_after, self.probe_period)

    def observe_rate(self, limit: int | None, remaining: int | None, reset_at_unix: float | None) -> None:
        """From a create's X-RateLimit-* headers: learn the allowance; none left means wait for
        the window's reset."""
        if limit is not None and limit > 0:
            self.rate_limit = limit
        if remaining is not None and remaining <= 0 and reset_at_unix is not None:
            wait = reset_at_unix - time.time()
            if wait > 0:
                self.rate_limited(min(wait, self.rate_window))

    def _rate_wait(self) -> float:
        """Seconds until one more submission fits the learned requests-per-minute allowance."""
        if not self.rate_limit:
            return 0.0
        now = self._clock()
        while self._recent and self._recent[0] <= now - self.rate_window:
            self._recent.popleft()
        if len(self._recent) < self.rate_limit:
            return 0.0
        return self._recent[0] + self.rate_window - now

    async def front(self, limit: int) -> list[tuple[str, int]]:
        """The first `limit` waiting jobs and their places in line, in the round-robin order."""
        return round_robin_front(((w.job_id for w in q) for q in self._queues.values()), limit)

    def paused_for(self) -> float:
        return max(0.0, self._paused_until - self._clock())

    async def stop(self) -> None:
        for job_id in list(self._parked):
            self.unpark(job_id)  # they stay queued in the store for the next start
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- internals -----------------------------------------------------------------------------
    def _enqueue(self, waiter: _Waiter, front: bool) -> None:
        queue = self._queues.get(waiter.user_key)
        if queue is None:
            queue = self._queues[waiter.user_key] = deque()
            if front:
                self._queues.move_to_end(waiter.user_key, last=False)
        (queue.appendleft if front else queue.append)(waiter)
        self._waiting += 1
        self._dispatch()

    def _remove(self, waiter: _Waiter) -> None:
        queue = self._queues.get(waiter.user_key)
        if queue is not None:
            try:
                queue.remove(waiter)
                self._waiting -= 1
            except ValueError:
                pass
            if not queue:
                del self._queues[waiter.user_key]

    def _dispatch(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._queues and len(self._in_flight) < self.limit():
            pause = max(self.paused_for(), self._rate_wait())
            if pause > 0:
                loop = asyncio.get_running_loop()
                self._timer = loop.call_later(pause, self._dispatch)
                return
            user_key, queue = next(iter(self._queues.items()))
            waiter = queue.popleft()
            self._waiting -= 1
            # Round-robin: this user goes to the back of the line of users.
            if queue:
                self._queues.move_to_end(user_key)
            else:
                del self._queues[user_key]
            if waiter.future is None:
                if self._parked.pop(waiter.job_id, None) is None:
                    continue  # unparked meanwhile
            elif waiter.future.done():
                continue
            self._in_flight.add(waiter.job_id)
            self._recent.append(self._clock())
            if waiter.future is None:
                assert self.on_grant is not None
                self.on_grant(waiter.job_id)
            else:
                waiter.future.set_result(None)
        if self._queues and self._estimate_until:
            # The lowered estimate expires by itself: look again then.
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(max(0.0, self._estimate_until - self._clock()), self._dispatch)
