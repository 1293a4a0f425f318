"""The status message follows its job, or for a batch (the images of one request), all of them:
"2 of 4 done", then every image together. Updates go through here from every step (state
changes, place in line, the outcome); a batch's message is updated only when what it shows
changes, one update at a time, from the freshest copy of each of its jobs."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

from ..jobs.batches import BatchProgress
from ..jobs.models import Job, JobState
from ..ports import Notifier
from ..store import Store, StoreUnavailable

log = logging.getLogger("lumabot.runner")

# A batch not shown for this long is forgotten here (its jobs were taken over by another replica,
# which finishes them); should it come back, its status is read afresh.
FORGET_AFTER = 3600.0
_ORDER = {JobState.QUEUED: 0, JobState.SUBMITTING: 1, JobState.GENERATING: 2, JobState.DELIVERING: 3}


def _further(a: Job, b: Job) -> Job:
    """The copy of a job that is further along (a live job ahead of the database, or a row
    another task or replica wrote since)."""
    def rank(j: Job) -> tuple[int, bool, bool]:
        return (4 if j.state.finished else _ORDER[j.state], j.settled, j.slack_file_id is not None)
    return b if rank(b) > rank(a) else a


class StatusBoard:
    def __init__(self, store: Store, notifier: Notifier, *, clock: Callable[[], float] = time.monotonic):
        self.store = store
        self.notifier = notifier
        self._clock = clock
        self._live: dict[str, dict[str, Job]] = {}        # batch id -> job id -> latest copy seen
        self._shown: dict[str, tuple[object, ...]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._touched: dict[str, float] = {}              # batch id -> when it was last shown
        self._swept = clock()

    @property
    def batches(self) -> int:
        """Batches whose status this replica keeps track of."""
        return len(self._touched)

    async def show(self, job: Job) -> None:
        """Show `job`'s current state on its status message (best effort: cosmetic)."""
        if not job.in_batch:
            await self.notifier.update_status(job)
            return
        if not job.status_ts:
            return
        assert job.batch_id is not None
        batch_id = job.batch_id
        now = self._clock()
        self._touched[batch_id] = now
        if now - self._swept >= FORGET_AFTER / 4:
            self._forget_idle(now)
        live = self._live.setdefault(batch_id, {})
        live[job.id] = job
        async with self._locks.setdefault(batch_id, asyncio.Lock()):
            try:
                rows = await self.store.jobs.batch(batch_id)
            except StoreUnavailable as exc:
                log.warning("could not read a batch for its status: %s", exc, extra={"job_id": job.id})
                return
            jobs = [_further(live[r.id], r) if r.id in live else r for r in rows]
            for j in jobs:  # a place in line is only ever on live copies
                if j.queue_position is None and j.id in live and j.state == JobState.QUEUED:
                    j.queue_position = live[j.id].queue_position
            progress = BatchProgress.of(jobs)
            if progress.shown() == self._shown.get(batch_id):
                return
            self._shown[batch_id] = progress.shown()
            await self.notifier.update_status(job, progress)
            if progress.finished:
                self._drop(batch_id)

    def _forget_idle(self, now: float) -> None:
        self._swept = now
        for batch_id, at in list(self._touched.items()):
            lock = self._locks.get(batch_id)
            if now - at >= FORGET_AFTER and not (lock is not None and lock.locked()):
                self._drop(batch_id)

    def _drop(self, batch_id: str) -> None:
        for kept in (self._live, self._shown, self._locks, self._touched):
            kept.pop(batch_id, None)
