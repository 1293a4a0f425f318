"""Polling: a generating job is looked at when the poll planner says, until Luma has finished
it (completed: on to delivery; failed: retried once where Luma allows, else failed) or its
deadline passes."""

from __future__ import annotations

import asyncio
import logging
import time

from ..jobs.failures import RETRYABLE_FAILURE_CODES
from ..jobs.models import MAX_GENERATION_ATTEMPTS, Job, JobState
from ..luma.client import LumaNotFound, LumaRateLimited, LumaRejected, LumaUnavailable
from ..luma.accounts import LumaAccounts
from .polling import PollPlanner
from .record import JobFailed, Recorder, log_context, luma_of, rejected
from .retry import Backoff
from ..waits import wait_event
from .schedulers import AccountSchedulers

log = logging.getLogger("lumabot.runner")


class Poller:
    def __init__(self, record: Recorder, schedulers: AccountSchedulers, accounts: LumaAccounts, planner: PollPlanner):
        self.record = record
        self.config = record.config
        self.metrics = record.metrics
        self.schedulers = schedulers
        self.accounts = accounts
        self.planner = planner
        self.polling = 0  # generations being polled right now
        # Half a GET's round trip (smoothed): a poll leaves this much early, so that it reaches
        # Luma when the planner wanted it to.
        self.lead = 0.0
        self._backlog_began = asyncio.Event()  # set (and replaced) when jobs begin to wait for a slot

    def backlog_began(self) -> None:
        """Jobs began to wait for a slot: a finished generation left unseen now keeps one of
        them waiting, so polls planned without a backlog (sparser) are planned again."""
        self._backlog_began.set()
        self._backlog_began = asyncio.Event()

    async def _sleep(self, seconds: float, *, until_backlog: bool) -> bool:
        """Sleep `seconds`; with `until_backlog`, wake early if a backlog begins (True)."""
        if not until_backlog:
            await asyncio.sleep(seconds)
            return False
        return await wait_event(self._backlog_began, seconds)

    async def __call__(self, job: Job, *, under_way: bool = False) -> str | None:
        """From GENERATING to DELIVERING (returns the output's presigned URL, which is never
        stored), back to QUEUED for a retry, or JobFailed. `under_way`: the generation was
        polled before a restart."""
        self.polling += 1
        try:
            return await self._until_done(job, under_way)
        finally:
            self.polling -= 1

    async def _until_done(self, job: Job, under_way: bool) -> str | None:
        assert job.generation_id and job.submitted_at and job.deadline
        key, sent = job.params.latency_class, job.submitted_at
        last_age: float | None = None  # the age of the last poll (after a restart: unknown)
        scheduler = self.schedulers.for_job(job.id, job.account)   # its Luma account's
        luma = await luma_of(self.accounts, job)
        backlog = scheduler.waiting > 0
        # Polled densely from the first poll: settled before its latency can show, so what it
        # teaches the planner is kept past the window. Not one under way before a restart: one
        # still running then is likelier a long one.
        dense = not under_way and self.planner.polls_densely(key, backlog=backlog)
        next_poll = sent + self.planner.next_poll_age(key, None, backlog=backlog)
        backoff = Backoff(self.config.retry_backoff)
        while True:
            if await self._sleep(max(0.0, min(next_poll - self.lead, job.deadline) - time.time()),
                                 until_backlog=not backlog):
                backlog = True
                next_poll = sent + self.planner.next_poll_age(key, last_age, backlog=True, polling=self.polling)
                continue
            # The likeliest to be finished polls first when polls queue for the rate cap.
            await self.planner.pace(self.planner.chance(key, last_age, time.time() - sent))
            asked = time.time()
            try:
                gen = await luma.get(job.generation_id)
                self.lead += (min(time.time() - asked, 1.0) / 2 - self.lead) / 8
            except (LumaUnavailable, LumaRateLimited) as e:
                log.info("luma get failed, retrying: %s", e,
                         extra={**log_context(job), "luma_request_id": e.request_id})
                if time.time() >= job.deadline:
                    raise JobFailed("timeout") from None
                next_poll = time.time() + backoff.delay()
                continue
            except LumaNotFound:
                log.error("luma does not know generation %s", job.generation_id, extra=log_context(job))
                raise JobFailed("generation_failed") from None
            except LumaRejected as e:
                raise rejected(job, e) from None
            backoff.reset()
            if gen.state in ("completed", "failed"):
                latency = time.time() - sent
                self.planner.record_seen(key, last_age or 0.0, latency, dense=dense)
                scheduler.release(job.id)
            if gen.state == "completed":
                self.metrics.generation_latency.labels(job.params.model).observe(latency)
                # Not written yet: it is recorded with the upload's file id (one commit less; a
                # crash before that polls once more and finds it completed again).
                # (running_seen: after a restart, not seen running since)
                self.record.later(job, state=JobState.DELIVERING, completed_at=time.time(),
                                  running_seen=last_age or 0.0, polled_densely=dense)
                return gen.output_url
            if gen.state == "failed":
                code = gen.failure_code or "generation_failed"
                log.info("generation failed: %s (%s)", code, gen.failure_reason, extra=log_context(job))
                if code in RETRYABLE_FAILURE_CODES and job.attempts < MAX_GENERATION_ATTEMPTS:
                    await self.record.set_state(job, JobState.QUEUED, generation_id=None,
                                                waiting_reason="retrying")
                    return None
                raise JobFailed(code, gen.failure_reason)
            if time.time() >= job.deadline:
                raise JobFailed("timeout")
            # It was still running when this GET was sent: the next poll is planned from then (not
            # from the answer, which would push every later poll back by a round trip).
            last_age = asked - sent
            # Once planned for a backlog, a generation keeps that plan to the end (the last ones of
            # a burst are what everyone's last images wait for; at most a slot's worth of them).
            backlog = backlog or scheduler.waiting > 0
            next_poll = sent + self.planner.next_poll_age(key, last_age, backlog=backlog, polling=self.polling)
