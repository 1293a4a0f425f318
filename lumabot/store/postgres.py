"""The PostgreSQL store (asyncpg), for several replicas sharing one database.

The same contract as the SQLite store (tests/store runs both). Each operation is one statement
or one transaction on a pooled connection. Admission is serialised per workspace with a
transaction-level advisory lock, and counted in a statement after the lock is held (under READ
COMMITTED each statement sees what was committed before it started, so the count includes every
job admitted while this one waited for the lock). Migrations run under an advisory lock, so
replicas that start together migrate once; they are additive, so an older replica keeps working
during a rolling deploy.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Callable

import asyncpg

from ..jobs.failures import REFUNDED_FAILURE_CODES
from ..jobs.forgetting import forget_plan, settle_action
from ..jobs.models import Job, KnownImage, Session
from ..jobs.policy import AdmissionCounts, Policy, PolicyChange, Rules
from ..jobs.quotas import Admission, AdmissionRules, Usage
from ..jobs.usage import JobRecord, Removed, UsageLine
from .errors import JobCancelled, JobLost, StoreUnavailable
from .rows import (
    IMAGE_COLUMNS,
    IMAGE_SELECT,
    JOB_COLUMNS,
    JOB_SELECT,
    SESSION_COLUMNS,
    WrittenRows,
    SESSION_SELECT,
    image_from_row,
    image_row,
    job_from_row,
    job_row,
    session_from_row,
    session_row,
)

log = logging.getLogger("lumabot.store")

# Numbered migrations (index + 1 = the version, kept in schema_version). Append, never edit.
MIGRATIONS: list[str] = [
    # 1: the schema of SQLite's version 6
    """
    CREATE TABLE jobs (
        seq BIGSERIAL UNIQUE,
        id TEXT PRIMARY KEY,
        team_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        channel_id TEXT NOT NULL,
        thread_ts TEXT,
        response_url TEXT,
        params TEXT NOT NULL,
        state TEXT NOT NULL,
        status_ts TEXT,
        generation_id TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        submit_tries INTEGER NOT NULL DEFAULT 0,
        waiting_reason TEXT,
        failure_code TEXT,
        failure_detail TEXT,
        slack_file_id TEXT,
        created_at DOUBLE PRECISION NOT NULL,
        submitted_at DOUBLE PRECISION,
        completed_at DOUBLE PRECISION,
        finished_at DOUBLE PRECISION,
        deadline DOUBLE PRECISION,
        settled BOOLEAN NOT NULL DEFAULT FALSE,
        cost_usd DOUBLE PRECISION NOT NULL DEFAULT 0,
        actions_ts TEXT,
        deleted BOOLEAN NOT NULL DEFAULT FALSE,
        session_id TEXT,
        blind_resends INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX jobs_unsettled ON jobs(created_at) WHERE NOT settled;
    CREATE INDEX jobs_user_created ON jobs(team_id, user_id, created_at);
    CREATE INDEX jobs_team_created ON jobs(team_id, created_at);
    CREATE INDEX jobs_channel_status ON jobs(channel_id, status_ts);
    CREATE INDEX jobs_session ON jobs(session_id);
    CREATE TABLE dedupe_keys (
        key TEXT PRIMARY KEY,
        created_at DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE images (
        id BIGSERIAL PRIMARY KEY,
        channel_id TEXT NOT NULL,
        thread_ts TEXT NOT NULL,
        message_ts TEXT,
        origin TEXT NOT NULL,
        job_id TEXT,
        generation_id TEXT,
        slack_file_id TEXT,
        file TEXT,
        user_id TEXT,
        created_at DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX images_thread ON images(channel_id, thread_ts, id);
    CREATE INDEX images_channel ON images(channel_id, id);
    CREATE UNIQUE INDEX images_file ON images(channel_id, slack_file_id);
    CREATE INDEX images_by_file ON images(slack_file_id);
    CREATE INDEX images_job ON images(job_id);
    CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        team_id TEXT NOT NULL,
        channel_id TEXT NOT NULL,
        started_by TEXT NOT NULL,
        started_at DOUBLE PRECISION NOT NULL,
        flags TEXT NOT NULL,
        theme TEXT,
        banner_ts TEXT,
        last_prompt_at DOUBLE PRECISION NOT NULL,
        ended_at DOUBLE PRECISION,
        end_reason TEXT,
        recap_file_id TEXT,
        recap_posted BOOLEAN NOT NULL DEFAULT FALSE
    );
    CREATE UNIQUE INDEX sessions_running ON sessions(channel_id) WHERE ended_at IS NULL;
    CREATE TABLE votes (
        job_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        session_id TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (job_id, user_id)
    );
    CREATE INDEX votes_session ON votes(session_id);
    CREATE TABLE thumbnails (
        job_id TEXT PRIMARY KEY,
        data BYTEA NOT NULL
    );
    """,
    # 2: which replica runs a job, with a fencing epoch; replicas' heartbeats (database clock)
    """
    ALTER TABLE jobs ADD COLUMN owner TEXT;
    ALTER TABLE jobs ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX jobs_owner ON jobs(owner) WHERE NOT settled;
    CREATE TABLE replicas (
        id TEXT PRIMARY KEY,
        heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    """,
    # 3: Luma's limits, held for all replicas together: the account's state, the jobs waiting
    # for a slot, the slots held, recent submissions (the requests-per-minute window) and whose
    # turn it is (round-robin between people)
    """
    CREATE TABLE luma_account (
        id TEXT PRIMARY KEY,
        paused_until TIMESTAMPTZ NOT NULL DEFAULT '1970-01-01T00:00:00Z',
        estimate INTEGER,
        estimate_until TIMESTAMPTZ,
        rate_limit INTEGER,
        turn BIGINT NOT NULL DEFAULT 0
    );
    INSERT INTO luma_account (id) VALUES ('default');
    CREATE TABLE luma_waiting (
        job_id TEXT PRIMARY KEY,
        account TEXT NOT NULL,
        user_key TEXT NOT NULL,
        front BOOLEAN NOT NULL,
        seq BIGSERIAL
    );
    CREATE INDEX luma_waiting_user ON luma_waiting(account, user_key);
    CREATE TABLE luma_turns (
        account TEXT NOT NULL,
        user_key TEXT NOT NULL,
        served BIGINT NOT NULL,
        PRIMARY KEY (account, user_key)
    );
    CREATE TABLE luma_slots (
        job_id TEXT PRIMARY KEY,
        account TEXT NOT NULL,
        granted_at TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    CREATE TABLE luma_submissions (
        account TEXT NOT NULL,
        at TIMESTAMPTZ NOT NULL
    );
    CREATE INDEX luma_submissions_at ON luma_submissions(account, at);
    """,
    # 4: jobs cancelled while they waited
    """
    ALTER TABLE jobs ADD COLUMN cancelled_by TEXT;
    """,
    # 5: admin policy and its log; daily usage totals of jobs the retention sweep removed
    """
    CREATE TABLE policies (
        team_id TEXT PRIMARY KEY,
        data TEXT NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE policy_log (
        id BIGSERIAL PRIMARY KEY,
        team_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        at DOUBLE PRECISION NOT NULL,
        change TEXT NOT NULL
    );
    CREATE INDEX policy_log_team ON policy_log(team_id, id);
    CREATE TABLE usage_days (
        team_id TEXT NOT NULL,
        day DOUBLE PRECISION NOT NULL,
        user_id TEXT NOT NULL,
        channel_id TEXT NOT NULL,
        model TEXT NOT NULL,
        type TEXT NOT NULL,
        images INTEGER NOT NULL,
        jobs INTEGER NOT NULL,
        spend DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (team_id, day, user_id, channel_id, model, type)
    );
    """,
    # 6: a grant names the replica to tell (its job waits without a task there); the line is
    # read front first, by each person's place in their own line
    """
    ALTER TABLE luma_waiting ADD COLUMN replica TEXT;
    ALTER TABLE luma_slots ADD COLUMN untold TEXT;
    CREATE INDEX luma_slots_untold ON luma_slots(untold) WHERE untold IS NOT NULL;
    DROP INDEX luma_waiting_user;
    CREATE INDEX luma_waiting_line ON luma_waiting(account, user_key, front DESC, (CASE WHEN front THEN -seq ELSE seq END));
    DELETE FROM luma_turns t WHERE NOT EXISTS (SELECT 1 FROM luma_waiting w WHERE w.account = t.account AND w.user_key = t.user_key);
    """,
    # 7: what a forget left for a job still under way, applied as it settles (jobs/forgetting.py)
    """
    ALTER TABLE jobs ADD COLUMN on_settle TEXT;
    """,
]

async def _one_roll_up_at_a_time(con: Any) -> None:
    """Sweeps and forgets roll jobs into the daily totals and then delete them: one at a time
    (for the whole database), each seeing what the one before it deleted, so no job is counted
    twice. Its later statements see every commit made while it waited (READ COMMITTED)."""
    await con.execute("SELECT pg_advisory_xact_lock($1)", _ROLL_UP_LOCK)


async def _forget_turn_if_done(con: Any, user_key: str) -> None:
    """A person whose line is empty leaves the turn order (coming back, they join at the back):
    the next pick looks only at people with jobs waiting."""
    await con.execute("DELETE FROM luma_turns WHERE account = $1 AND user_key = $2 AND NOT EXISTS "
                      "(SELECT 1 FROM luma_waiting WHERE account = $1 AND user_key = $2)", ACCOUNT, user_key)


# A person's own line: retries first (the latest first), then the rest in the order they came.
_IN_OWN_LINE = "front DESC, (CASE WHEN front THEN -seq ELSE seq END)"
ACCOUNT = "default"  # one Luma account for now; a job's account id comes with several workspaces
SLOTS_CHANNEL = "lumabot_slots"  # NOTIFYed when slots are granted or freed

# The channel replicas LISTEN on: a job was handed back or a replica stopped.
NOTIFY_CHANNEL = "lumabot_jobs"

# Any number, the same in every replica: the advisory lock that serialises migrations.
_MIGRATION_LOCK = 0x6C756D61
_ROLL_UP_LOCK = 0x6C756D62  # sweeps and forgets

# A database that hangs holds no caller for ever: waiting for a pooled connection, and each
# statement, give up after these many seconds (StoreUnavailable). Work before an ack has its own,
# shorter bound (runner/deadline.py); these are for everything else.
ACQUIRE_TIMEOUT = 30.0
STATEMENT_TIMEOUT = 120.0

# Errors that mean "the database cannot do this right now": the caller retries later.
_UNAVAILABLE = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,     # shutting down, cannot connect now
    asyncpg.exceptions.InsufficientResourcesError,    # disk full, too many connections
    asyncpg.exceptions.TransactionRollbackError,      # serialization failure, deadlock
    asyncpg.exceptions.ReadOnlySQLTransactionError,   # a standby, or default_transaction_read_only
    asyncpg.exceptions.LockNotAvailableError,
    asyncpg.exceptions.QueryCanceledError,            # statement_timeout
    asyncpg.exceptions.InternalClientError,           # a connection left in a bad state (a restart)
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
)


# What a pooled connection is (a proxy of asyncpg.Connection).
_Connection = asyncpg.pool.PoolConnectionProxy


_MODEL = "COALESCE(params::jsonb ->> 'model', 'uni-1')"
_TYPE = "COALESCE(params::jsonb ->> 'type', 'image')"


def _charged(refunded_param: int) -> str:
    """`Job.charged` in SQL, with the refunded failure codes as parameter $n (a text array)."""
    return (f"attempts > 0 AND NOT (state = 'failed' AND COALESCE(failure_code, '') = "
            f"ANY(${refunded_param}::text[]))")


def _roll_up(user: str, where: str, charged: str) -> str:
    """Add the jobs matching `where` to the daily usage totals (per day, person, channel, model
    and type), the person given by the SQL expression `user`."""
    return (
        "INSERT INTO usage_days (team_id, day, user_id, channel_id, model, type, images, jobs, spend) "
        f"SELECT team_id, floor(created_at / 86400) * 86400, {user}, channel_id, {_MODEL}, {_TYPE}, "
        f"COUNT(*) FILTER (WHERE state = 'done'), COUNT(*), COALESCE(SUM(cost_usd) FILTER (WHERE {charged}), 0) "
        f"FROM jobs WHERE {where} GROUP BY 1, 2, 3, 4, 5, 6 ON CONFLICT (team_id, day, user_id, "
        "channel_id, model, type) DO UPDATE SET images = usage_days.images + excluded.images, "
        "jobs = usage_days.jobs + excluded.jobs, spend = usage_days.spend + excluded.spend")


def _marks(n: int, start: int = 1) -> str:
    return ", ".join(f"${i}" for i in range(start, start + n))


def _changed(status: str) -> int:
    """Rows a statement changed, from asyncpg's status ("UPDATE 1", "INSERT 0 1")."""
    return int(status.rsplit(" ", 1)[-1])


class PostgresStore:
    shared = True  # several replicas

    def __init__(self, dsn: str, *, pool_size: int = 10):
        self.dsn = dsn
        self.pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        # One connection LISTENs on both channels; each notice sets its event.
        self._listener: asyncpg.Connection | None = None
        self._listening = asyncio.Lock()
        self._notices = {NOTIFY_CHANNEL: asyncio.Event(), SLOTS_CHANNEL: asyncio.Event()}
        self._listen_again_at = 0.0   # after a failed LISTEN connect: not before then (loop time)
        self._listen_backoff = 0.0
        self._written = WrittenRows()

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("store is not open")
        return self._pool

    async def open(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=self.pool_size,
                                                   command_timeout=STATEMENT_TIMEOUT)
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(f"cannot connect to PostgreSQL: {exc}") from exc
        await self._migrate()

    async def close(self) -> None:
        if self._listener is not None:
            listener, self._listener = self._listener, None
            try:
                await asyncio.wait_for(listener.close(), 5)
            except Exception:
                listener.terminate()
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def schema_version(self) -> int:
        async with self._con() as con:
            exists = await con.fetchval("SELECT to_regclass('schema_version') IS NOT NULL")
            if not exists:
                return 0
            return int(await con.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version"))

    async def _migrate(self) -> None:
        async with self._con() as con, con.transaction():
            await con.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
            await con.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            version = int(await con.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version"))
            if version > len(MIGRATIONS):
                raise RuntimeError(f"database schema version {version} is newer than this lumabot "
                                   f"({len(MIGRATIONS)}): upgrade lumabot")
            for number in range(version + 1, len(MIGRATIONS) + 1):
                await con.execute(MIGRATIONS[number - 1])
                await con.execute("INSERT INTO schema_version (version) VALUES ($1)", number)

    # -- connections -----------------------------------------------------------------------------
    @asynccontextmanager
    async def _con(self) -> AsyncIterator[_Connection]:
        """A pooled connection; database faults become StoreUnavailable."""
        try:
            async with self.pool.acquire(timeout=ACQUIRE_TIMEOUT) as con:
                yield con
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(str(exc) or type(exc).__name__) from exc

    async def _execute(self, sql: str, *args: Any) -> int:
        async with self._con() as con:
            return _changed(await con.execute(sql, *args))

    async def _rows(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        async with self._con() as con:
            return list(await con.fetch(sql, *args))

    async def _row(self, sql: str, *args: Any) -> asyncpg.Record | None:
        async with self._con() as con:
            row: asyncpg.Record | None = await con.fetchrow(sql, *args)
            return row

    # -- jobs ----------------------------------------------------------------------------------
    async def create_job(self, job: Job, *, dedupe_key: str | None = None,
                         rules: AdmissionRules | None = None) -> Admission:
        async with self._con() as con, con.transaction():
            if dedupe_key is not None:
                inserted = _changed(await con.execute(
                    "INSERT INTO dedupe_keys (key, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    dedupe_key, time.time()))
                if not inserted:
                    return Admission.duplicate()
            admission = Admission.created()
            if rules is not None:
                # One admission at a time per workspace; the policy and the counts come in
                # later statements, which see everything committed while this one waited.
                await con.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"admit:{job.team_id}")
                policy = await self._policy(con, job.team_id)
                admission = await rules.decide(policy, job, lambda in_force: self._admission_counts(
                    con, job, rules, in_force))
                if admission.status == "refused":
                    if dedupe_key is not None:
                        await con.execute("DELETE FROM dedupe_keys WHERE key = $1", dedupe_key)
                    return admission
            row = job_row(job)
            await con.execute(f"INSERT INTO jobs ({', '.join(JOB_COLUMNS)}) VALUES ({_marks(len(JOB_COLUMNS))})",
                              *row)
        self._written.remember(dict(zip(JOB_COLUMNS, row)))
        return admission

    async def withdraw_job(self, job_id: str, dedupe_key: str | None) -> None:
        async with self._con() as con, con.transaction():
            await con.execute("DELETE FROM jobs WHERE id = $1 AND state = 'queued' AND status_ts IS NULL "
                              "AND NOT settled", job_id)
            await con.execute("DELETE FROM dedupe_keys WHERE key = $1", dedupe_key)
        self._written.forget(job_id)

    async def _admission_counts(self, con: _Connection, job: Job, rules: AdmissionRules,
                                in_force: Rules) -> AdmissionCounts:
        """The counts the rules in force need, in the admitting transaction."""
        waiting = await con.fetchval(
            "SELECT COUNT(*) FROM jobs WHERE team_id = $1 AND user_id = $2 AND NOT settled "
            "AND state IN ('queued', 'submitting') AND cancelled_by IS NULL", job.team_id, job.user_id)
        return await rules.count(job, in_force, waiting=int(waiting), usage=lambda since, user, channel: self._usage(
            con, job.team_id, since, user, channel, rules.refunded))

    async def save_job(self, job: Job, *, image: KnownImage | None = None) -> None:
        """Write the fields the job's runner owns that changed (not `deleted`: see mark_deleted),
        if this copy of the job still owns it (same owner and epoch); JobLost otherwise
        (fencing). With `image`, record it in the same transaction."""
        changes, row = self._written.changes(job)
        if not changes and image is None:  # nothing to write: only check the job is still ours
            found = await self._row("SELECT owner, epoch FROM jobs WHERE id = $1", job.id)
            if found is None or (found[0], found[1]) != (job.owner, job.epoch):
                raise JobLost(job.id)
            return
        changes = changes or {"state": row["state"]}  # the image needs the fenced statement
        sets = ", ".join(f"{c} = ${i}" for i, c in enumerate(changes, 1))
        n = len(changes)
        settling = bool(changes.get("settled"))  # then a forget may have left an instruction
        update = (f"UPDATE jobs SET {sets} WHERE id = ${n + 1} AND owner IS NOT DISTINCT FROM ${n + 2} "
                  f"AND epoch = ${n + 3} AND (cancelled_by IS NULL OR ${n + 4} <> 'submitting')")
        args = (*changes.values(), job.id, job.owner, job.epoch, job.state.value)
        async with self._con() as con, con.transaction():
            instruction = None
            if settling:
                returned = await con.fetch(update + " RETURNING on_settle", *args)
                changed, instruction = len(returned), returned[0][0] if returned else None
            else:
                changed = _changed(await con.execute(update, *args))
            if changed and image is not None:
                await con.execute(f"INSERT INTO images ({', '.join(IMAGE_COLUMNS)}) VALUES "
                                  f"({_marks(len(IMAGE_COLUMNS))}) ON CONFLICT DO NOTHING", *image_row(image))
            if instruction is not None:
                await self._settle_forgotten(con, job.id, instruction, row["params"])
        if changed == 0:
            found = await self._row("SELECT cancelled_by, owner, epoch FROM jobs WHERE id = $1", job.id)
            if found is not None and found[0] and (found[1], found[2]) == (job.owner, job.epoch):
                raise JobCancelled(found[0])
            raise JobLost(job.id)
        self._written.remember(row)

    async def request_cancel(self, job_id: str, user_id: str) -> bool:
        """Cancel a job that still waits for Luma; False once it has been sent (or finished)."""
        return await self._execute("UPDATE jobs SET cancelled_by = $1 WHERE id = $2 AND state = 'queued' "
                                   "AND NOT settled AND cancelled_by IS NULL", user_id, job_id) == 1

    async def cancel_requests(self, replica_id: str) -> list[tuple[str, str]]:
        rows = await self._rows("SELECT id, cancelled_by FROM jobs WHERE owner = $1 AND NOT settled "
                                "AND state = 'queued' AND cancelled_by IS NOT NULL", replica_id)
        return [(r[0], r[1]) for r in rows]

    # -- replicas: ownership, heartbeats, takeover --------------------------------------------
    async def heartbeat(self, replica_id: str) -> None:
        await self._execute("INSERT INTO replicas (id, heartbeat_at) VALUES ($1, now()) "
                            "ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()", replica_id)

    async def claim_jobs(self, replica_id: str, *, stale_after: float, include_own: bool = False,
                         limit: int = 500, after: tuple[float, str] | None = None) -> list[Job]:
        """Take over unsettled jobs nobody runs: unowned (handed back), owned by a replica whose
        heartbeat is older than `stale_after` seconds on the database's clock (or gone), or with
        `include_own`, this replica's own from before a restart. Each one's epoch is bumped, so
        its previous owner can no longer write it. Replicas claiming at once skip each other's
        rows (SKIP LOCKED)."""
        since, last_id = after if after is not None else (float("-inf"), "")
        rows = await self._rows(
            "WITH claimable AS (SELECT j.id FROM jobs j LEFT JOIN replicas r ON r.id = j.owner "
            "WHERE NOT j.settled AND (j.owner IS NULL OR (j.owner = $1 AND $3) OR (j.owner <> $1 "
            "AND (r.id IS NULL OR r.heartbeat_at < now() - make_interval(secs => $2)))) "
            "AND (j.created_at, j.id) > ($5, $6) "
            "ORDER BY j.created_at, j.id LIMIT $4 FOR UPDATE OF j SKIP LOCKED) "
            "UPDATE jobs SET owner = $1, epoch = jobs.epoch + 1 FROM claimable "
            f"WHERE jobs.id = claimable.id RETURNING {', '.join(f'jobs.{c}' for c in JOB_COLUMNS)}",
            replica_id, float(stale_after), include_own, limit, since, last_id)
        jobs = sorted((job_from_row(r) for r in rows), key=lambda j: (j.created_at, j.id))
        self._written.remember_jobs(jobs)
        return jobs

    async def wait_for_released_jobs(self, timeout: float) -> None:
        await self._wait_for_notice(NOTIFY_CHANNEL, timeout)

    async def _wait_for_notice(self, channel: str, timeout: float) -> None:
        """Return when `channel` is NOTIFYed, or after `timeout` (the polling fallback: without
        a listening connection, a notice is only seen later)."""
        await self._listen()
        event = self._notices[channel]
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except asyncio.TimeoutError:
            pass
        event.clear()

    @property
    def listening(self) -> bool:
        """Whether a live connection LISTENs for the other replicas' notices."""
        return self._listener is not None and not self._listener.is_closed()

    async def _listen(self) -> None:
        """(Re)open the listening connection: at first, and after PostgreSQL restarted or the
        connection was killed (then with backoff, while it cannot be opened). Every waiter is
        woken after a reconnect: notices sent while nobody listened are lost."""
        loop = asyncio.get_running_loop()
        async with self._listening:
            if self.listening or loop.time() < self._listen_again_at:
                return
            reconnect = self._listener is not None
            if reconnect:
                self._listener.terminate()  # type: ignore[union-attr]
                self._listener = None
            try:
                listener = await asyncpg.connect(self.dsn, timeout=10)
                for name, event in self._notices.items():
                    await listener.add_listener(name, lambda *_, event=event: event.set())
            except _UNAVAILABLE as exc:
                self._listen_backoff = min(max(1.0, self._listen_backoff * 2), 30.0)
                self._listen_again_at = loop.time() + self._listen_backoff
                log.warning("cannot LISTEN for the other replicas (polling meanwhile; again in %.0f s): %s",
                            self._listen_backoff, exc)
                return
            listener.add_termination_listener(lambda _con: self._wake_all())
            self._listener, self._listen_backoff = listener, 0.0
            if reconnect:
                log.info("listening for the other replicas again")
                self._wake_all()

    def _wake_all(self) -> None:
        for event in self._notices.values():
            event.set()

    async def release_jobs(self, replica_id: str) -> int:
        """Hand this replica's unsettled jobs back (a graceful stop) and wake the others."""
        async with self._con() as con, con.transaction():
            released = _changed(await con.execute(
                "UPDATE jobs SET owner = NULL WHERE owner = $1 AND NOT settled", replica_id))
            await con.execute("DELETE FROM replicas WHERE id = $1", replica_id)
            await con.execute(f"NOTIFY {NOTIFY_CHANNEL}")
        return released

    async def mark_deleted(self, job_id: str) -> None:
        await self._execute("UPDATE jobs SET deleted = TRUE WHERE id = $1", job_id)

    async def get_job(self, job_id: str) -> Job | None:
        row = await self._row(f"{JOB_SELECT} WHERE id = $1", job_id)
        return job_from_row(row) if row else None

    async def job_ids(self) -> list[str]:
        return [r[0] for r in await self._rows("SELECT id FROM jobs ORDER BY created_at, seq")]

    async def unfinished_jobs(self) -> list[Job]:
        rows = await self._rows(f"{JOB_SELECT} WHERE NOT settled ORDER BY created_at, seq")
        return [job_from_row(r) for r in rows]

    async def claim_key(self, key: str, *, window: float | None = None) -> bool:
        now = time.time()
        if window is None:
            return await self._execute("INSERT INTO dedupe_keys (key, created_at) VALUES ($1, $2) "
                                       "ON CONFLICT DO NOTHING", key, now) == 1
        return await self._execute(
            "INSERT INTO dedupe_keys (key, created_at) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE "
            "SET created_at = excluded.created_at WHERE dedupe_keys.created_at < $3",
            key, now, now - window) == 1

    async def recent_jobs(self, team_id: str, user_id: str, limit: int = 20) -> list[Job]:
        rows = await self._rows(f"{JOB_SELECT} WHERE team_id = $1 AND user_id = $2 "
                                "ORDER BY created_at DESC, seq DESC LIMIT $3", team_id, user_id, limit)
        return [job_from_row(r) for r in rows]

    async def usage(self, team_id: str, since: float, *, user_id: str | None = None,
                    channel_id: str | None = None, refunded: frozenset[str] = frozenset()) -> Usage:
        async with self._con() as con:
            return await self._usage(con, team_id, since, user_id, channel_id, refunded)

    async def _usage(self, con: _Connection, team_id: str, since: float, user_id: str | None,
                     channel_id: str | None, refunded: frozenset[str]) -> Usage:
        """As `Job.charged` says, in SQL for the aggregate (the SQLite store says the same), plus
        the daily totals of swept jobs."""
        where, args = "team_id = $2 AND created_at >= $3", [sorted(refunded), team_id, since]
        totals = "team_id = $2 AND day >= $3"
        for column, value in (("user_id", user_id), ("channel_id", channel_id)):
            if value is not None:
                args.append(value)
                where += f" AND {column} = ${len(args)}"
                totals += f" AND {column} = ${len(args)}"
        row = await con.fetchrow(
            "SELECT COUNT(*) FILTER (WHERE state = 'done'), COUNT(*) FILTER (WHERE state NOT IN ('failed', 'cancelled')), "
            f"COALESCE(SUM(cost_usd) FILTER (WHERE {_charged(1)}), 0), "
            "COALESCE(SUM(cost_usd) FILTER (WHERE NOT settled AND attempts = 0 AND state NOT IN ('failed', 'cancelled') AND cancelled_by IS NULL), 0), "
            f"(SELECT COALESCE(SUM(images), 0) FROM usage_days WHERE {totals}), "
            f"(SELECT COALESCE(SUM(spend), 0) FROM usage_days WHERE {totals}) "
            f"FROM jobs WHERE {where}", *args)
        assert row is not None
        images, requested, spend, pending, swept_images, swept_spend = row
        return Usage(images=images + swept_images, requested=requested + swept_images,
                     spend=spend + swept_spend, pending=pending)

    # -- images --------------------------------------------------------------------------------
    async def record_image(self, image: KnownImage) -> None:
        await self._execute(
            f"INSERT INTO images ({', '.join(IMAGE_COLUMNS)}) VALUES ({_marks(len(IMAGE_COLUMNS))}) "
            "ON CONFLICT DO NOTHING", *image_row(image))

    async def _one_image(self, where: str, *args: Any) -> KnownImage | None:
        row = await self._row(f"{IMAGE_SELECT} WHERE {where} ORDER BY id DESC LIMIT 1", *args)
        return image_from_row(row) if row else None

    async def latest_image_in_thread(self, channel_id: str, thread_ts: str) -> KnownImage | None:
        return await self._one_image("channel_id = $1 AND thread_ts = $2", channel_id, thread_ts)

    async def latest_image_in_channel(self, channel_id: str) -> KnownImage | None:
        return await self._one_image("channel_id = $1", channel_id)

    async def image_by_file(self, slack_file_id: str) -> KnownImage | None:
        return await self._one_image("slack_file_id = $1 AND origin = 'lumabot'", slack_file_id)

    async def is_lumabot_thread(self, channel_id: str, thread_ts: str) -> bool:
        row = await self._row(
            "SELECT 1 FROM jobs WHERE channel_id = $1 AND status_ts = $2 AND thread_ts IS NULL "
            "UNION ALL SELECT 1 FROM images WHERE channel_id = $1 AND thread_ts = $2 "
            "AND origin = 'lumabot' LIMIT 1", channel_id, thread_ts)
        return row is not None

    async def set_image_message(self, job_id: str, message_ts: str) -> None:
        await self._execute("UPDATE images SET message_ts = $1 WHERE job_id = $2", message_ts, job_id)

    async def job_for_message(self, channel_id: str, ts: str) -> Job | None:
        row = await self._row(
            f"{JOB_SELECT} WHERE channel_id = $1 AND (actions_ts = $2 OR status_ts = $2 OR id IN "
            "(SELECT job_id FROM images WHERE channel_id = $1 AND message_ts = $2 AND origin = 'lumabot')) "
            "LIMIT 1", channel_id, ts)
        return job_from_row(row) if row else None

    # -- sessions, votes, thumbnails -------------------------------------------------------------
    async def create_session(self, session: Session) -> bool:
        try:
            await self._execute(f"INSERT INTO sessions ({', '.join(SESSION_COLUMNS)}) VALUES "
                                f"({_marks(len(SESSION_COLUMNS))})", *session_row(session))
        except asyncpg.UniqueViolationError:
            return False
        return True

    async def save_session(self, session: Session) -> None:
        cols = SESSION_COLUMNS[1:]
        row = session_row(session)
        sets = ", ".join(f"{c} = ${i}" for i, c in enumerate(cols, 1))
        await self._execute(f"UPDATE sessions SET {sets} WHERE id = ${len(cols) + 1}", *row[1:], row[0])

    async def touch_session(self, session_id: str, at: float) -> None:
        await self._execute("UPDATE sessions SET last_prompt_at = $1 WHERE id = $2 AND ended_at IS NULL",
                            at, session_id)

    async def end_session(self, session_id: str, at: float, reason: str) -> bool:
        return await self._execute("UPDATE sessions SET ended_at = $1, end_reason = $2 "
                                   "WHERE id = $3 AND ended_at IS NULL", at, reason, session_id) == 1

    async def get_session(self, session_id: str) -> Session | None:
        row = await self._row(f"{SESSION_SELECT} WHERE id = $1", session_id)
        return session_from_row(row) if row else None

    async def running_session(self, channel_id: str) -> Session | None:
        row = await self._row(f"{SESSION_SELECT} WHERE channel_id = $1 AND ended_at IS NULL", channel_id)
        return session_from_row(row) if row else None

    async def open_sessions(self) -> list[Session]:
        rows = await self._rows(f"{SESSION_SELECT} WHERE ended_at IS NULL OR NOT recap_posted")
        return [session_from_row(r) for r in rows]

    async def session_jobs(self, session_id: str) -> list[Job]:
        rows = await self._rows(f"{JOB_SELECT} WHERE session_id = $1 ORDER BY created_at, seq", session_id)
        return [job_from_row(r) for r in rows]

    async def set_vote(self, session_id: str, job_id: str, user_id: str, on: bool) -> None:
        if on:
            await self._execute("INSERT INTO votes (job_id, user_id, session_id, created_at) "
                                "VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                                job_id, user_id, session_id, time.time())
        else:
            await self._execute("DELETE FROM votes WHERE job_id = $1 AND user_id = $2", job_id, user_id)

    async def votes(self, session_id: str) -> dict[str, int]:
        rows = await self._rows("SELECT job_id, COUNT(*) FROM votes WHERE session_id = $1 GROUP BY job_id",
                                session_id)
        return {job_id: int(n) for job_id, n in rows}

    async def save_thumbnail(self, job_id: str, data: bytes) -> None:
        """(Not for a job that is gone: one forgotten as it settled.)"""
        await self._execute("INSERT INTO thumbnails (job_id, data) SELECT $1, $2 WHERE EXISTS (SELECT 1 "
                            "FROM jobs WHERE id = $1) ON CONFLICT (job_id) DO UPDATE SET data = excluded.data",
                            job_id, data)

    async def thumbnails(self, job_ids: list[str]) -> dict[str, bytes]:
        if not job_ids:
            return {}
        rows = await self._rows("SELECT job_id, data FROM thumbnails WHERE job_id = ANY($1::text[])",
                                job_ids)
        return {job_id: bytes(data) for job_id, data in rows}

    # -- admin policy --------------------------------------------------------------------------
    async def _policy(self, con: _Connection, team_id: str) -> Policy:
        data = await con.fetchval("SELECT data FROM policies WHERE team_id = $1", team_id)
        return Policy.model_validate_json(data) if data else Policy()

    async def get_policy(self, team_id: str) -> Policy:
        async with self._con() as con:
            return await self._policy(con, team_id)

    async def update_policy(self, team_id: str, edit: Callable[[Policy], Policy], *, by: str,
                            change: str) -> Policy:
        async with self._con() as con, con.transaction():
            # One change at a time per workspace (the row may not exist yet to lock).
            await con.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"policy:{team_id}")
            policy = edit(await self._policy(con, team_id))
            now = time.time()
            await con.execute("INSERT INTO policies (team_id, data, updated_at) VALUES ($1, $2, $3) "
                              "ON CONFLICT (team_id) DO UPDATE SET data = excluded.data, "
                              "updated_at = excluded.updated_at",
                              team_id, policy.model_dump_json(exclude_unset=True), now)
            await con.execute("INSERT INTO policy_log (team_id, user_id, at, change) VALUES ($1, $2, $3, $4)",
                              team_id, by, now, change)
        return policy

    async def policy_log(self, team_id: str, limit: int = 20) -> list[PolicyChange]:
        rows = await self._rows("SELECT team_id, user_id, at, change FROM policy_log WHERE team_id = $1 "
                                "ORDER BY id DESC LIMIT $2", team_id, limit)
        return [PolicyChange(*r) for r in rows]

    # -- usage reports, export, retention ----------------------------------------------------------
    async def usage_lines(self, team_id: str, since: float, until: float, *,
                          refunded: frozenset[str] = frozenset()) -> list[UsageLine]:
        rows = await self._rows(
            "SELECT user_id, channel_id, model, type, SUM(images), SUM(spend) FROM ("
            f"SELECT user_id, channel_id, {_MODEL} AS model, {_TYPE} AS type, (state = 'done')::int AS images, "
            f"CASE WHEN {_charged(1)} THEN cost_usd ELSE 0 END AS spend FROM jobs WHERE team_id = $2 "
            "AND created_at >= $3 AND created_at < $4 UNION ALL SELECT user_id, channel_id, model, type, "
            "images, spend FROM usage_days WHERE team_id = $2 AND day >= $3 AND day < $4) AS u "
            "GROUP BY user_id, channel_id, model, type", sorted(refunded), team_id, since, until)
        return [UsageLine(r[0], r[1], r[2], r[3], int(r[4]), float(r[5])) for r in rows]

    async def job_records(self, team_id: str, since: float, until: float, *,
                          refunded: frozenset[str] = frozenset(), after: tuple[float, str] | None = None,
                          limit: int | None = None) -> list[JobRecord]:
        since_at, last_id = after if after is not None else (since, "")
        rows = await self._rows(
            f"SELECT id, created_at, user_id, channel_id, {_MODEL}, {_TYPE}, CASE WHEN settled OR "
            "state IN ('done', 'failed', 'cancelled') THEN state ELSE 'in progress' END, failure_code, "
            f"CASE WHEN {_charged(1)} THEN cost_usd ELSE 0 END, params::jsonb ->> 'prompt' FROM jobs "
            "WHERE team_id = $2 AND created_at >= $3 AND created_at < $4 AND (created_at, id) > ($3, $5) "
            "ORDER BY created_at, id LIMIT $6",
            sorted(refunded), team_id, since_at, until, last_id, limit)
        return [JobRecord(*r) for r in rows]

    async def release_key(self, key: str) -> None:
        await self._execute("DELETE FROM dedupe_keys WHERE key = $1", key)

    async def sweep(self, cutoff: float, *, period_cutoff: float,
                    refunded: frozenset[str] = frozenset()) -> Removed:
        old = "settled AND created_at < $1"
        ended = "ended_at IS NOT NULL AND ended_at < $1 AND recap_posted"
        async with self._con() as con, con.transaction():
            await _one_roll_up_at_a_time(con)
            await con.execute(_roll_up("user_id", old, _charged(2)), cutoff, sorted(refunded))
            thumbnails = _changed(await con.execute(
                f"DELETE FROM thumbnails WHERE job_id IN (SELECT id FROM jobs WHERE {old})", cutoff))
            votes = _changed(await con.execute(
                f"DELETE FROM votes WHERE job_id IN (SELECT id FROM jobs WHERE {old}) "
                f"OR session_id IN (SELECT id FROM sessions WHERE {ended})", cutoff))
            jobs = _changed(await con.execute(f"DELETE FROM jobs WHERE {old}", cutoff))
            images = _changed(await con.execute("DELETE FROM images WHERE created_at < $1", cutoff))
            sessions = _changed(await con.execute(f"DELETE FROM sessions WHERE {ended}", cutoff))
            keys = _changed(await con.execute(
                "DELETE FROM dedupe_keys WHERE created_at < $1 AND (key NOT LIKE 'period:%' "
                "OR created_at < $2)", cutoff, period_cutoff))
        return Removed(jobs=jobs, images=images, thumbnails=thumbnails, sessions=sessions, votes=votes,
                       dedupe_keys=keys)

    async def forget_user(self, team_id: str, user_id: str, anonymous_id: str, *,
                          refunded: frozenset[str] = frozenset()) -> Removed:
        theirs = "team_id = $1 AND user_id = $2 AND settled"
        async with self._con() as con, con.transaction():
            await _one_roll_up_at_a_time(con)
            mine = [(r[0], r[1], r[2]) for r in await con.fetch(
                "SELECT id, params, settled FROM jobs WHERE team_id = $1 AND user_id = $2", team_id, user_id)]
            themes = [r[0] for r in await con.fetch(
                "SELECT theme FROM sessions WHERE team_id = $1 AND started_by = $2", team_id, user_id)]
            others = [(r[0], r[1], r[2]) for r in await con.fetch(
                "SELECT id, params, settled FROM jobs WHERE team_id = $1 AND user_id <> $2", team_id, user_id)]
            plan = forget_plan(anonymous_id, mine, themes, others)
            await con.executemany("UPDATE jobs SET params = $2 WHERE id = $1", plan.rewrite)
            await con.executemany("UPDATE jobs SET on_settle = $2 WHERE id = $1", plan.on_settle)
            await con.execute(_roll_up("$3::text", theirs, _charged(4)), team_id, user_id, anonymous_id,
                              sorted(refunded))
            thumbnails = _changed(await con.execute(
                f"DELETE FROM thumbnails WHERE job_id IN (SELECT id FROM jobs WHERE {theirs})", team_id, user_id))
            images = _changed(await con.execute(
                f"DELETE FROM images WHERE user_id = $2 OR job_id IN (SELECT id FROM jobs WHERE {theirs})",
                team_id, user_id))
            votes = _changed(await con.execute(
                f"DELETE FROM votes WHERE user_id = $2 OR job_id IN (SELECT id FROM jobs WHERE {theirs})",
                team_id, user_id))
            jobs = _changed(await con.execute(f"DELETE FROM jobs WHERE {theirs}", team_id, user_id))
            sessions = _changed(await con.execute(
                "UPDATE sessions SET started_by = $3, theme = NULL WHERE team_id = $1 AND started_by = $2",
                team_id, user_id, anonymous_id))
            keys = _changed(await con.execute(
                "DELETE FROM dedupe_keys WHERE key LIKE '%:' || $1 OR key LIKE '%:' || $1 || ':%'", user_id))
        return Removed(jobs=jobs, images=images, thumbnails=thumbnails, sessions=sessions, votes=votes,
                       dedupe_keys=keys, copies=plan.copies, running=plan.running)

    async def _settle_forgotten(self, con: _Connection, job_id: str, instruction: str, params: str) -> None:
        """Apply what a forget left on a job, as it settles (in the settling transaction)."""
        action, value = settle_action(instruction, params)
        if action == "rewrite":
            await con.execute("UPDATE jobs SET params = $2, on_settle = NULL WHERE id = $1", job_id, value)
            return
        await _one_roll_up_at_a_time(con)
        await con.execute(_roll_up("$2::text", "id = $1", _charged(3)), job_id, value, sorted(REFUNDED_FAILURE_CODES))
        for table, column in (("thumbnails", "job_id"), ("votes", "job_id"), ("images", "job_id"), ("jobs", "id")):
            await con.execute(f"DELETE FROM {table} WHERE {column} = $1", job_id)

    # -- Luma's limits across replicas ---------------------------------------------------------
    async def slots_enqueue(self, job_id: str, user_key: str, *, front: bool, replica_id: str) -> None:
        """`job_id` waits for a Luma slot, in `user_key`'s line (at its front for a retry). A
        person with nothing waiting goes to the back of the line of people (the front, for a
        retry), as the in-process scheduler does. JobLost if `replica_id` no longer owns the
        job (fencing: a stale replica must not touch the slots of a job taken from it)."""
        async with self._con() as con, con.transaction():
            owner = await con.fetchval("SELECT owner FROM jobs WHERE id = $1 FOR SHARE", job_id)
            if owner != replica_id:
                raise JobLost(job_id)
            turn = await con.fetchval("UPDATE luma_account SET turn = turn + 1 WHERE id = $1 "
                                      "RETURNING turn", ACCOUNT)
            await con.execute("DELETE FROM luma_slots WHERE job_id = $1", job_id)
            waiting = await con.fetchval("SELECT EXISTS (SELECT 1 FROM luma_waiting WHERE account = $1 AND "
                                         "user_key = $2 AND job_id <> $3)", ACCOUNT, user_key, job_id)
            if not waiting:
                await con.execute(
                    "INSERT INTO luma_turns (account, user_key, served) VALUES ($1, $2, $3) "
                    "ON CONFLICT (account, user_key) DO UPDATE SET served = excluded.served",
                    ACCOUNT, user_key, -turn if front else turn)
            await con.execute(
                "INSERT INTO luma_waiting (job_id, account, user_key, front, replica) VALUES ($1, $2, $3, $4, $5) "
                "ON CONFLICT (job_id) DO UPDATE SET front = excluded.front, user_key = excluded.user_key, "
                "replica = excluded.replica", job_id, ACCOUNT, user_key, front, replica_id)

    async def slots_dispatch(self, *, concurrency: int, rate_window: float,
                             probe_period: float) -> tuple[list[str], float]:
        """Grant slots to the jobs whose turn it is, under every limit, for all replicas at
        once: (the jobs granted, seconds until a pause or the rate window lets one more go; 0
        when nothing waits for time). The account row is locked first and everything is
        counted in later statements, which see what other replicas committed meanwhile."""
        async with self._con() as con, con.transaction():
            account = await con.fetchrow(
                "SELECT estimate, extract(epoch FROM estimate_until - now()), rate_limit, "
                "GREATEST(0, extract(epoch FROM paused_until - now())) FROM luma_account "
                "WHERE id = $1 FOR UPDATE", ACCOUNT)
            assert account is not None
            estimate, estimate_left, rate_limit, paused = account
            if estimate is not None and estimate_left is not None and estimate_left <= 0:
                estimate += 1  # probe one slot higher
                if estimate >= concurrency:
                    estimate = None
                await con.execute(
                    "UPDATE luma_account SET estimate = $2, estimate_until = CASE WHEN $2::int IS NULL "
                    "THEN NULL ELSE now() + make_interval(secs => $3) END WHERE id = $1",
                    ACCOUNT, estimate, probe_period)
            limit = concurrency if estimate is None else min(estimate, concurrency)
            await con.execute("DELETE FROM luma_slots s USING jobs j WHERE s.job_id = j.id AND j.settled")
            await con.execute("DELETE FROM luma_submissions WHERE account = $1 AND "
                              "at <= now() - make_interval(secs => $2)", ACCOUNT, rate_window)
            if paused > 0:
                return [], float(paused)
            in_flight = int(await con.fetchval("SELECT COUNT(*) FROM luma_slots WHERE account = $1", ACCOUNT))
            recent = await con.fetch("SELECT extract(epoch FROM at + make_interval(secs => $2) - now()) "
                                     "FROM luma_submissions WHERE account = $1 ORDER BY at", ACCOUNT, rate_window)
            granted: list[str] = []
            wait = 0.0
            while in_flight < limit:
                if rate_limit and len(recent) + len(granted) >= rate_limit:
                    index = len(recent) + len(granted) - rate_limit
                    wait = float(recent[index][0]) if index < len(recent) else rate_window
                    break
                row = await con.fetchrow(
                    "SELECT w.job_id, w.user_key, w.replica FROM luma_turns t CROSS JOIN LATERAL "
                    "(SELECT * FROM luma_waiting w WHERE w.account = t.account AND w.user_key = t.user_key "
                    f"ORDER BY {_IN_OWN_LINE} LIMIT 1) w WHERE t.account = $1 ORDER BY t.served LIMIT 1", ACCOUNT)
                if row is None:
                    break
                job_id, user_key, replica = row
                turn = await con.fetchval("UPDATE luma_account SET turn = turn + 1 WHERE id = $1 "
                                          "RETURNING turn", ACCOUNT)
                await con.execute("DELETE FROM luma_waiting WHERE job_id = $1", job_id)
                await con.execute("INSERT INTO luma_slots (job_id, account, untold) VALUES ($1, $2, $3) "
                                  "ON CONFLICT DO NOTHING", job_id, ACCOUNT, replica)
                await con.execute("INSERT INTO luma_submissions (account, at) VALUES ($1, now())", ACCOUNT)
                await con.execute("UPDATE luma_turns SET served = $3 WHERE account = $1 AND user_key = $2",
                                  ACCOUNT, user_key, turn)
                await _forget_turn_if_done(con, user_key)
                granted.append(job_id)
                in_flight += 1
            if granted:
                await con.execute(f"NOTIFY {SLOTS_CHANNEL}")
            return granted, wait

    async def slots_granted_to(self, replica_id: str) -> list[str]:
        """The jobs of `replica_id` granted a slot since it last asked (each told once)."""
        rows = await self._rows("UPDATE luma_slots SET untold = NULL WHERE untold = $1 RETURNING job_id",
                                replica_id)
        return [r[0] for r in rows]

    async def slots_release(self, job_id: str, replica_id: str) -> None:
        """Free the job's slot (or its place in line), if `replica_id` still owns the job."""
        async with self._con() as con, con.transaction():
            owned = "AND EXISTS (SELECT 1 FROM jobs WHERE id = $1 AND owner = $2)"
            freed = _changed(await con.execute(f"DELETE FROM luma_slots WHERE job_id = $1 {owned}",
                                               job_id, replica_id))
            user_key = await con.fetchval(f"DELETE FROM luma_waiting WHERE job_id = $1 {owned} RETURNING user_key",
                                          job_id, replica_id)
            if user_key is not None:
                await _forget_turn_if_done(con, user_key)
            if freed:
                await con.execute(f"NOTIFY {SLOTS_CHANNEL}")

    async def slots_hold(self, job_id: str) -> None:
        """A generation already at Luma (a job taken over while generating) holds a slot."""
        await self._execute("INSERT INTO luma_slots (job_id, account) VALUES ($1, $2) "
                            "ON CONFLICT DO NOTHING", job_id, ACCOUNT)

    async def slots_pause(self, seconds: float) -> None:
        """Luma said "Rate limit exceeded": nobody submits for `seconds`."""
        await self._execute("UPDATE luma_account SET paused_until = GREATEST(paused_until, now() + "
                            "make_interval(secs => $2)) WHERE id = $1", ACCOUNT, max(0.0, seconds))

    async def slots_too_many(self, job_id: str, retry_after: float, probe_period: float) -> None:
        """Luma said "Too many concurrent jobs" to `job_id` (whose slot is freed): the account
        holds no more than the others in flight, for a probe period; with none in flight,
        someone else uses the account: wait as told."""
        async with self._con() as con, con.transaction():
            await con.fetchval("SELECT 1 FROM luma_account WHERE id = $1 FOR UPDATE", ACCOUNT)
            others = int(await con.fetchval("SELECT COUNT(*) FROM luma_slots WHERE account = $1 "
                                            "AND job_id <> $2", ACCOUNT, job_id))
            if others == 0:
                await con.execute("UPDATE luma_account SET paused_until = GREATEST(paused_until, "
                                  "now() + make_interval(secs => $2)) WHERE id = $1", ACCOUNT, retry_after)
            else:
                await con.execute(
                    "UPDATE luma_account SET estimate = LEAST(COALESCE(estimate, $2), $2), "
                    "estimate_until = now() + make_interval(secs => $3) WHERE id = $1",
                    ACCOUNT, max(1, others), max(retry_after, probe_period))

    async def slots_observe_rate(self, limit: int | None, remaining: int | None,
                                 reset_at_unix: float | None, rate_window: float) -> None:
        """From a create's X-RateLimit-* headers: the allowance; none left: wait for the reset."""
        if limit is not None and limit > 0:
            await self._execute("UPDATE luma_account SET rate_limit = $2 WHERE id = $1", ACCOUNT, limit)
        if remaining is not None and remaining <= 0 and reset_at_unix is not None:
            wait = reset_at_unix - time.time()
            if wait > 0:
                await self.slots_pause(min(wait, rate_window))

    async def slots_counts(self) -> tuple[int, int]:
        """(how many jobs wait for a slot, how many slots are held)."""
        row = await self._row("SELECT (SELECT COUNT(*) FROM luma_waiting WHERE account = $1), "
                              "(SELECT COUNT(*) FROM luma_slots WHERE account = $1)", ACCOUNT)
        assert row is not None
        return int(row[0]), int(row[1])

    async def slots_front(self, limit: int) -> list[str]:
        """The first `limit` jobs in line, in the order they will be let through: the first of
        each person's line (people in turn order), then the second of each, and so on. Reads at
        most `limit` jobs of each person's line."""
        rows = await self._rows(
            "SELECT w.job_id FROM luma_turns t CROSS JOIN LATERAL (SELECT job_id, ROW_NUMBER() OVER "
            f"(ORDER BY {_IN_OWN_LINE}) AS n FROM luma_waiting w WHERE w.account = t.account AND "
            f"w.user_key = t.user_key ORDER BY {_IN_OWN_LINE} LIMIT $2) w WHERE t.account = $1 "
            "ORDER BY w.n, t.served, t.user_key LIMIT $2", ACCOUNT, limit)
        return [r[0] for r in rows]

    async def wait_for_slots(self, timeout: float) -> None:
        """Return when slots are granted or freed by any replica (NOTIFY), or after `timeout`."""
        await self._wait_for_notice(SLOTS_CHANNEL, timeout)

    async def recent_latencies(self, limit: int) -> list[tuple[str, str, float]]:
        rows = await self._rows(
            f"SELECT {_MODEL}, {_TYPE}, completed_at - submitted_at FROM jobs WHERE state = 'done' AND "
            "completed_at IS NOT NULL AND submitted_at IS NOT NULL ORDER BY completed_at DESC LIMIT $1", limit)
        return [(r[0], r[1], float(r[2])) for r in rows]

    async def unsettled_count(self) -> int:
        row = await self._row("SELECT COUNT(*) FROM jobs WHERE NOT settled")
        assert row is not None
        return int(row[0])


async def peek_version(dsn: str) -> int:
    """The schema version of the database (0 before the first start), read-only."""
    try:
        con = await asyncpg.connect(dsn, timeout=10)
    except _UNAVAILABLE as exc:
        raise StoreUnavailable(f"cannot connect to PostgreSQL: {type(exc).__name__}: {exc}") from exc
    try:
        if not await con.fetchval("SELECT to_regclass('schema_version') IS NOT NULL"):
            return 0
        return int(await con.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version"))
    finally:
        await con.close()


async def create_database(admin_dsn: str, name: str, *, template: str | None = None,
                          replace: bool = False) -> None:
    """CREATE DATABASE `name` (a copy of `template`), through the server of `admin_dsn`
    (throwaway databases for tests and benchmarks)."""
    con = await asyncpg.connect(admin_dsn)
    try:
        if replace:
            await con.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await con.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    finally:
        await con.close()


async def drop_database(admin_dsn: str, name: str) -> None:
    con = await asyncpg.connect(admin_dsn)
    try:
        await con.execute(f'DROP DATABASE IF EXISTS "{name}"')
    finally:
        await con.close()
