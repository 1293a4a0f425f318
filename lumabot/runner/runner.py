"""The runner: drives each job from the store to the image in its thread.

One asyncio task per unfinished job walks the state machine

    queued -> submitting -> generating -> delivering -> done
                                   \\-> failed (explained in the thread)

and writes every transition to the store before acting on it, so a restart resumes each job
where it stopped: queued and submitting jobs are submitted (submit.py), generating ones polled
(poll.py), delivering ones downloaded and uploaded exactly once (deliver.py). What a job shows
in Slack goes through the Notifier port (messages.py).

Several replicas may share one database (PostgreSQL). Each job has an owner and an epoch: a
replica runs only the jobs it owns, heartbeats while it lives, takes over the jobs of a replica
whose heartbeat is older than LUMABOT_TAKEOVER_SECONDS (and the jobs handed back by one that
stopped), and every write of a job is fenced by its epoch: a replica that was paused and comes
back finds its jobs taken (JobLost) and stops acting on them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, TypeGuard

from ..jobs.models import MAX_BLIND_RESENDS, Job, JobState
from ..jobs.admission import Admission, AdmissionRules
from ..jobs.slots import line_key
from ..luma.accounts import LumaAccounts
from ..metrics import Metrics
from ..ports import InputFiles, LumaApi, Notifier, OutputSource
from ..store import JobCancelled, JobLost, Store, StoreUnavailable, outside_an_ack
from . import deadline
from .deliver import Deliverer, Hook
from .lines import LineReporter
from .messages import Messages
from .poll import Poller
from .polling import PollPlanner
from .record import JobFailed, Parked, Recorder, RunnerConfig, Shutdown, log_context
from .retry import retry
from .scheduler import SlotScheduler
from .schedulers import AccountSchedulers
from .submit import Submitter

log = logging.getLogger("lumabot.runner")

RESUME_ALL = 10**9  # claim_jobs' limit at start: no limit
CLAIM_BATCH = 1000  # jobs claimed per store call
LOADED_AHEAD = 8    # parked jobs read ahead of their turn at most (about one per Luma account)


def _waits(job: Job | None) -> TypeGuard[Job]:
    """A granted job (as read) that still waits for its turn: not gone, settled or sent."""
    return job is not None and not job.settled and job.state == JobState.QUEUED


class Runner:
    def __init__(self, *, store: Store, luma: LumaApi | LumaAccounts, notifier: Notifier, outputs: OutputSource,
                 inputs: InputFiles, scheduler: SlotScheduler | AccountSchedulers, config: RunnerConfig,
                 metrics: Metrics | None = None):
        """`luma`: the operator's client (every job on the default account) or the accounts of
        workspaces' own keys; `scheduler`: one for every account, or one per account."""
        self.store = store
        self.accounts = luma if isinstance(luma, LumaAccounts) else LumaAccounts(luma)
        self.scheduler = (scheduler if isinstance(scheduler, AccountSchedulers)
                          else AccountSchedulers.single(scheduler))
        self.config = config
        self.metrics = metrics or Metrics()
        self.shutdown = Shutdown()
        self.record = Recorder(store, notifier, self.metrics, config)
        self.messages = Messages(self.record, self.shutdown)
        self.polls = PollPlanner(first_poll_delay=config.first_poll_delay,
                                 poll_interval=config.poll_interval,
                                 max_polls_per_second=config.max_polls_per_second)
        self.submit_step = Submitter(self.record, self.scheduler, inputs, self.accounts, self.shutdown)
        self.poll_step = Poller(self.record, self.scheduler, self.accounts, self.polls)
        self.deliver_step = Deliverer(self.record, self.messages, outputs, self.accounts, self.shutdown)
        self.lines = LineReporter(self.scheduler, self.record.status.show, self._live_job,
                                  interval=config.queue_update_interval,
                                  per_tick=config.queue_updates_per_tick, load=self.store.jobs.get)
        # A job waiting for a slot is parked there: no task, no live job, until its turn. Polls
        # planned while nobody waited are planned again for the backlog when one begins.
        self.scheduler.listen(on_grant=self._granted, on_backlog=self.poll_step.backlog_began)
        self._background: set[asyncio.Task[None]] = set()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._jobs: dict[str, Job] = {}  # the live job objects of running tasks
        self._reporter: asyncio.Task[None] | None = None
        self._leases: asyncio.Task[None] | None = None
        self._cancelling: dict[str, str] = {}  # job id -> who cancelled it (its task is stopping)
        self._ahead: dict[str, asyncio.Task[Job | None]] = {}  # parked jobs next in line, being read
        self.replica_id = config.replica_id

    @property
    def on_uploaded(self) -> list[Hook]:
        """Called with (job, output) once the image is in Slack, before the job is recorded done."""
        return self.deliver_step.on_uploaded

    @property
    def on_delivered(self) -> list[Hook]:
        """Called with (job, output) after an image is delivered."""
        return self.deliver_step.on_delivered

    @property
    def active(self) -> int:
        return len(self._tasks) + self.scheduler.parked

    # -- entry points --------------------------------------------------------------------------
    async def submit(self, jobs: Job | list[Job], *, dedupe_key: str | None = None,
                     rules: AdmissionRules | None = None) -> Admission:
        """Record a request's new jobs (durably, admission decided in the same transaction,
        for all of them or none) and start them. Nothing starts for a duplicate dedupe key (a
        retried Slack event) or a refusal."""
        jobs = [jobs] if isinstance(jobs, Job) else jobs
        account = await self.accounts.account_for(jobs[0].team_id)  # (cached: no read per request)
        for job in jobs:
            job.owner, job.epoch, job.account = self.replica_id, 0, account
        admission = await self.store.jobs.create(jobs, dedupe_key=dedupe_key, rules=rules)
        if admission.status == "created":
            request = deadline.current()
            if request is not None and not request.accept():  # recorded after "try again"
                self._in_background(self._withdraw(jobs, dedupe_key))
                raise StoreUnavailable("recorded after the person was asked to try again")
            for job in jobs:
                self._start(job)
        elif admission.status == "duplicate":
            log.info("duplicate request ignored", extra={"dedupe_key": dedupe_key})
        return admission

    async def resume(self) -> int:
        """At start: take the unfinished jobs nobody runs (this replica's own from before a
        restart, handed-back ones, those of replicas that stopped heartbeating) and start a
        task for each; then keep heartbeating and taking over."""
        await self.store.jobs.heartbeat(self.replica_id)
        # What the poll planner learned before the restart, oldest first: the resumed
        # generations are then polled likeliest-finished first.
        for key, running, done, dense in reversed(await self.store.jobs.recent_latencies(
                self.polls.window, self.polls.kept)):
            self.polls.record_seen(key, running, done, dense=dense)
        # An unshared database (SQLite) has no other process: whatever ran before is gone, and
        # there is nobody to heartbeat for, take jobs from, or hand them back to.
        # Every one of them, batch after batch (an unshared store has no lease loop to take the
        # rest later: a limit here would strand them until the next start).
        count = await self._take_over(include_own=True, stale_after=None if self.store.shared else 0.0,
                                      limit=RESUME_ALL)
        if self.store.shared and self._leases is None:
            self._leases = asyncio.create_task(self._keep_leases(), name="leases")
        return count

    async def _take_over(self, *, include_own: bool = False, stale_after: float | None = None,
                         limit: int = 500) -> int:
        """Claim unfinished jobs in batches (a batch's rows are dropped before the next is read,
        so memory follows the batch, not the claim); a queued job whose status message is up
        is kept as its id only and parked. The generations resumed are held first, so a parked
        job is not let through on a slot one of them still holds."""
        stale = self.config.takeover_seconds if stale_after is None else stale_after
        parks = self.scheduler.parks
        line: list[tuple[str, str, bool, str]] = []  # queued jobs to park: id, person, retry (front), account
        jobs: list[Job] = []                     # the others, each started with its task
        after: tuple[float, str] | None = None
        count = 0
        while count < limit:
            want = min(CLAIM_BATCH, limit - count)
            batch = await self.store.jobs.claim(self.replica_id, stale_after=stale, include_own=include_own,
                                                limit=want, after=after)
            count += len(batch)
            for job in batch:
                if parks and job.state == JobState.QUEUED and job.status_ts and not job.cancelled_by:
                    line.append((job.id, line_key(job.team_id, job.user_id), job.waiting_reason is not None,
                                 job.account))
                else:
                    jobs.append(job)
            if len(batch) < want:
                break
            after = (batch[-1].created_at, batch[-1].id)
        now = time.time()

        def likeliest_done_first(job: Job) -> tuple[bool, float]:
            generating = job.state == JobState.GENERATING and job.submitted_at is not None
            return (not generating, -self.polls.chance(job.params.latency_class, None,
                                                       now - (job.submitted_at or now)))

        jobs.sort(key=likeliest_done_first)
        for job in jobs:
            if job.state == JobState.GENERATING:
                self.scheduler.for_job(job.id, job.account).hold(job.id)
        for job_id, key, front, account in line:
            # its task starts at its turn
            self.scheduler.for_job(job_id, account).park(job_id, key, front=front, always=True)
        for job in jobs:
            self._start(job, resumed=True)
        if count:
            log.info("took over %d unfinished jobs", count)
        return count

    async def _keep_leases(self) -> None:
        """Heartbeat a few times per takeover period; look for jobs to take over every second
        at most, and at once when another replica hands jobs back."""
        period = self.config.takeover_seconds / 3
        loop = asyncio.get_running_loop()
        next_beat = loop.time() + period
        while not self.shutdown.stopping:
            await self.store.jobs.wait_for_released(min(1.0, period))
            if self.shutdown.stopping:
                return
            try:
                if loop.time() >= next_beat:
                    await self.store.jobs.heartbeat(self.replica_id)
                    next_beat = loop.time() + period
                await self._take_over()
                for job_id, by in await self.store.jobs.cancel_requests(self.replica_id):
                    self.cancel(job_id, by)  # cancelled through another replica
            except StoreUnavailable as exc:
                log.warning("could not renew leases or take over jobs: %s", exc)
            except Exception:
                log.exception("lease upkeep failed")

    def start_line_reporter(self) -> None:
        if self._reporter is None:
            self._reporter = asyncio.create_task(self.lines.run(), name="line-reporter")

    async def drain(self, timeout: float = 10.0) -> None:
        """Shutdown: start nothing new, let creates and uploads in progress finish (up to
        `timeout` s), then stop and hand every other job back to the store, where the other
        replicas (or the next start) pick it up at once."""
        self.shutdown.stopping = True
        if not await self.shutdown.wait(timeout):
            log.warning("stopping with %d uploads or submits unfinished", len(self.shutdown.in_critical))
        await self.stop()

    async def stop(self) -> None:
        """Stop every task; on a shared store the jobs are handed back to the other replicas (a
        kill -9 hands nothing back: they take over after LUMABOT_TAKEOVER_SECONDS, or this
        replica at its next start; on SQLite the next start takes every unfinished job)."""
        self.shutdown.stopping = True
        # Everything it started, cancelled and waited for: none of it still holds a database
        # connection once this returns (the store is closed next).
        tasks = [t for t in (self._reporter, self._leases) if t is not None] + list(self._ahead.values())
        self._ahead.clear()
        tasks += list(self._tasks.values()) + list(self._background)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.polls.close()
        await self.scheduler.stop()
        if self._leases is not None:
            self._leases = None
            try:
                released = await self.store.jobs.release(self.replica_id)
                if released:
                    log.info("handed %d unfinished jobs back", released)
            except Exception as exc:  # the others take them over after the takeover time
                log.warning("could not hand jobs back: %s", exc)

    def collect_metrics(self) -> None:
        """Refresh the gauges (called when /metrics is scraped)."""
        counts: dict[str, int] = {state.value: 0 for state in JobState if not state.finished}
        for job in self._jobs.values():
            if not job.state.finished:
                counts[job.state.value] += 1
        counts[JobState.QUEUED.value] += self.scheduler.parked
        for state, n in counts.items():
            self.metrics.jobs.labels(state).set(n)
        self.metrics.queue_depth.set(self.scheduler.waiting)
        self.metrics.in_flight.set(self.scheduler.in_flight)

    def cancel(self, job_id: str, by: str) -> None:
        """The job was cancelled in the store (Store.request_cancel) while it waited: stop its
        task here, now, rather than when its turn comes (its move to `submitting` would fail
        then anyway)."""
        task, job = self._tasks.get(job_id), self._jobs.get(job_id)
        if task is None and self.scheduler.unpark(job_id):  # waiting without a task
            self._drop_ahead(job_id)
            self._in_background(self._cancel_parked(job_id, by))
            return
        if task is None or job is None or job.state != JobState.QUEUED or job_id in self._cancelling:
            return
        self._cancelling[job_id] = by
        task.cancel()

    def _live_job(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def _start(self, job: Job, *, resumed: bool = False, granted: bool = False) -> bool:
        if job.id in self._tasks or self.shutdown.stopping:
            return False
        # (started by a request's work before its ack, it lives on: not for the ack)
        task = asyncio.create_task(self._run(job, resumed, granted), name=f"job-{job.id}", context=outside_an_ack())
        self._tasks[job.id] = task
        self._jobs[job.id] = job
        task.add_done_callback(lambda _t: self._forget(job.id))
        return True

    def _in_background(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro, context=outside_an_ack())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _granted(self, job_id: str) -> None:
        """A parked job's slot was granted: start its task, which submits. The job was loaded
        ahead of its turn if it was next in line (its task starts now, with no read between
        the freed slot and the create); the one next in line now is loaded ahead."""
        self.lines.forget(job_id)
        loading = self._ahead.pop(job_id, None)
        read = (loading.result() if loading is not None and loading.done() and not loading.cancelled()
                and loading.exception() is None else None)
        # (Anything but a start goes through _wake: a slot freed here, inside the scheduler's
        # grant, would grant the next job from within this one.)
        if not (_waits(read) and not read.cancelled_by and self._start(read, granted=True)):
            self._in_background(self._wake(job_id, loading))
        self._load_ahead(self.scheduler.of_job(job_id))

    def _load_ahead(self, scheduler: SlotScheduler) -> None:
        """Read the job next in `scheduler`'s line now, so that its turn does not wait for the
        read. (A copy read early is safe to act on: a parked job changes only by a cancel, and
        its move to `submitting` is refused once it is cancelled.)"""
        job_id = scheduler.next_parked()
        if job_id is None or job_id in self._ahead or len(self._ahead) >= LOADED_AHEAD or self.shutdown.stopping:
            return
        self._ahead[job_id] = asyncio.get_running_loop().create_task(
            self.store.jobs.get(job_id), name=f"load-{job_id}", context=outside_an_ack())

    def _drop_ahead(self, job_id: str) -> None:
        loading = self._ahead.pop(job_id, None)
        if loading is not None:
            loading.cancel()
            if loading.done() and not loading.cancelled():
                loading.exception()  # (retrieved: a failed read ahead is of no consequence)

    async def _wake(self, job_id: str, loading: asyncio.Task[Job | None] | None = None) -> None:
        """Load a job whose turn came (or wait for its read ahead) and start its task, which
        submits; or free the slot of one gone, done or cancelled meanwhile."""
        job: Job | None = None
        read = loading is None
        if loading is not None:
            try:
                job = await loading
            except Exception:
                read = True   # (the read ahead failed: read again)
        if read:
            try:
                job = await retry(lambda: self.store.jobs.get(job_id),
                                  transient=lambda e: isinstance(e, StoreUnavailable),
                                  backoff=self.config.retry_backoff)
            except Exception:
                log.exception("could not load a job whose turn came", extra={"job_id": job_id})
        if not _waits(job):
            self.scheduler.release(job_id)   # gone or done meanwhile
        elif job.cancelled_by:  # cancelled through another replica while it waited
            self.scheduler.release(job_id)
            await self._settle_cancel(job, job.cancelled_by)
        elif not self._start(job, granted=True):
            self.scheduler.release(job_id)

    async def _withdraw(self, jobs: list[Job], dedupe_key: str | None) -> None:
        """A request the database recorded after its person was told to try again: its jobs
        deleted (with its dedupe key), never started. Retried until the database answers."""
        job = jobs[0]
        try:
            await self.record.durably(job, lambda: self.store.jobs.withdraw([j.id for j in jobs], dedupe_key))
        except asyncio.CancelledError:
            log.warning("stopped before a late-recorded job was withdrawn; it runs at the next start",
                        extra=log_context(job))
            raise
        log.info("withdrew a job recorded after its deadline", extra=log_context(job))

    async def _cancel_parked(self, job_id: str, by: str) -> None:
        self.lines.forget(job_id)
        job = await self.store.jobs.get(job_id)
        if job is not None and not job.settled:
            await self._settle_cancel(job, by)

    async def _settle_cancel(self, job: Job, by: str) -> None:
        await self._record_cancel(job, by)
        await self.messages.settle(job)

    def _forget(self, job_id: str) -> None:
        self._tasks.pop(job_id, None)
        job = self._jobs.pop(job_id, None)
        if job is not None and job.state.finished:
            self.scheduler.forget(job_id)

    # -- the state machine ---------------------------------------------------------------------
    async def _run(self, job: Job, resumed: bool = False, granted: bool = False) -> None:
        """`resumed`: the job was started by an earlier process, which may have died between
        any external effect and recording it."""
        # (_run_steps has released the job's Luma slot whichever way it ended.)
        try:
            await self._run_steps(job, resumed, granted)
        except JobLost:
            log.warning("another replica took this job over; this one stops acting on it",
                        extra=log_context(job))
        except asyncio.CancelledError:
            by = self._cancelling.pop(job.id, None)
            if by is None or self.shutdown.stopping:
                raise
            await self._settle_cancel(job, by)

    async def _run_steps(self, job: Job, resumed: bool, granted: bool = False) -> None:
        tell = True
        try:
            if resumed and job.state == JobState.SUBMITTING:
                self._resend_after_crash(job)
            if not job.status_ts and not job.state.finished:
                at_once = not granted and self.scheduler.for_job(job.id, job.account).looks_free()
                await self.messages.announce(job, resumed, at_once=at_once)
            output_url: str | None = None
            under_way = resumed and job.state == JobState.GENERATING   # polled before the restart
            while not job.state.finished:
                if job.state in (JobState.QUEUED, JobState.SUBMITTING):
                    await self.submit_step(job, granted=granted)
                    granted = False
                elif job.state == JobState.GENERATING:
                    output_url = await self.poll_step(job, under_way=under_way)
                    under_way = False
                elif job.state == JobState.DELIVERING:
                    await self.deliver_step(job, output_url, resumed)
        except Parked:
            return  # a new task takes over when its slot is granted
        except JobFailed as f:
            await self._record_failure(job, f.code, f.detail)
            tell = not f.quiet
        except JobCancelled as c:
            await self._record_cancel(job, str(c.args[0]))
        except (asyncio.CancelledError, JobLost):
            raise
        except Exception:
            log.exception("job crashed", extra=log_context(job))
            await self._record_failure(job, "internal", None)
        finally:
            self.scheduler.release(job.id)
        await self.messages.settle(job, resumed, tell=tell)

    def _resend_after_crash(self, job: Job) -> None:
        """A create was in flight when lumabot died: Luma may or may not have the generation,
        and it has no idempotency key. Send it again once in the job's life, never twice."""
        if job.blind_resends >= MAX_BLIND_RESENDS:
            log.warning("a create was interrupted twice; not sending it a third time", extra=log_context(job))
            raise JobFailed("create_uncertain")
        self.record.later(job, blind_resends=job.blind_resends + 1)  # written with SUBMITTING, before the create
        log.warning("resuming a job whose create was interrupted; it is sent again once",
                    extra=log_context(job))

    async def _record_cancel(self, job: Job, by: str) -> None:
        """Cancelled while it waited: nothing reached Luma; the status message says who."""
        await self.record.change(job, state=JobState.CANCELLED, cancelled_by=by, finished_at=time.time(),
                                 waiting_reason=None, queue_position=None)
        log.info("cancelled while waiting", extra=log_context(job))

    async def _record_failure(self, job: Job, code: str, detail: str | None) -> None:
        self.scheduler.release(job.id)
        await self.record.change(job, state=JobState.FAILED, failure_code=code, failure_detail=detail,
                                 finished_at=time.time())
