"""Admission to Luma for several replicas: the scheduler's rules (scheduler.py), held in the
database for all replicas together.

The line of waiting jobs, the slots held, the requests-per-minute window, pauses after a 429,
the learned concurrency estimate and whose turn it is live in the store (`store.slots`).
Any replica's dispatch grants slots to the jobs whose turn it is, whichever replica runs them;
each replica notices its own jobs' grants through NOTIFY (or a 1 s poll) and lets them go. A job
waiting for its turn is parked, as in one process: its id here and its row in the line, no task
(`on_grant` starts one when the grant is noticed).

The interface is the in-process Scheduler's, so the runner does not know which one it has:
`acquire` waits for a slot; `release`, `hold` and the 429 notes are written in the background,
in order, by one task. Slots are fenced like jobs: a replica only queues or frees the slots of
jobs it owns (JobLost otherwise), so one that was paused cannot disturb the count.
"""

from __future__ import annotations

import asyncio
import logging
import itertools
from collections import deque
from typing import Awaitable, Callable

from ..jobs.models import DEFAULT_ACCOUNT
from ..store import JobLost, Store, StoreUnavailable
from ..store.slots import Waits
from .scheduler import probe_period
from ..waits import wait_event

log = logging.getLogger("lumabot.runner")

# How often the line is looked at when nothing wakes the dispatcher (a NOTIFY does).
TICK = 1.0
# How often an account's line is looked at by a replica with nothing in it.
IDLE_TICK = 30.0
# At most this many jobs join the line in one transaction.
ENQUEUE_BATCH = 128


class SharedScheduler:
    def __init__(self, store: Store, concurrency: int, *, replica_id: str,
                 rate_window: float = 60.0, account: str = DEFAULT_ACCOUNT):
        self.store = store
        self.slots = store.slots if account == DEFAULT_ACCOUNT else store.slots.for_account(account)
        self.replica_id = replica_id  # slots are only touched for jobs this replica owns
        self.concurrency = concurrency
        self.rate_window = rate_window
        self._waiters: dict[str, asyncio.Future[None]] = {}
        self._parked: set[str] = set()           # waiting jobs with no task (see `park`)
        self.on_grant: Callable[[str], None] | None = None
        self.on_backlog: Callable[[], None] | None = None
        self._holding: set[str] = set()          # jobs of this replica with a slot, or waiting
        # Writes to the slot tables, in the order they were asked for (a release must land
        # before the same job's next enqueue), each with a future for whoever waits on it. Jobs
        # joining the line one after another are written together (see `_tick`).
        self._ops: deque[tuple[Callable[[], Awaitable[None]] | Waits, asyncio.Future[None]]] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._waiting = 0
        self._in_flight = 0
        self._stopped = False
        self._ticking = asyncio.Lock()  # one look at a time (the loop, or a caller of tick)
        self._full_until = 0.0   # (loop time) until then, every slot was taken at the last look

    @property
    def probe_period(self) -> float:
        return probe_period(self.rate_window)

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def waiting(self) -> int:
        return self._waiting

    @property
    def parked(self) -> int:
        return len(self._parked)

    @property
    def parks(self) -> bool:
        return self.on_grant is not None

    def park(self, job_id: str, user_key: str, *, front: bool = False, always: bool = False) -> bool:
        """Queue the job in the database's line with no task waiting here: `on_grant(job_id)`
        when a tick notices its grant. A job that looks like it would not wait (nothing in line
        at the last look, and fewer slots held or asked for here and in all than the
        concurrency) acquires instead, unless `always`."""
        if self.on_grant is None or job_id in self._holding or (self.looks_free() and not always):
            return False
        self._holding.add(job_id)
        self._parked.add(job_id)
        queued = self._later(Waits(job_id, user_key, front))
        queued.add_done_callback(lambda f: self._not_queued(job_id, f))
        return True

    def looks_free(self) -> bool:
        """Nothing in line at the last look, and fewer slots held or asked for here and in all
        than the concurrency. (A replica with nothing in the account looks every IDLE_TICK: a
        line another replica began since may show first as "Generating…", then its place.)"""
        return not self._waiting and max(self._in_flight, len(self._holding)) < self.concurrency

    def next_parked(self) -> str | None:
        return None  # the line is in the database: which replica's job goes next is not known here

    def _not_queued(self, job_id: str, queued: asyncio.Future[None]) -> None:
        if not queued.cancelled() and queued.exception() is not None:  # JobLost: another replica has it
            self._parked.discard(job_id)
            self._holding.discard(job_id)
            log.info("a parked job was taken over by another replica", extra={"job_id": job_id})

    def unpark(self, job_id: str) -> bool:
        if job_id not in self._parked:
            return False
        self._parked.discard(job_id)
        self.release(job_id)  # out of the line
        return True

    async def front(self, limit: int) -> list[tuple[str, int]]:
        """The first `limit` jobs in line (every replica's) and their places, read now."""
        return list(zip(await self.slots.front(limit), itertools.count(1)))

    # -- the scheduler's interface ---------------------------------------------------------------
    async def acquire(self, job_id: str, user_key: str, *, front: bool = False) -> None:
        self._holding.add(job_id)
        # Waiting from before the enqueue is written: its grant is told once, maybe in the
        # same tick.
        fut = self._waiters[job_id] = asyncio.get_running_loop().create_future()
        try:
            await self._later(Waits(job_id, user_key, front))
            self._wake.set()
            await fut
        except asyncio.CancelledError:
            self._waiters.pop(job_id, None)
            self.release(job_id)  # (written after the enqueue: it takes the job out of the line)
            raise
        except JobLost:
            self._waiters.pop(job_id, None)
            self._holding.discard(job_id)
            raise

    def hold(self, job_id: str) -> None:
        self._holding.add(job_id)
        self._later(lambda: self.slots.hold(job_id))

    def release(self, job_id: str) -> None:
        """Free the job's slot, or its place in line if it waits with a task (a parked job
        leaves the line through `unpark`)."""
        if job_id in self._holding and job_id not in self._parked:
            self._holding.discard(job_id)
            self._later(lambda: self.slots.release(job_id, self.replica_id))

    def rate_limited(self, retry_after: float) -> None:
        self._later(lambda: self.slots.pause(retry_after))

    def too_many_concurrent(self, job_id: str, retry_after: float) -> None:
        self._later(lambda: self.slots.too_many(job_id, retry_after, self.probe_period))

    def observe_rate(self, limit: int | None, remaining: int | None, reset_at_unix: float | None) -> None:
        self._later(lambda: self.slots.observe_rate(limit, remaining, reset_at_unix,
                                                          self.rate_window))

    # -- the dispatcher ----------------------------------------------------------------------------
    def _later(self, op: Callable[[], Awaitable[None]] | Waits) -> asyncio.Future[None]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._ops.append((op, done))
        self._ensure_running()
        self._wake.set()
        return done

    def _ensure_running(self) -> None:
        if self._stopped:
            return
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="shared-scheduler")

    async def stop(self) -> None:
        self._stopped = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        heard = False   # (a notice that came before this loop is still there: its wait ends at once)
        while True:
            wait = TICK
            # Cleared before the look, not after it: a write asked for while the look is under
            # way (a generation seen finished) wakes the loop again, not at the next TICK.
            self._wake.clear()
            try:
                # Woken only by jobs of this replica joining the line while every slot was
                # taken at the last look: they are written, and nothing else can have changed.
                full = not heard and asyncio.get_running_loop().time() < self._full_until
                wait = await self.tick(joins_only=full)
            except StoreUnavailable as exc:
                log.warning("database unavailable for Luma's slots, will retry: %s", exc)
            except Exception:
                log.exception("slot dispatch failed")
            if not self._holding and not self._ops:
                # Nothing of this replica's in this account (waiting or in flight): the replicas
                # that have some look at its line; this one looks when it asks for a slot, or
                # after IDLE_TICK (a replica has a scheduler per Luma account: idle ones cost
                # next to nothing).
                await wait_event(self._wake, IDLE_TICK)
                continue
            waits = [asyncio.ensure_future(self.slots.wait(wait)),
                     asyncio.ensure_future(self._wake.wait())]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                heard = waits[0].done()   # another replica's notice (or the time to look again)
                for w in waits:
                    w.cancel()

    async def tick(self, *, joins_only: bool = False) -> float:
        """Write the queued notes, grant what may go, wake this replica's granted jobs;
        seconds until the next look. `joins_only`: every slot was taken at the last look and no
        other replica has freed one since; if the notes are only jobs joining the line, they
        are written and that is all (a look at the line could grant nothing: under a backlog,
        each burst of requests would otherwise cost every replica a look at the whole line)."""
        async with self._ticking:
            return await self._tick(joins_only)

    async def _enqueue_run(self) -> None:
        """The jobs at the head of the writes that join the line (up to the next other write,
        and each job once), written in one transaction: after a burst of requests, the line
        catches up with them at once, not one transaction (and one turn of the account's lock)
        a job."""
        run: list[tuple[Waits, asyncio.Future[None]]] = []
        seen: set[str] = set()
        for op, done in itertools.islice(self._ops, ENQUEUE_BATCH):
            if not isinstance(op, Waits) or op.job_id in seen:
                break
            run.append((op, done))
            seen.add(op.job_id)
        failed: Exception | None = None
        try:
            lost = await self.slots.enqueue_many([w for w, _ in run], replica_id=self.replica_id)
        except StoreUnavailable:
            raise  # tried again at the next tick, in the same order
        except Exception as exc:  # for whoever waits on these writes, as for any other write
            failed, lost = exc, set()
        for w, done in run:
            self._ops.popleft()
            if not done.done():
                if failed is not None or w.job_id in lost:
                    done.set_exception(failed or JobLost(w.job_id))
                else:
                    done.set_result(None)

    async def _tick(self, joins_only: bool) -> float:
        while self._ops:
            op, done = self._ops[0]
            if isinstance(op, Waits):
                await self._enqueue_run()
                continue
            joins_only = False   # a slot freed, a 429 noted...: the line must be looked at
            try:
                await op()
            except StoreUnavailable:
                raise  # tried again at the next tick, in the same order
            except Exception as exc:  # e.g. JobLost: for whoever waits on this write
                if not done.done():
                    done.set_exception(exc)
            else:
                if not done.done():
                    done.set_result(None)
            self._ops.popleft()
        loop = asyncio.get_running_loop()
        if joins_only:
            return max(0.0, self._full_until - loop.time())
        _, wait = await self.slots.dispatch(concurrency=self.concurrency,
                                                  rate_window=self.rate_window,
                                                  probe_period=self.probe_period)
        for job_id in await self.slots.granted_to(self.replica_id):
            fut = self._waiters.pop(job_id, None)
            if fut is not None:
                if not fut.done():
                    fut.set_result(None)
            elif job_id in self._parked:
                self._parked.discard(job_id)
                assert self.on_grant is not None
                self.on_grant(job_id)
        was_waiting = self._waiting
        self._waiting, self._in_flight = await self.slots.counts()
        if self._waiting and not was_waiting and self.on_backlog is not None:
            self.on_backlog()
        wait = min(TICK, wait) if wait > 0 else TICK
        # Jobs still wait after this look, or every slot is taken: none can go before a slot is
        # freed (a notice) or `wait` has passed (a pause, the requests-per-minute window, a
        # replica gone).
        full = self._waiting > 0 or self._in_flight >= self.concurrency
        self._full_until = loop.time() + wait if full else 0.0
        return wait

