"""The job engine: drives each job from the store to the image in its thread.

One asyncio task per unfinished job walks the state machine

    queued -> submitting -> generating -> delivering -> done
                                   \\-> failed (explained in the thread)

and writes every transition to the store before acting on it, so a restart resumes each job
where it stopped: queued and submitting jobs are submitted, generating ones polled, delivering
ones downloaded and uploaded (exactly once: see delivery.py).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from typing import Awaitable, Callable, TypeVar

from .delivery import Delivery, DeliveryError, Output, OutputExpired
from .inputs import InputError, InputImages
from .jobs.failures import RETRYABLE_FAILURE_CODES
from .jobs.identity import luma_user_id
from .jobs.models import MAX_BLIND_RESENDS, MAX_GENERATION_ATTEMPTS, GenerationParams, Job, JobState, KnownImage
from .jobs.quotas import Admission, AdmissionRules
from .luma.client import (
    LumaClient,
    LumaError,
    LumaNotFound,
    LumaRateLimited,
    LumaRejected,
    LumaUnavailable,
)
from .polling import PollPlanner
from .metrics import Metrics
from .scheduler import Scheduler
from .slack import blocks
from .store import Store, StoreUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_BACKOFF = 30.0


@dataclass
class EngineConfig:
    poll_interval: float = 2.0
    first_poll_delay: float = 20.0
    generation_timeout: float = 300.0
    retry_backoff: float = 1.0
    delivery_timeout: float = 600.0
    user_hash_salt: str = "lumabot-user-v1"
    # Place-in-line updates: how often they are looked at, and at most how many status
    # messages are updated each time (chat.update is Tier 3, ~50 a minute per workspace).
    queue_update_interval: float = 5.0
    queue_updates_per_tick: int = 4
    max_polls_per_second: float = 50.0


def _ctx(job: Job) -> dict:
    """Log context: one line per event carries the job, its generation and its channel."""
    return {"job_id": job.id, "generation_id": job.generation_id, "channel": job.channel_id}


class _Backoff:
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


class _JobFailed(Exception):
    def __init__(self, code: str, detail: str | None = None):
        super().__init__(code)
        self.code = code
        self.detail = detail


class Engine:
    def __init__(self, *, store: Store, luma: LumaClient, delivery: Delivery, scheduler: Scheduler,
                 inputs: InputImages, config: EngineConfig, metrics: Metrics | None = None):
        self.metrics = metrics or Metrics()
        self.store = store
        self.inputs = inputs
        self.luma = luma
        self.delivery = delivery
        self.scheduler = scheduler
        self.config = config
        self._tasks: dict[str, asyncio.Task] = {}
        self._jobs: dict[str, Job] = {}  # the live job objects of running tasks
        self.polls = PollPlanner(first_poll_delay=config.first_poll_delay,
                                 poll_interval=config.poll_interval,
                                 max_polls_per_second=config.max_polls_per_second)
        self._polling = 0  # generations being polled right now
        self._critical: set[str] = set()  # jobs in a step a shutdown must not cut short
        # Called with (job, output) after an image is delivered (sessions use it).
        self.on_delivered: list[Callable[[Job, Output], Awaitable[None]]] = []
        self._reporter: asyncio.Task | None = None
        self._output_urls: dict[str, str] = {}  # job id -> latest presigned URL (never stored)
        self._stopping = False

    # -- entry points --------------------------------------------------------------------------
    async def submit(self, job: Job, *, dedupe_key: str | None = None,
                     rules: AdmissionRules | None = None) -> Admission:
        """Record a new job (durably, admission decided in the same transaction) and start it.
        Nothing starts for a duplicate dedupe key (a retried Slack event) or a refusal."""
        admission = await self.store.create_job(job, dedupe_key=dedupe_key, rules=rules)
        if admission.status == "created":
            self._start(job)
        elif admission.status == "duplicate":
            log.info("duplicate request ignored", extra={"dedupe_key": dedupe_key})
        return admission

    async def resume(self) -> int:
        """Start a task for every unfinished job in the store (after a restart)."""
        jobs = await self.store.unfinished_jobs()
        for job in jobs:
            if job.state == JobState.GENERATING:
                self.scheduler.hold(job.id)
            self._start(job, resumed=True)
        if jobs:
            log.info("resumed %d unfinished jobs", len(jobs))
        return len(jobs)

    def start_line_reporter(self) -> None:
        """Keep "#N in line" on waiting jobs' status messages up to date, in batches."""
        if self._reporter is None:
            self._reporter = asyncio.create_task(self._report_lines(), name="line-reporter")

    async def _report_lines(self) -> None:
        while True:
            await asyncio.sleep(self.config.queue_update_interval)
            try:
                await self.report_lines_once()
            except Exception:
                log.exception("place-in-line update failed")

    async def report_lines_once(self) -> int:
        """Update the status messages whose place in line changed meaningfully, front of the
        line first, at most `queue_updates_per_tick` of them. Returns how many were updated."""
        positions = self.scheduler.positions()
        due = []
        for job_id, place in positions.items():
            job = self._jobs.get(job_id)
            if job is not None and job.status_ts and _worth_showing(job.queue_position, place):
                due.append((place, job))
        due.sort(key=lambda pj: pj[0])
        updated = 0
        for place, job in due[: self.config.queue_updates_per_tick]:
            job.queue_position = place
            await self.delivery.update_status(job)
            updated += 1
        return updated

    async def drain(self, timeout: float = 10.0) -> None:
        """Shutdown: start nothing new, let creates and uploads in progress finish (up to
        `timeout` s), then stop. Everything else stays in the store for the next start."""
        self._stopping = True
        until = asyncio.get_running_loop().time() + timeout
        while self._critical and asyncio.get_running_loop().time() < until:
            await asyncio.sleep(0.05)
        if self._critical:
            log.warning("stopping with %d uploads or submits unfinished", len(self._critical))
        await self.stop()

    def collect_metrics(self) -> None:
        """Refresh the gauges (called when /metrics is scraped)."""
        counts: dict[str, int] = {state.value: 0 for state in JobState if not state.finished}
        for job in self._jobs.values():
            if not job.state.finished:
                counts[job.state.value] += 1
        for state, n in counts.items():
            self.metrics.jobs.labels(state).set(n)
        self.metrics.queue_depth.set(self.scheduler.waiting)
        self.metrics.in_flight.set(self.scheduler.in_flight)

    async def stop(self) -> None:
        self._stopping = True
        if self._reporter is not None:
            self._reporter.cancel()
        tasks = list(self._tasks.values())
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    @property
    def active(self) -> int:
        return len(self._tasks)

    def _start(self, job: Job, *, resumed: bool = False) -> None:
        if job.id in self._tasks or self._stopping:
            return
        task = asyncio.create_task(self._run(job, resumed), name=f"job-{job.id}")
        self._tasks[job.id] = task
        self._jobs[job.id] = job
        task.add_done_callback(lambda _t, jid=job.id: (self._tasks.pop(jid, None), self._jobs.pop(jid, None)))

    # -- the state machine ---------------------------------------------------------------------
    async def _run(self, job: Job, resumed: bool = False) -> None:
        """`resumed`: the job was started by an earlier process, which may have died between
        any external effect and recording it."""
        try:
            if resumed and job.state == JobState.SUBMITTING:
                self._resend_after_crash(job)
            if not job.status_ts and not job.state.finished:
                await self._announce(job, resumed)
            while not job.state.finished:
                if job.state in (JobState.QUEUED, JobState.SUBMITTING):
                    await self._submit(job)
                elif job.state == JobState.GENERATING:
                    await self._poll(job)
                elif job.state == JobState.DELIVERING:
                    await self._deliver(job, resumed)
        except _JobFailed as f:
            await self._record_failure(job, f.code, f.detail)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("job crashed", extra=_ctx(job))
            await self._record_failure(job, "internal", None)
        finally:
            self.scheduler.release(job.id)
            self._output_urls.pop(job.id, None)
        await self._settle(job, resumed)
        self._critical.discard(job.id)

    def _resend_after_crash(self, job: Job) -> None:
        """A create was in flight when lumabot died: Luma may or may not have the generation,
        and it has no idempotency key. Send it again once in the job's life, never twice."""
        if job.blind_resends >= MAX_BLIND_RESENDS:
            log.warning("a create was interrupted twice; not sending it a third time", extra=_ctx(job))
            raise _JobFailed("create_uncertain")
        job.blind_resends += 1  # recorded with the SUBMITTING state, before the create
        log.warning("resuming a job whose create was interrupted; it is sent again once",
                    extra=_ctx(job))

    async def _save(self, job: Job) -> None:
        await self._durably(job, lambda: self.store.save_job(job))

    async def _durably(self, job: Job, write: Callable[[], Awaitable[T]]) -> T:
        """Run a store write until it succeeds: a locked or full database delays the job, it
        never throws away what Luma made or kills the job's task."""
        backoff = _Backoff(self.config.retry_backoff)
        while True:
            try:
                return await write()
            except StoreUnavailable as exc:
                self.metrics.store_errors.inc()
                log.warning("database unavailable, will retry: %s", exc, extra=_ctx(job))
                await backoff.sleep()

    async def _set_state(self, job: Job, state: JobState, *, announce: bool = True, **changes) -> None:
        """Record a transition; update the status message only when what it shows changes
        (Slack rate-limits chat.update, so never on every poll or retry)."""
        before = blocks.status_line(job)
        job.state = state
        for k, v in changes.items():
            setattr(job, k, v)
        await self._save(job)
        if announce and blocks.status_line(job) != before:
            await self.delivery.update_status(job)

    async def _announce(self, job: Job, resumed: bool) -> None:
        """Post the status message (the thread root); without it the job cannot go on, and
        nothing is sent to Luma. After a crash, the message posted before it is found again."""
        ts = await self._find_posted(job, "status") if resumed else None
        try:
            ts = ts or await self._slack_retry(job, lambda: self.delivery.post_status(job))
        except DeliveryError as err:
            raise _JobFailed(*self._slack_failure(job, err, "the status message")) from None
        job.status_ts = ts
        await self._save(job)

    def _slack_failure(self, job: Job, err: DeliveryError, what: str) -> tuple[str, str | None]:
        """The failure code (and detail) of a final Slack error, logged as loudly as it deserves."""
        if err.policy:
            log.error("SLACK WORKSPACE POLICY blocks lumabot (%s): %s could not be posted; a "
                      "workspace admin can change this", err.policy, what, extra=_ctx(job))
            return "slack_policy", err.policy
        if err.no_access:
            return "not_in_channel", None
        log.error("could not post %s: %s", what, err, extra=_ctx(job))
        return "delivery_failed", None

    async def _prepare_inputs(self, job: Job) -> GenerationParams | None:
        """The job's parameters with people's images downloaded and normalised, made just
        before the create and dropped after it (image bytes are never stored or kept while a
        job waits). None when a transient problem says to try again later."""
        try:
            return await self.inputs.materialize(job.params)
        except InputError as err:
            log.info("input image problem: %s", err.code, extra=_ctx(job))
            if not err.transient:
                raise _JobFailed(err.code, err.detail) from None
            return None

    async def _submit(self, job: Job) -> None:
        first_try = time.time()
        backoff = _Backoff(self.config.retry_backoff)
        while True:
            self._critical.discard(job.id)
            if self._stopping:
                raise asyncio.CancelledError()
            await self.scheduler.acquire(job.id, job.user_id, front=job.waiting_reason is not None)
            params = await self._prepare_inputs(job)
            if params is None:
                self.scheduler.release(job.id)
                if time.time() - first_try > self.config.generation_timeout:
                    raise _JobFailed("image_download_failed")
                await backoff.sleep()
                continue
            job.state = JobState.SUBMITTING
            job.submit_tries += 1
            self._critical.add(job.id)  # never cut a create short: its answer is its only record
            await self._save(job)
            create = self.luma.create(params, user_id=luma_user_id(
                job.team_id, job.user_id, self.config.user_hash_salt))
            params = None  # the prepared images live only as long as the create
            try:
                gen, rate = await create
            except LumaRateLimited as e:
                self.scheduler.release(job.id)
                if e.kind == "concurrency":
                    self.scheduler.too_many_concurrent(job.id, e.retry_after)
                else:
                    self.scheduler.rate_limited(e.retry_after)
                log.info("luma 429 (%s): waiting", e.kind,
                         extra={**_ctx(job), "luma_request_id": e.request_id})
                await self._set_state(job, JobState.QUEUED, waiting_reason="capacity")
                continue
            except LumaRejected as e:
                self.scheduler.release(job.id)
                if e.code == "misconfigured":
                    log.critical("LUMA REFUSED THE API KEY (%s %s): check LUMA_AGENTS_API_KEY and "
                                 "the Luma account", e.status, e,
                                 extra={**_ctx(job), "luma_request_id": e.request_id})
                else:
                    log.warning("luma refused the request (%s): %s", e.status, e,
                                extra={**_ctx(job), "luma_request_id": e.request_id})
                raise _JobFailed(e.code, str(e)) from None
            except LumaUnavailable as e:
                self.scheduler.release(job.id)
                log.warning("luma create failed: %s", e,
                            extra={**_ctx(job), "luma_request_id": e.request_id})
                if e.maybe_created:
                    raise _JobFailed("submit_uncertain") from None
                if time.time() - first_try > self.config.generation_timeout:
                    raise _JobFailed("luma_unavailable") from None
                await self._set_state(job, JobState.QUEUED)
                await backoff.sleep()
                continue
            self.scheduler.observe_rate(rate.limit, rate.remaining, rate.reset)
            now = time.time()
            await self._set_state(job, JobState.GENERATING, generation_id=gen.id, waiting_reason=None,
                                  queue_position=None,
                                  attempts=job.attempts + 1, submitted_at=now,
                                  deadline=now + self.config.generation_timeout)
            self._critical.discard(job.id)
            log.info("submitted", extra=_ctx(job))
            return

    async def _poll(self, job: Job) -> None:
        self._polling += 1
        try:
            await self._poll_until_done(job)
        finally:
            self._polling -= 1

    async def _poll_until_done(self, job: Job) -> None:
        cfg = self.config
        assert job.generation_id and job.submitted_at and job.deadline
        next_poll = max(time.time(), job.submitted_at + self.polls.first_poll_after(job.params.model))
        backoff = _Backoff(cfg.retry_backoff)
        while True:
            await asyncio.sleep(max(0.0, min(next_poll, job.deadline) - time.time()))
            await self.polls.pace()
            try:
                gen = await self.luma.get(job.generation_id)
            except (LumaUnavailable, LumaRateLimited) as e:
                log.info("luma get failed, retrying: %s", e,
                         extra={**_ctx(job), "luma_request_id": e.request_id})
                if time.time() >= job.deadline:
                    raise _JobFailed("timeout") from None
                next_poll = time.time() + backoff.delay()
                continue
            except LumaNotFound:
                log.error("luma does not know generation %s", job.generation_id, extra=_ctx(job))
                raise _JobFailed("generation_failed") from None
            except LumaRejected as e:
                if e.code == "misconfigured":
                    log.critical("LUMA REFUSED THE API KEY while polling (%s)", e.status,
                                 extra={**_ctx(job), "luma_request_id": e.request_id})
                raise _JobFailed(e.code, str(e)) from None
            backoff.reset()
            if gen.state in ("completed", "failed"):
                latency = time.time() - job.submitted_at
                self.polls.record(job.params.model, latency)
                if gen.state == "completed":
                    self.metrics.generation_latency.labels(job.params.model).observe(latency)
            if gen.state == "completed":
                self.scheduler.release(job.id)
                if gen.output_url:
                    self._output_urls[job.id] = gen.output_url
                await self._set_state(job, JobState.DELIVERING, announce=False, completed_at=time.time())
                return
            if gen.state == "failed":
                self.scheduler.release(job.id)
                code = gen.failure_code or "generation_failed"
                log.info("generation failed: %s (%s)", code, gen.failure_reason,
                         extra=_ctx(job))
                if code in RETRYABLE_FAILURE_CODES and job.attempts < MAX_GENERATION_ATTEMPTS:
                    await self._set_state(job, JobState.QUEUED, generation_id=None,
                                          waiting_reason="retrying")
                    return
                raise _JobFailed(code, gen.failure_reason)
            if time.time() >= job.deadline:
                raise _JobFailed("timeout")
            next_poll = time.time() + self.polls.interval(backlog=self.scheduler.waiting > 0,
                                                          polling=self._polling)

    async def _deliver(self, job: Job, resumed: bool = False) -> None:
        give_up = (job.completed_at or time.time()) + self.config.delivery_timeout
        backoff = _Backoff(self.config.retry_backoff)
        expired = 0
        while True:
            try:
                url = self._output_urls.get(job.id) or await self._fresh_output_url(job)
                output = await self.delivery.download(url)
                self._critical.add(job.id)  # a shutdown lets an upload in progress finish
                await self.delivery.upload_image(job, output, lambda fid: self._remember_file(job, fid),
                                                 deadline=give_up)
                break
            except OutputExpired:
                # Presigned URLs expire after an hour; every GET of the generation mints a new one.
                log.info("output URL expired; asking Luma for a fresh one", extra=_ctx(job))
                self._output_urls.pop(job.id, None)
                expired += 1
                if expired == 1:
                    continue
                if time.time() >= give_up:
                    raise _JobFailed("download_failed") from None
                await backoff.sleep()
            except (DeliveryError, LumaError) as err:
                transient = (err.transient if isinstance(err, DeliveryError)
                             else isinstance(err, (LumaUnavailable, LumaRateLimited)))
                log.warning("delivery failed (%s): %s", "will retry" if transient else "final", err,
                            extra=_ctx(job))
                if not transient or time.time() >= give_up:
                    if not isinstance(err, DeliveryError):
                        raise _JobFailed("download_failed") from None
                    raise _JobFailed(*self._slack_failure(job, err, "the image")) from None
                await backoff.sleep()
        if job.completed_at:
            self.metrics.delivery_latency.observe(time.time() - job.completed_at)
        image = KnownImage(
            channel_id=job.channel_id, thread_ts=job.root_ts or "", origin="lumabot", job_id=job.id,
            generation_id=job.generation_id, slack_file_id=job.slack_file_id, user_id=job.user_id)
        await self._durably(job, lambda: self.store.record_image(image))
        finished_at = time.time()
        if not job.actions_ts:
            # Wait for the share (Slack completes it asynchronously) so the buttons come after
            # the image, and remember the image's message (reactions on it are votes).
            share_ts = await self._share_ts(job)
            if share_ts:
                await self._durably(job, lambda: self.store.set_image_message(job.id, share_ts))
            if resumed:  # posted before a crash, but not recorded?
                job.actions_ts = await self._find_posted(job, "actions")
            job.actions_ts = job.actions_ts or await self.delivery.post_actions(job)
        await self._set_state(job, JobState.DONE, announce=False, finished_at=finished_at)
        for hook in self.on_delivered:
            try:
                await hook(job, output)
            except Exception:
                log.exception("after-delivery hook failed", extra=_ctx(job))
        log.info("delivered", extra=_ctx(job))

    async def _share_ts(self, job: Job) -> str | None:
        if not job.slack_file_id:
            return None
        try:
            return await self.delivery.share_ts(job.slack_file_id, job.channel_id, wait=5.0)
        except Exception as exc:
            log.warning("files.info failed: %s", exc, extra=_ctx(job))
            return None

    async def _fresh_output_url(self, job: Job) -> str:
        assert job.generation_id
        gen = await self.luma.get(job.generation_id)
        if gen.state != "completed" or not gen.output_url:
            raise LumaUnavailable(f"generation is {gen.state} without output")
        return gen.output_url

    async def _remember_file(self, job: Job, file_id: str) -> None:
        job.slack_file_id = file_id
        await self._save(job)

    async def _record_failure(self, job: Job, code: str, detail: str | None) -> None:
        self.scheduler.release(job.id)
        job.failure_code, job.failure_detail = code, detail
        job.state, job.finished_at = JobState.FAILED, time.time()
        await self._save(job)

    async def _find_posted(self, job: Job, kind: str) -> str | None:
        """The ts of the job's `kind` message if an earlier process posted it; None if not, or
        if Slack cannot say (then it is posted, at worst twice)."""
        try:
            return await self._slack_retry(job, lambda: self.delivery.find_posted(job, kind))
        except DeliveryError as err:
            log.warning("could not look for an earlier %s message: %s", kind, err, extra=_ctx(job))
            return None

    async def _settle(self, job: Job, resumed: bool = False) -> None:
        """Tell the user the outcome (after it is recorded, so a crash in between is resumed
        here rather than leaving the user without an answer)."""
        if job.settled or self._stopping:
            return
        if job.state == JobState.FAILED and not (resumed and await self._find_posted(job, "failure")):
            await self._tell_failure(job)
        await self.delivery.update_status(job)
        job.settled = True
        await self._save(job)
        self.metrics.jobs_finished.labels(job.state.value).inc()

    async def _tell_failure(self, job: Job) -> None:
        """In the job's thread; where that is impossible (no status message, a channel that
        refuses the bot), privately: through the command's response_url, or ephemeral."""
        try:
            if job.root_ts:
                await self._slack_retry(job, lambda: self.delivery.post_failure(job))
                return
        except DeliveryError as err:
            log.warning("could not post the failure message in the thread: %s", err, extra=_ctx(job))
        if not await self.delivery.tell_privately(job, blocks.failure_text(job)):
            log.warning("no way to tell the user about the failure", extra=_ctx(job))

    async def _slack_retry(self, job: Job, call):
        """Run a Slack call, retrying transient errors with backoff (the SDK already retried
        a few times) for up to the delivery timeout."""
        give_up = time.time() + self.config.delivery_timeout
        backoff = _Backoff(self.config.retry_backoff)
        while True:
            try:
                return await call()
            except DeliveryError as err:
                if not err.transient or time.time() >= give_up:
                    raise
                log.warning("slack call failed, retrying: %s", err, extra=_ctx(job))
                await backoff.sleep()


def _worth_showing(shown: int | None, place: int) -> bool:
    """Is a new place in line worth a chat.update? Near the front every step counts; further
    back only a real move (a quarter of the way, either way) does."""
    if shown == place:
        return False
    if shown is None or place <= 3:
        return True
    return place <= shown * 0.75 or place >= shown * 1.25


__all__ = ["Engine", "EngineConfig"]
