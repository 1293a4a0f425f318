"""What a job tells people: the status message it starts with, the outcome it ends with, and
finding its messages again after a crash (through the Notifier port)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Awaitable, Callable, TypeVar

from ..jobs.models import GENERATING_SHOWN, Job, JobState, KnownImage
from ..ports import DeliveryError, PostKind
from .record import JobFailed, Recorder, Shutdown, log_context
from .retry import retry
from ..waits import wait_event

log = logging.getLogger("lumabot.runner")
T = TypeVar("T")


class Messages:
    def __init__(self, record: Recorder, shutdown: Shutdown):
        self.record = record
        self.notifier = record.notifier
        self.config = record.config
        self.shutdown = shutdown
        self._announced: dict[str, asyncio.Event] = {}  # batch id -> set when its status is posted

    async def retrying(self, job: Job, call: Callable[[], Awaitable[T]]) -> T:
        """A Slack call, transient errors retried with backoff (the SDK already retried a few
        times) for up to the delivery timeout."""
        return await retry(
            call, transient=lambda e: isinstance(e, DeliveryError) and e.transient,
            backoff=self.config.retry_backoff, until=time.time() + self.config.delivery_timeout,
            on_retry=lambda e: log.warning("slack call failed, retrying: %s", e, extra=log_context(job)))

    async def announce(self, job: Job, resumed: bool, *, at_once: bool = False) -> None:
        """Post the status message (the thread root); without it the job cannot go on, and
        nothing is sent to Luma. After a crash, the message posted before it is found again.
        A batch has one, posted by its first job; the others wait for it. `at_once`: a slot is
        free, so it says "Generating…" from the start (one chat.update fewer), and its ts is
        written with the create's first write (one commit fewer)."""
        if not job.leads:
            return await self._follow(job)
        ts = await self.find_posted(job, "status") if resumed else None
        at_once = ts is None and at_once and not job.in_batch and job.state == JobState.QUEUED
        if at_once:
            job.shown = GENERATING_SHOWN
        try:
            ts = ts or await self.retrying(job, lambda: self.notifier.post_status(job))
        except DeliveryError as err:
            raise self.failure(job, err, "the status message") from None
        if at_once:
            # Written with the create's `submitting` write, a moment later (one commit fewer);
            # before that, should the job have to wait after all (submit). A crash in between
            # finds the message again (find_posted).
            self.record.later(job, status_ts=ts)
        else:
            await self.record.change(job, status_ts=ts)
        if job.in_batch:
            self._announced.pop(job.id, asyncio.Event()).set()

    async def _follow(self, job: Job) -> None:
        """A later image of a batch: its status message is the first image's, once posted (by
        this process, or another replica: then seen within a second). If the first image
        failed before it could post one, this one fails the same way, quietly."""
        assert job.batch_id is not None
        while True:
            lead = await self.record.durably(job, lambda: self.record.store.jobs.get(job.batch_id or ""))
            if lead is not None and lead.status_ts:
                await self.record.change(job, status_ts=lead.status_ts)
                return
            if lead is None or lead.state.finished:
                self._announced.pop(job.batch_id, None)
                raise JobFailed(lead.failure_code if lead and lead.failure_code else "delivery_failed",
                                lead.failure_detail if lead else None, quiet=True)
            event = self._announced.setdefault(job.batch_id, asyncio.Event())
            await wait_event(event, 1.0)

    def failure(self, job: Job, err: DeliveryError, what: str) -> JobFailed:
        """The failure of a final Slack error, logged as loudly as it deserves."""
        if err.policy:
            log.error("SLACK WORKSPACE POLICY blocks lumabot (%s): %s could not be posted; a "
                      "workspace admin can change this", err.policy, what, extra=log_context(job))
            return JobFailed("slack_policy", err.policy)
        if err.no_access:
            return JobFailed("not_in_channel")
        log.error("could not post %s: %s", what, err, extra=log_context(job))
        return JobFailed("delivery_failed")

    async def find_posted(self, job: Job, kind: PostKind) -> str | None:
        """The ts of the job's `kind` message if an earlier process posted it; None if not, or
        if Slack cannot say (then it is posted, at worst twice)."""
        try:
            return await self.retrying(job, lambda: self.notifier.find_posted(job, kind))
        except DeliveryError as err:
            log.warning("could not look for an earlier %s message: %s", kind, err, extra=log_context(job))
            return None

    async def settle(self, job: Job, resumed: bool = False, *, image: KnownImage | None = None,
                     tell: bool = True) -> None:
        """Tell the person the outcome, then record that they were told (with a delivered
        `image`, in the same write as the outcome: a crash before it delivers again, exactly
        once, and tells them then). `tell` False: they know already (a quiet failure)."""
        if job.settled:
            return
        if self.shutdown.stopping:  # no more Slack calls: the next start tells them,
            if image is None:       # but what was delivered is recorded
                return
        else:
            if (tell and job.state == JobState.FAILED
                    and not (resumed and await self.find_posted(job, "failure"))):
                await self._tell_failure(job)
            self.record.later(job, settled=True)
            await self.record.status.show(job)
        await self.record.change(job, image=image)
        self.record.metrics.jobs_finished.labels(job.state.value).inc()

    async def _tell_failure(self, job: Job) -> None:
        """In the job's thread; where that is impossible (no status message, a channel that
        refuses the bot), privately: through the command's response_url, or ephemeral."""
        try:
            if job.root_ts:
                await self.retrying(job, lambda: self.notifier.post_failure(job))
                return
        except DeliveryError as err:
            log.warning("could not post the failure message in the thread: %s", err, extra=log_context(job))
        if not await self.notifier.tell_failure_privately(job):
            log.warning("no way to tell the user about the failure", extra=log_context(job))
