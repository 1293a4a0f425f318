"""Admission to Luma in one process: the rule of jobs/slots.py (concurrency, the learned
ceiling, the requests-per-minute window, pauses after a 429, round-robin between people), with
its state in memory. Several replicas keep the same state in the database instead
(shared_scheduler.py, store/slots.py).

The line is an ordered dict of workspaces (the one served longest ago first), each an ordered
dict of its people (likewise): a workspace or a person who starts waiting joins at the back, a
retry at the front, and one let through goes to the back: the order jobs/slots.joins gives the
database's line in numbers. A job's line key (jobs/slots.line_key) says both.
"""

from __future__ import annotations

import asyncio
import sys
import time
from itertools import islice
from typing import Callable, Iterable, Iterator, Protocol, TypeVar
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from ..jobs import slots
from ..jobs.slots import Ceiling, Grant


class SlotScheduler(Protocol):
    """What the runner needs of admission to Luma: this module's Scheduler (one process), or
    shared_scheduler.SharedScheduler (several replicas, state in the database)."""

    on_grant: Callable[[str], None] | None  # called with a parked job's id when its slot is granted
    on_backlog: Callable[[], None] | None   # called when jobs begin to wait for a slot

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
    def looks_free(self) -> bool:
        """Whether a new job would get a slot at once (as far as this process can tell)."""
    def next_parked(self) -> str | None:
        """The parked job whose slot this process grants next, if it knows (the runner loads
        it ahead of its turn); None when none is parked, or the line is elsewhere."""
    async def stop(self) -> None: ...


probe_period = slots.probe_period
T = TypeVar("T")


def interleave(lines: Iterable[Iterable[T]]) -> Iterator[T]:
    """The first of each line, then the second of each, and so on. Lazily: a line is started
    only when its first turn comes, so taking n items costs about n steps, however many lines
    there are (a thousand workspaces of fifty people each: the front of the line is a few
    hundred steps, not fifty thousand)."""
    started: deque[Iterator[T]] = deque()
    for line in lines:          # the first round, one line at a time
        it = iter(line)
        for item in it:
            yield item
            started.append(it)
            break
    while started:              # the later rounds
        it = started.popleft()
        for item in it:
            yield item
            started.append(it)
            break


def round_robin_front(queues: Iterable[Iterable[str]], limit: int) -> list[tuple[str, int]]:
    """The first `limit` waiting jobs and their places in line (1 = next), from each line of
    job ids in the order the lines take turns."""
    return [(job_id, n) for n, job_id in enumerate(islice(interleave(queues), limit), 1)]


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
        # workspace -> person -> waiters, both in turn order
        self._queues: OrderedDict[str, OrderedDict[str, deque[_Waiter]]] = OrderedDict()
        self._waiting = 0  # waiters in the queues (kept, not summed: it is read at every poll)
        self._parked: dict[str, _Waiter] = {}
        # Called with a parked job's id when its slot is granted (the runner starts its task).
        self.on_grant: Callable[[str], None] | None = None
        self.on_backlog: Callable[[], None] | None = None
        self._paused_until = 0.0
        self._ceiling = Ceiling()
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
        self._ceiling = self._ceiling.now(self.concurrency, self._clock(), self.probe_period)
        return self._ceiling.limit(self.concurrency)

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
        if self.on_grant is None or job_id in self._parked or (not always and self.looks_free()):
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

    def looks_free(self) -> bool:
        return not self._queues and self._grant().count > 0

    def next_parked(self) -> str | None:
        """The head of the line (the first person of the workspace served longest ago), if
        parked."""
        people = next(iter(self._queues.values()), None)
        queue = next(iter(people.values()), None) if people else None
        head = queue[0] if queue else None
        return head.job_id if head is not None and head.job_id in self._parked else None

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
        self._paused_until = slots.paused(self._paused_until, self._clock(), retry_after)

    def too_many_concurrent(self, job_id: str, retry_after: float) -> None:
        """Luma said "Too many concurrent jobs" to `job_id` (whose slot is released): the
        account holds no more than what we have in flight, for a probe period; with nothing of
        ours in flight, someone else uses the account: wait as told."""
        self._ceiling, pause = slots.too_many_concurrent(
            self._ceiling, others_in_flight=len(self._in_flight - {job_id}), now=self._clock(),
            retry_after=retry_after, probe=self.probe_period)
        if pause is not None:
            self.rate_limited(pause)

    def observe_rate(self, limit: int | None, remaining: int | None, reset_at_unix: float | None) -> None:
        """From a create's X-RateLimit-* headers: learn the allowance; none left means wait for
        the window's reset."""
        learned, wait = slots.rate_headers(limit, remaining, reset_at_unix, time.time(), self.rate_window)
        if learned is not None:
            self.rate_limit = learned
        if wait is not None:
            self.rate_limited(wait)

    def _grant(self) -> Grant:
        """How many waiting jobs may go now (jobs/slots.grant), the rate window's old entries
        dropped first."""
        now = self._clock()
        while self._recent and self._recent[0] <= now - self.rate_window:
            self._recent.popleft()
        return slots.grant(in_flight=len(self._in_flight), limit=self.limit(), recent=self._recent,
                           rate_limit=self.rate_limit, paused_until=self._paused_until, now=now,
                           rate_window=self.rate_window)

    async def front(self, limit: int) -> list[tuple[str, int]]:
        """The first `limit` waiting jobs and their places in line, in the round-robin order."""
        return round_robin_front((interleave((w.job_id for w in q) for q in people.values())
                                  for people in self._queues.values()), limit)

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
        team = slots.team_of(waiter.user_key)
        people = self._queues.get(team)
        if people is None:
            people = self._queues[team] = OrderedDict()
            if front:
                self._queues.move_to_end(team, last=False)
        queue = people.get(waiter.user_key)
        if queue is None:
            queue = people[waiter.user_key] = deque()
            if front:
                people.move_to_end(waiter.user_key, last=False)
        (queue.appendleft if front else queue.append)(waiter)
        self._waiting += 1
        self._dispatch()
        if self._waiting == 1 and self.on_backlog is not None:  # the first to wait (not granted at once)
            self.on_backlog()

    def _remove(self, waiter: _Waiter) -> None:
        team = slots.team_of(waiter.user_key)
        people = self._queues.get(team)
        queue = people.get(waiter.user_key) if people is not None else None
        if people is not None and queue is not None:
            try:
                queue.remove(waiter)
                self._waiting -= 1
            except ValueError:
                pass
            if not queue:
                del people[waiter.user_key]
            if not people:
                del self._queues[team]

    def _dispatch(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._queues:
            granted = self._grant()
            if granted.count == 0:
                if granted.wait > 0 and len(self._in_flight) < self.limit():
                    self._timer = asyncio.get_running_loop().call_later(granted.wait, self._dispatch)
                    return
                break
            team, people = next(iter(self._queues.items()))
            user_key, queue = next(iter(people.items()))
            waiter = queue.popleft()
            self._waiting -= 1
            # Round-robin: this person goes to the back of their workspace's people, and the
            # workspace to the back of the workspaces.
            if queue:
                people.move_to_end(user_key)
            else:
                del people[user_key]
            if people:
                self._queues.move_to_end(team)
            else:
                del self._queues[team]
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
        if self._queues and self._ceiling.until is not None:
            # The lowered ceiling expires by itself: look again then.
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(max(0.0, self._ceiling.until - self._clock()), self._dispatch)
