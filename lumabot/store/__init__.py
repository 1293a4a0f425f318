"""Persistence behind one protocol, `Store`: SQLite (sqlite.py, the embedded default) and
PostgreSQL (postgres.py, for several replicas) both implement it and pass the same contract
tests (tests/store). `open_store(url)` picks the implementation from the URL."""

from __future__ import annotations

from typing import Callable, Protocol

from ..jobs.models import Job, KnownImage, Session
from ..jobs.policy import Policy, PolicyChange
from ..jobs.quotas import Admission, AdmissionRules, Usage
from ..jobs.usage import JobRecord, Removed, UsageLine
from .errors import JobCancelled, JobLost, StoreUnavailable


class Store(Protocol):
    # Several processes may use the database at once (PostgreSQL). SQLite is one process's:
    # at start it takes every unfinished job over, whoever ran it before.
    shared: bool

    async def open(self) -> None: ...
    async def close(self) -> None: ...

    async def schema_version(self) -> int:
        """The version of the database's schema (its numbered migrations applied)."""

    async def create_job(self, job: Job, *, dedupe_key: str | None = None,
                         rules: AdmissionRules | None = None) -> Admission:
        """Insert a new job, deciding admission in the same transaction. With a dedupe key (a
        Slack event id, an action id), a second job with the same key is not created; with
        `rules`, a job over a limit is not created either."""

    async def withdraw_job(self, job_id: str, dedupe_key: str | None) -> None:
        """Delete a job that was recorded but never started (its person was told to try again),
        and its dedupe key; nothing if it has started."""

    async def save_job(self, job: Job, *, image: KnownImage | None = None) -> None:
        """Write the fields of an existing job its runner owns, if this copy still owns it
        (same `owner` and `epoch`); raises JobLost when another replica took it over. Only the
        columns that changed since this store last read or wrote the job are written. With
        `image` (a delivered image), record it in the same transaction."""

    async def request_cancel(self, job_id: str, user_id: str) -> bool:
        """Cancel a job that still waits for Luma (state queued); False once it was sent or is
        finished. Its runner's next move to `submitting` then fails with JobCancelled."""

    async def cancel_requests(self, replica_id: str) -> list[tuple[str, str]]:
        """(job id, who cancelled) of this replica's waiting jobs that were cancelled."""

    async def mark_deleted(self, job_id: str) -> None:
        """Mark a job's result deleted (and nothing else)."""

    async def get_job(self, job_id: str) -> Job | None: ...

    async def job_ids(self) -> list[str]:
        """Every job id, oldest first."""

    async def unsettled_count(self) -> int: ...

    async def recent_latencies(self, limit: int) -> list[tuple[str, str, float]]:
        """(model, type, seconds from sent to seen completed) of the latest delivered jobs,
        newest first: what the poll planner learned, for a restart."""

    async def unfinished_jobs(self) -> list[Job]:
        """Jobs whose outcome the user has not been told yet (not settled), oldest first."""

    # replicas: ownership, heartbeats, takeover
    async def heartbeat(self, replica_id: str) -> None:
        """This replica is alive (recorded on the database's clock where there is one)."""

    async def claim_jobs(self, replica_id: str, *, stale_after: float, include_own: bool = False,
                         limit: int = 500, after: tuple[float, str] | None = None) -> list[Job]:
        """Take over the unsettled jobs nobody runs (unowned, or their owner's heartbeat is older
        than `stale_after` s; with `include_own`, this replica's own from before a restart),
        bumping each one's epoch; at most `limit` jobs, oldest first (by created_at, then id),
        and only those after `after` (the last one's (created_at, id): the next batch)."""

    async def release_jobs(self, replica_id: str) -> int:
        """Hand this replica's unsettled jobs back (a graceful stop); how many."""

    async def wait_for_released_jobs(self, timeout: float) -> None:
        """Return when another replica hands jobs back (PostgreSQL NOTIFY), or after `timeout`
        seconds, whichever comes first."""

    async def claim_key(self, key: str, *, window: float | None = None) -> bool:
        """Remember a dedupe key (e.g. a Slack event id); False if it was already claimed
        (within the last `window` seconds, when given)."""

    async def release_key(self, key: str) -> None:
        """Forget a claimed key (a lease held while some work ran)."""

    async def recent_jobs(self, team_id: str, user_id: str, limit: int = 20) -> list[Job]:
        """A person's latest jobs, newest first."""

    async def record_image(self, image: KnownImage) -> None:
        """Remember an image (idempotent per channel and Slack file)."""

    async def latest_image_in_thread(self, channel_id: str, thread_ts: str) -> KnownImage | None: ...
    async def latest_image_in_channel(self, channel_id: str) -> KnownImage | None: ...

    async def image_by_file(self, slack_file_id: str) -> KnownImage | None:
        """The image lumabot made that was uploaded as this Slack file."""

    async def is_lumabot_thread(self, channel_id: str, thread_ts: str) -> bool: ...

    async def usage(self, team_id: str, since: float, *, user_id: str | None = None,
                    channel_id: str | None = None, refunded: frozenset[str] = frozenset()) -> Usage:
        """Images and estimated spend since a time (a day's start), for a workspace or one
        person or channel in it, swept jobs' daily totals included."""

    async def set_image_message(self, job_id: str, message_ts: str) -> None: ...
    async def job_for_message(self, channel_id: str, ts: str) -> Job | None: ...

    # admin policy (one per workspace; absent: every default)
    async def get_policy(self, team_id: str) -> Policy: ...

    async def update_policy(self, team_id: str, edit: Callable[[Policy], Policy], *, by: str,
                            change: str) -> Policy:
        """Read, edit and write the workspace's policy in one transaction, and log the change;
        the new policy."""

    async def policy_log(self, team_id: str, limit: int = 20) -> list[PolicyChange]:
        """The latest policy changes, newest first."""

    # usage reports, export, retention
    async def usage_lines(self, team_id: str, since: float, until: float, *,
                          refunded: frozenset[str] = frozenset()) -> list[UsageLine]:
        """Images and spend per person, channel, model and type in [since, until), swept jobs'
        daily totals included."""

    async def job_records(self, team_id: str, since: float, until: float, *,
                          refunded: frozenset[str] = frozenset(), after: tuple[float, str] | None = None,
                          limit: int | None = None) -> list[JobRecord]:
        """The stored jobs created in [since, until), oldest first (by created_at, then id): at
        most `limit`, those after `after` (the last one's (created_at, id): the next page)."""

    async def sweep(self, cutoff: float, *, period_cutoff: float,
                    refunded: frozenset[str] = frozenset()) -> Removed:
        """Delete what is older than `cutoff`: settled jobs (their usage kept as daily totals),
        their thumbnails and votes, images, ended sessions, and dedupe keys (those starting with
        `period:` live until `period_cutoff`). What went, per table."""

    async def forget_user(self, team_id: str, user_id: str, anonymous_id: str, *,
                          refunded: frozenset[str] = frozenset()) -> Removed:
        """Delete a person's finished jobs (prompts, parameters), images, thumbnails and votes
        now; their spend stays in the daily totals under `anonymous_id`; sessions they started
        lose the starter and theme. What went, per table."""

    # creative sessions
    async def create_session(self, session: Session) -> bool:
        """False if the channel already has a running session."""

    async def save_session(self, session: Session) -> None: ...
    async def touch_session(self, session_id: str, at: float) -> None: ...
    async def end_session(self, session_id: str, at: float, reason: str) -> bool: ...
    async def get_session(self, session_id: str) -> Session | None: ...
    async def running_session(self, channel_id: str) -> Session | None: ...
    async def open_sessions(self) -> list[Session]: ...
    async def session_jobs(self, session_id: str) -> list[Job]: ...
    async def set_vote(self, session_id: str, job_id: str, user_id: str, on: bool) -> None: ...
    async def votes(self, session_id: str) -> dict[str, int]: ...
    async def save_thumbnail(self, job_id: str, data: bytes) -> None: ...
    async def thumbnails(self, job_ids: list[str]) -> dict[str, bytes]: ...


def open_store(database_url: str) -> Store:
    """The store for LUMABOT_DATABASE_URL: `sqlite:///path` (one machine) or
    `postgresql://…` / `postgres://…` (several replicas; query parameters such as sslmode are
    passed to the driver)."""
    if database_url.startswith("sqlite:///"):
        from .sqlite import SQLiteStore

        return SQLiteStore(database_url[len("sqlite:///"):])
    if database_url.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresStore

        return PostgresStore(database_url)
    raise ValueError("unsupported database URL scheme")


class SharedStore(Store, Protocol):
    """A store several replicas share (PostgreSQL): it also holds Luma's limits for all of them
    together (runner/shared_scheduler.py). SQLite is one process's, which keeps them in memory
    (runner/scheduler.py)."""

    async def slots_enqueue(self, job_id: str, user_key: str, *, front: bool, replica_id: str) -> None: ...

    async def slots_dispatch(self, *, concurrency: int, rate_window: float,
                             probe_period: float) -> tuple[list[str], float]: ...

    async def slots_granted_to(self, replica_id: str) -> list[str]: ...
    async def slots_release(self, job_id: str, replica_id: str) -> None: ...
    async def slots_hold(self, job_id: str) -> None: ...
    async def slots_pause(self, seconds: float) -> None: ...
    async def slots_too_many(self, job_id: str, retry_after: float, probe_period: float) -> None: ...

    async def slots_observe_rate(self, limit: int | None, remaining: int | None,
                                 reset_at_unix: float | None, rate_window: float) -> None: ...

    async def slots_counts(self) -> tuple[int, int]: ...
    async def slots_front(self, limit: int) -> list[str]: ...
    async def wait_for_slots(self, timeout: float) -> None: ...


async def schema_status(database_url: str) -> tuple[int, int]:
    """(the database's schema version, the version this lumabot brings it to), read without
    changing anything (`lumabot check`). Raises StoreUnavailable when it cannot be reached."""
    if database_url.startswith("sqlite:///"):
        from .sqlite import MIGRATIONS, peek_version

        return await peek_version(database_url[len("sqlite:///"):]), len(MIGRATIONS)
    from .postgres import MIGRATIONS as PG_MIGRATIONS
    from .postgres import peek_version as pg_peek_version

    return await pg_peek_version(database_url), len(PG_MIGRATIONS)


__all__ = ["JobCancelled", "JobLost", "SharedStore", "Store", "StoreUnavailable", "open_store", "schema_status"]
