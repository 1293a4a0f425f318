"""Submitting: a queued job waits for a Luma slot (the scheduler), gets its input images, and
is created at Luma. 429s send it back to the line; an unreachable Luma is retried until the
generation timeout, except when the create may have reached Luma (never paid for twice)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Literal

from ..jobs.identity import luma_user_id
from ..jobs.models import GenerationParams, ImageSource, Job, JobState
from ..jobs.slots import line_key
from ..luma.accounts import LumaAccounts
from ..luma.client import LumaRateLimited, LumaRejected, LumaUnavailable
from ..ports import InputError, InputFiles
from ..store import StoreUnavailable
from .record import JobFailed, Parked, Recorder, Shutdown, log_context, luma_of, rejected
from .retry import Backoff
from .scheduler import SlotScheduler
from .schedulers import AccountSchedulers

log = logging.getLogger("lumabot.runner")


class Submitter:
    def __init__(self, record: Recorder, schedulers: AccountSchedulers, inputs: InputFiles, accounts: LumaAccounts,
                 shutdown: Shutdown):
        self.record = record
        self.config = record.config
        self.schedulers = schedulers
        self.inputs = inputs
        self.accounts = accounts
        self.shutdown = shutdown

    async def __call__(self, job: Job, *, granted: bool = False) -> None:
        """From QUEUED (or SUBMITTING after a crash) to GENERATING, or JobFailed; Parked when
        the job must wait for a slot (`granted`: it was parked and its slot is now held)."""
        first_try = time.time()
        backoff = Backoff(self.config.retry_backoff)
        line = line_key(job.team_id, job.user_id)   # its person's line, within its workspace's
        scheduler = self.schedulers.for_job(job.id, job.account)   # its Luma account's
        while True:
            if self.shutdown.stopping:
                raise asyncio.CancelledError()
            front = job.waiting_reason is not None
            if granted:
                granted = False
            else:
                if job.state == JobState.QUEUED:
                    if scheduler.parks and not scheduler.looks_free():
                        # It waits without a task, and its turn reads it from the store: what its
                        # task held back (the status message's ts: Messages.announce) is written now.
                        await self.record.write_held(job)
                    if scheduler.park(job.id, line, front=front):
                        raise Parked()
                await scheduler.acquire(job.id, line, front=front)
            params = await self._prepare_inputs(job)
            if params is None:
                scheduler.release(job.id)
                if time.time() - first_try > self.config.generation_timeout:
                    raise JobFailed("image_download_failed")
                await backoff.sleep()
                continue
            outcome = await self._create(job, params, scheduler, give_up=first_try + self.config.generation_timeout)
            if outcome == "created":
                return
            if outcome == "unavailable":
                await backoff.sleep()  # (after a 429 the scheduler holds the line back itself)

    async def _prepare_inputs(self, job: Job) -> GenerationParams | None:
        """The job's parameters with people's images downloaded and normalised, made just
        before the create and dropped after it (image bytes are never stored or kept while a
        job waits). None when a transient problem says to try again later."""
        try:
            return await self.inputs.materialize(await self._preset_refs(job.params), team_id=job.team_id)
        except InputError as err:
            log.info("input image problem: %s", err.code, extra=log_context(job))
            if not err.transient:
                raise JobFailed(err.code, err.detail) from None
            return None

    async def _preset_refs(self, params: GenerationParams) -> GenerationParams:
        """A preset's reference images, read from the store (InputError if the preset is gone)."""
        if not any(r.preset_ref for r in params.image_refs):
            return params
        refs = []
        for ref in params.image_refs:
            if ref.preset_ref is not None:
                try:
                    found = await self.record.store.presets.reference(*ref.preset_ref)
                except StoreUnavailable:
                    raise InputError("preset_deleted", transient=True) from None  # tried again later
                if found is None:
                    raise InputError("preset_deleted")
                ref = ImageSource(media_type=found[0], data=found[1])
            refs.append(ref)
        return params.model_copy(update={"image_refs": refs})

    async def _create(self, job: Job, params: GenerationParams, scheduler: SlotScheduler, *,
                      give_up: float) -> Literal["created", "rate_limited", "unavailable"]:
        """One create: "created" once Luma has the generation; otherwise why to try again."""
        luma = await luma_of(self.accounts, job)   # (a job that fails here has its slot freed by the runner)
        async with self.shutdown.critical(job.id):  # never cut a create short: its answer is its only record
            await self.record.change(job, state=JobState.SUBMITTING, submit_tries=job.submit_tries + 1)
            create = luma.create(params, user_id=luma_user_id(
                job.team_id, job.user_id, self.config.user_hash_salt))
            del params  # the prepared images live only as long as the create
            try:
                gen, rate = await create
            except LumaRateLimited as e:
                scheduler.release(job.id)
                if e.kind == "concurrency":
                    scheduler.too_many_concurrent(job.id, e.retry_after)
                else:
                    scheduler.rate_limited(e.retry_after)
                log.info("luma 429 (%s): waiting", e.kind,
                         extra={**log_context(job), "luma_request_id": e.request_id})
                await self.record.set_state(job, JobState.QUEUED, waiting_reason="capacity")
                return "rate_limited"
            except LumaRejected as e:
                scheduler.release(job.id)
                raise rejected(job, e) from None
            except LumaUnavailable as e:
                scheduler.release(job.id)
                log.warning("luma create failed: %s", e,
                            extra={**log_context(job), "luma_request_id": e.request_id})
                if e.maybe_created:
                    raise JobFailed("submit_uncertain") from None
                if time.time() > give_up:
                    raise JobFailed("luma_unavailable") from None
                await self.record.set_state(job, JobState.QUEUED)
                return "unavailable"
            scheduler.observe_rate(rate.limit, rate.remaining, rate.reset)
            now = time.time()
            await self.record.set_state(job, JobState.GENERATING, generation_id=gen.id, waiting_reason=None,
                                        queue_position=None, attempts=job.attempts + 1, submitted_at=now,
                                        deadline=now + self.config.generation_timeout)
        log.info("submitted", extra=log_context(job))
        return "created"
