"""What every step of the runner shares: its configuration, durable job writes, state
transitions (the status message follows what it shows), and what a shutdown must wait for."""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable, TypeVar

from ..jobs.models import DEFAULT_ACCOUNT, Job, JobState, KnownImage
from ..luma.accounts import LumaAccounts, NoLumaKey
from ..luma.client import LumaRejected
from ..metrics import Metrics
from ..ports import LumaApi, Notifier
from ..store import Store, StoreUnavailable
from .retry import retry
from .status import StatusBoard
from ..waits import wait_event

log = logging.getLogger("lumabot.runner")
T = TypeVar("T")


@dataclass(frozen=True)
class RunnerConfig:
    """Built by `Settings.runner()`; the defaults live there."""

    poll_interval: float
    first_poll_delay: float
    generation_timeout: float
    retry_backoff: float
    delivery_timeout: float
    user_hash_salt: str
    # Place-in-line updates: how often they are looked at, and at most how many status
    # messages are updated each time (chat.update is Tier 3, ~50 a minute per workspace).
    queue_update_interval: float
    queue_updates_per_tick: int
    max_polls_per_second: float
    # Several replicas on one database: this one's name, and how long a replica may miss its
    # heartbeat before the others take its jobs over.
    replica_id: str
    takeover_seconds: float


class Parked(Exception):
    """The job waits in the scheduler's line without a task; its task ends here and a new one
    starts when its slot is granted."""


class JobFailed(Exception):
    """The job ends failed with this failure code (jobs/failures.py) and optional detail;
    `quiet`: the person was told already (the first image of its batch failed the same way)."""

    def __init__(self, code: str, detail: str | None = None, *, quiet: bool = False):
        super().__init__(code)
        self.code = code
        self.detail = detail
        self.quiet = quiet


def log_context(job: Job) -> dict[str, Any]:
    """One line per event carries the job, its generation and its channel."""
    return {"job_id": job.id, "generation_id": job.generation_id, "channel": job.channel_id}


class Shutdown:
    """Jobs in a step a shutdown must let finish (a create: its answer is its only record; an
    upload in progress), and whether a shutdown has begun."""

    def __init__(self) -> None:
        self.in_critical: set[str] = set()
        self.stopping = False
        self._none_critical = asyncio.Event()
        self._none_critical.set()

    @asynccontextmanager
    async def critical(self, job_id: str) -> AsyncIterator[None]:
        """A step a shutdown waits for (up to the drain time) rather than cut short."""
        self.in_critical.add(job_id)
        self._none_critical.clear()
        try:
            yield
        finally:
            self.in_critical.discard(job_id)
            if not self.in_critical:
                self._none_critical.set()

    async def wait(self, timeout: float) -> bool:
        """Wait until no job is in a critical step (True), or `timeout` s (False)."""
        return await wait_event(self._none_critical, timeout)


class Recorder:
    """Durable job writes and state transitions."""

    def __init__(self, store: Store, notifier: Notifier, metrics: Metrics, config: RunnerConfig):
        self.store = store
        self.notifier = notifier
        self.metrics = metrics
        self.config = config
        self.status = StatusBoard(store, notifier)

    async def durably(self, job: Job, write: Callable[[], Awaitable[T]]) -> T:
        """Run a store write until it succeeds: a locked or full database delays the job, it
        never throws away what Luma made or kills the job's task."""
        def count(exc: Exception) -> None:
            self.metrics.store_errors.inc()
            log.warning("database unavailable, will retry: %s", exc, extra=log_context(job))

        return await retry(write, transient=lambda e: isinstance(e, StoreUnavailable),
                           backoff=self.config.retry_backoff, on_retry=count)

    # Every change a runner step makes to a job goes through one of these three: `later` (held
    # in memory, written with the job's next write: one commit fewer, where a crash before it
    # only repeats a step that is safe to repeat), `change` (written now, before the step goes
    # on), `set_state` (written now, and the status message follows what it shows).
    @staticmethod
    def later(job: Job, **changes: Any) -> None:
        """Apply `changes` to the job; they are written with its next write."""
        for k, v in changes.items():
            setattr(job, k, v)

    async def change(self, job: Job, *, image: KnownImage | None = None, **changes: Any) -> None:
        """Apply `changes` and write them (with whatever `later` held) before going on; with a
        delivered `image`, recorded in the same write."""
        self.later(job, **changes)
        await self.durably(job, lambda: self.store.jobs.save(job, image=image))

    async def write_held(self, job: Job) -> None:
        """Write what `later` held for the job, if anything: before it waits in line without a
        task, which would forget it (its turn reads the job from the store)."""
        if self.store.jobs.unsaved(job):
            await self.change(job)

    async def set_state(self, job: Job, state: JobState, *, announce: bool = True,
                        **changes: Any) -> None:
        """Record a transition; update the status message only when what it shows changes
        (Slack rate-limits chat.update, so never on every poll or retry)."""
        before = job.shown or job.shown_status()   # what the status message shows
        await self.change(job, state=state, **changes)
        job.shown = None
        if announce and job.shown_status() != before:
            await self.status.show(job)


async def luma_of(accounts: LumaAccounts, job: Job) -> LumaApi:
    """The client of the job's Luma account (JobFailed if the workspace's key was removed:
    nothing more can be sent to, or asked of, that account)."""
    try:
        return await accounts.client(job.account)
    except NoLumaKey:
        raise JobFailed("luma_key_removed") from None


def rejected(job: Job, error: LumaRejected) -> JobFailed:
    """Luma's final answer to a create or a poll, logged loudly when the key is refused."""
    extra = {**log_context(job), "luma_request_id": error.request_id}
    if error.code == "misconfigured" and job.account != DEFAULT_ACCOUNT:
        # A workspace's own key, not the operator's: the workspace's admins can mend it.
        log.warning("luma refused a workspace's own key (%s %s)", error.status, error, extra=extra)
        return JobFailed("own_key_refused", str(error))
    if error.code == "misconfigured":
        log.critical("LUMA REFUSED THE API KEY (%s %s): check LUMA_AGENTS_API_KEY and the Luma "
                     "account", error.status, error, extra=extra)
    else:
        log.warning("luma refused the request (%s): %s", error.status, error, extra=extra)
    return JobFailed(error.code, str(error))
