"""The SQLite store (aiosqlite, WAL). Owns every SQL statement and the schema migrations."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import aiosqlite

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

# How long one statement waits for another connection's lock before the store reports the
# database as unavailable (callers retry with backoff, so a long lock never blocks a request).
BUSY_TIMEOUT_MS = 1000
# How long a unit of work waits for the one writer before the store reports the database as
# unavailable (a long sweep holds it; work before an ack has its own, shorter bound).
WRITER_WAIT = 30.0
PAGE_SIZE = 1024

# Numbered migrations: index + 1 is the schema version they bring the database to
# (kept in PRAGMA user_version). Never edit a released one; append a new one.
MIGRATIONS: list[str] = [
    # 1: jobs and dedupe keys
    """
    CREATE TABLE jobs (
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
        created_at REAL NOT NULL,
        submitted_at REAL,
        completed_at REAL,
        finished_at REAL,
        deadline REAL,
        settled INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX jobs_unsettled ON jobs(settled, created_at);
    CREATE INDEX jobs_user_created ON jobs(team_id, user_id, created_at);
    CREATE INDEX jobs_channel_status ON jobs(channel_id, status_ts);
    CREATE TABLE dedupe_keys (
        key TEXT PRIMARY KEY,
        created_at REAL NOT NULL
    );
    """,
    # 2: images lumabot has seen (its own outputs and images people shared), for edits
    """
    CREATE TABLE images (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        channel_id TEXT NOT NULL,
        thread_ts TEXT NOT NULL,
        message_ts TEXT,
        origin TEXT NOT NULL,
        job_id TEXT,
        generation_id TEXT,
        slack_file_id TEXT,
        file TEXT,
        user_id TEXT,
        created_at REAL NOT NULL
    );
    CREATE INDEX images_thread ON images(channel_id, thread_ts, id);
    CREATE INDEX images_channel ON images(channel_id, id);
    CREATE UNIQUE INDEX images_file ON images(channel_id, slack_file_id);
    CREATE INDEX images_by_file ON images(slack_file_id);
    """,
    # 3: estimated cost of each job, for quotas and usage
    """
    ALTER TABLE jobs ADD COLUMN cost_usd REAL NOT NULL DEFAULT 0;
    CREATE INDEX jobs_team_created ON jobs(team_id, created_at);
    """,
    # 4: the buttons under a delivered image, and deleted results
    """
    ALTER TABLE jobs ADD COLUMN actions_ts TEXT;
    ALTER TABLE jobs ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
    """,
    # 5: creative sessions, their votes, and thumbnails of their images for the contact sheet
    """
    CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        team_id TEXT NOT NULL,
        channel_id TEXT NOT NULL,
        started_by TEXT NOT NULL,
        started_at REAL NOT NULL,
        flags TEXT NOT NULL,
        theme TEXT,
        banner_ts TEXT,
        last_prompt_at REAL NOT NULL,
        ended_at REAL,
        end_reason TEXT,
        recap_file_id TEXT,
        recap_posted INTEGER NOT NULL DEFAULT 0
    );
    CREATE UNIQUE INDEX sessions_running ON sessions(channel_id) WHERE ended_at IS NULL;
    CREATE TABLE votes (
        job_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        session_id TEXT NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (job_id, user_id)
    );
    CREATE TABLE thumbnails (
        job_id TEXT PRIMARY KEY,
        data BLOB NOT NULL
    );
    ALTER TABLE jobs ADD COLUMN session_id TEXT;
    CREATE INDEX jobs_session ON jobs(session_id);
    """,
    # 6: how many times a create whose outcome was lost (a crash mid-request) was sent again
    """
    ALTER TABLE jobs ADD COLUMN blind_resends INTEGER NOT NULL DEFAULT 0;
    """,
    # 7: which replica runs a job, with a fencing epoch; replicas' heartbeats
    """
    ALTER TABLE jobs ADD COLUMN owner TEXT;
    ALTER TABLE jobs ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE replicas (
        id TEXT PRIMARY KEY,
        heartbeat_at REAL NOT NULL
    );
    """,
    # 8: jobs cancelled while they waited
    """
    ALTER TABLE jobs ADD COLUMN cancelled_by TEXT;
    """,
    # 9: admin policy and its log; daily usage totals of jobs the retention sweep removed
    """
    CREATE TABLE policies (
        team_id TEXT PRIMARY KEY,
        data TEXT NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE policy_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        team_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        at REAL NOT NULL,
        change TEXT NOT NULL
    );
    CREATE INDEX policy_log_team ON policy_log(team_id, id);
    CREATE TABLE usage_days (
        team_id TEXT NOT NULL,
        day REAL NOT NULL,
        user_id TEXT NOT NULL,
        channel_id TEXT NOT NULL,
        model TEXT NOT NULL,
        type TEXT NOT NULL,
        images INTEGER NOT NULL,
        jobs INTEGER NOT NULL,
        spend REAL NOT NULL,
        PRIMARY KEY (team_id, day, user_id, channel_id, model, type)
    );
    """,
    # 10: lighter writes per job (issue #14: each page a commit touches goes to the WAL whole).
    # Jobs outside a session are not indexed by session; images lose AUTOINCREMENT (one page of
    # sqlite_sequence per image) and one of their two indexes by file.
    """
    DROP INDEX jobs_session;
    CREATE INDEX jobs_session ON jobs(session_id) WHERE session_id IS NOT NULL;
    CREATE TABLE images_v10 (
        id INTEGER PRIMARY KEY,
        channel_id TEXT NOT NULL,
        thread_ts TEXT NOT NULL,
        message_ts TEXT,
        origin TEXT NOT NULL,
        job_id TEXT,
        generation_id TEXT,
        slack_file_id TEXT,
        file TEXT,
        user_id TEXT,
        created_at REAL NOT NULL
    );
    INSERT INTO images_v10 (id, channel_id, thread_ts, message_ts, origin, job_id, generation_id,
        slack_file_id, file, user_id, created_at)
        SELECT id, channel_id, thread_ts, message_ts, origin, job_id, generation_id, slack_file_id,
        file, user_id, created_at FROM images;
    DROP TABLE images;
    ALTER TABLE images_v10 RENAME TO images;
    CREATE INDEX images_thread ON images(channel_id, thread_ts, id);
    CREATE INDEX images_channel ON images(channel_id, id);
    CREATE UNIQUE INDEX images_file ON images(slack_file_id, channel_id);
    """,
    # 11: what a forget left for a job still under way, applied as it settles (jobs/forgetting.py)
    """
    ALTER TABLE jobs ADD COLUMN on_settle TEXT;
    """,
]

Row = sqlite3.Row | tuple[Any, ...]
Args = tuple[Any, ...] | list[Any]


def _one(row: Row | None) -> Row:
    """The row of an aggregate query (which always has one)."""
    assert row is not None
    return row


_MODEL = "COALESCE(json_extract(params, '$.model'), 'uni-1')"
_TYPE = "COALESCE(json_extract(params, '$.type'), 'image')"


def _charged(refunded: frozenset[str]) -> tuple[str, list[str]]:
    """`Job.charged` in SQL, and its parameters (which come first in the statement)."""
    marks = ", ".join("?" * len(refunded)) or "''"
    return (f"attempts > 0 AND NOT (state = 'failed' AND COALESCE(failure_code, '') IN ({marks}))",
            sorted(refunded))


def _roll_up(user: str, where: str, charged: str) -> str:
    """Add the jobs matching `where` to the daily usage totals (per day, person, channel, model
    and type), the person given by the SQL expression `user`."""
    return (
        "INSERT INTO usage_days (team_id, day, user_id, channel_id, model, type, images, jobs, spend) "
        f"SELECT team_id, CAST(created_at / 86400 AS INTEGER) * 86400.0, {user}, channel_id, {_MODEL}, "
        f"{_TYPE}, SUM(state = 'done'), COUNT(*), SUM(CASE WHEN {charged} THEN cost_usd ELSE 0 END) "
        f"FROM jobs WHERE {where} GROUP BY 1, 2, 3, 4, 5, 6 ON CONFLICT (team_id, day, user_id, "
        "channel_id, model, type) DO UPDATE SET images = images + excluded.images, "
        "jobs = jobs + excluded.jobs, spend = spend + excluded.spend")


async def _delete(db: aiosqlite.Connection, sql: str, args: Args) -> int:
    cur = await db.execute(sql, args)
    return cur.rowcount


class SQLiteStore:
    """One writer connection, used by one unit of work at a time (an asyncio lock around
    BEGIN IMMEDIATE ... COMMIT, with nothing but database calls inside), and one reader
    connection: WAL readers never wait for the writer. A unit's rollback can therefore never
    undo another unit's write, and a commit never commits someone else's half-done work."""

    shared = False  # one process per database file

    def __init__(self, path: str | Path, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS):
        self.path = Path(path)
        self.busy_timeout_ms = busy_timeout_ms
        self._db: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()
        self._written = WrittenRows()

    @property
    def db(self) -> aiosqlite.Connection:
        """The writer connection (tests use it to inject faults)."""
        if self._db is None:
            raise RuntimeError("store is not open")
        return self._db

    @property
    def reader(self) -> aiosqlite.Connection:
        if self._reader is None:
            raise RuntimeError("store is not open")
        return self._reader

    async def open(self) -> None:
        memory = str(self.path) == ":memory:"
        if not memory:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: no implicit transactions; every write unit says BEGIN IMMEDIATE.
        self._db = await aiosqlite.connect(self.path, isolation_level=None)
        # Small pages for a new database (an existing one keeps its own): a job's rows are far
        # smaller, and every commit appends each page it touched to the WAL in full.
        await self._db.execute(f"PRAGMA page_size={PAGE_SIZE}")
        await self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL is durable across a process crash (kill -9) in WAL mode.
        await self._db.execute("PRAGMA synchronous=NORMAL")
        await self._db.execute(f"PRAGMA busy_timeout={self.busy_timeout_ms}")
        # Deleted rows are overwritten with zeros, not left in free space: what a forget or a
        # sweep deletes is gone from the file (and from the WAL after the checkpoint that
        # follows a forget).
        await self._db.execute("PRAGMA secure_delete=ON")
        await self._migrate()
        if memory:
            self._reader = self._db  # an in-memory database cannot be shared between connections
        else:
            self._reader = await aiosqlite.connect(self.path, isolation_level=None)
            await self._reader.execute(f"PRAGMA busy_timeout={self.busy_timeout_ms}")

    async def close(self) -> None:
        if self._reader is not None and self._reader is not self._db:
            await self._reader.close()
        self._reader = None
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def schema_version(self) -> int:
        async with self.db.execute("PRAGMA user_version") as cur:
            return int(_one(await cur.fetchone())[0])

    async def _migrate(self) -> None:
        version = await self.schema_version()
        if version > len(MIGRATIONS):
            raise RuntimeError(f"database schema version {version} is newer than this lumabot "
                               f"({len(MIGRATIONS)}): upgrade lumabot")
        for number in range(version + 1, len(MIGRATIONS) + 1):
            script = MIGRATIONS[number - 1]
            # executescript commits first; run the migration and the version bump atomically.
            await self.db.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;")

    # -- units of work ---------------------------------------------------------------------------
    @asynccontextmanager
    async def _unit(self) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction that nothing else can join. Only database calls go inside."""
        if self._lock.locked():
            try:
                await asyncio.wait_for(self._lock.acquire(), WRITER_WAIT)
            except asyncio.TimeoutError:
                raise StoreUnavailable("the database is busy (another write held it too long)") from None
        else:
            await self._lock.acquire()  # free: taken at once
        try:
            db = self.db
            try:
                await db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreUnavailable(str(exc)) from exc
            try:
                yield db
                await db.execute("COMMIT")
            except BaseException as exc:
                try:
                    await db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                if isinstance(exc, sqlite3.Error) and not isinstance(exc, sqlite3.IntegrityError):
                    raise StoreUnavailable(str(exc)) from exc
                raise
        finally:
            self._lock.release()

    async def _write(self, sql: str, args: Args = ()) -> int:
        """One statement in its own unit; returns the rows it changed."""
        async with self._unit() as db:
            cur = await db.execute(sql, args)
            return cur.rowcount

    async def _rows(self, sql: str, args: Args = ()) -> list[Row]:
        try:
            async with self.reader.execute(sql, args) as cur:
                return list(await cur.fetchall())
        except sqlite3.Error as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def _row(self, sql: str, args: Args = ()) -> Row | None:
        rows = await self._rows(sql, args)
        return rows[0] if rows else None

    # -- jobs ----------------------------------------------------------------------------------
    async def create_job(self, job: Job, *, dedupe_key: str | None = None,
                         rules: AdmissionRules | None = None) -> Admission:
        """Insert a new job, deciding admission in the same transaction: a duplicate dedupe
        key, or a limit of `rules`, refuses it; parallel requests cannot overshoot."""
        async with self._unit() as db:
            if dedupe_key is not None:
                cur = await db.execute("INSERT OR IGNORE INTO dedupe_keys (key, created_at) VALUES (?, ?)",
                                       (dedupe_key, time.time()))
                if cur.rowcount == 0:
                    return Admission.duplicate()
            admission = Admission.created()
            if rules is not None:
                policy = await self._policy(db, job.team_id)
                admission = await rules.decide(policy, job, lambda in_force: self._admission_counts(
                    db, job, rules, in_force))
                if admission.status == "refused":
                    await db.execute("DELETE FROM dedupe_keys WHERE key = ?", (dedupe_key,))
                    return admission
            row = job_row(job)
            await db.execute(
                f"INSERT INTO jobs ({', '.join(JOB_COLUMNS)}) VALUES ({', '.join('?' * len(JOB_COLUMNS))})", row)
        self._written.remember(dict(zip(JOB_COLUMNS, row)))
        return admission

    async def withdraw_job(self, job_id: str, dedupe_key: str | None) -> None:
        async with self._unit() as db:
            await db.execute("DELETE FROM jobs WHERE id = ? AND state = 'queued' AND status_ts IS NULL "
                             "AND settled = 0", (job_id,))
            await db.execute("DELETE FROM dedupe_keys WHERE key = ?", (dedupe_key,))
        self._written.forget(job_id)

    async def _admission_counts(self, db: aiosqlite.Connection, job: Job, rules: AdmissionRules,
                                in_force: Rules) -> AdmissionCounts:
        """The counts the rules in force need, in the admitting transaction."""
        async with db.execute(
            "SELECT COUNT(*) FROM jobs WHERE team_id = ? AND user_id = ? AND settled = 0 "
            "AND state IN ('queued', 'submitting') AND cancelled_by IS NULL", (job.team_id, job.user_id)) as cur:
            waiting = _one(await cur.fetchone())[0]
        return await rules.count(job, in_force, waiting=waiting, usage=lambda since, user, channel: self._usage(
            db, job.team_id, since, user, channel, rules.refunded))

    async def save_job(self, job: Job, *, image: KnownImage | None = None) -> None:
        """Write the fields the job's runner owns that changed (not `deleted`: see mark_deleted),
        if this copy of the job still owns it (same owner and epoch); JobLost otherwise. With
        `image`, record it in the same transaction."""
        changes, row = self._written.changes(job)
        if not changes and image is None:  # nothing to write: only check the job is still ours
            found = await self._row("SELECT owner, epoch FROM jobs WHERE id = ?", (job.id,))
            if found is None or (found[0], found[1]) != (job.owner, job.epoch):
                raise JobLost(job.id)
            return
        changes = changes or {"state": row["state"]}  # the image needs the fenced statement
        settling = bool(changes.get("settled"))  # then a forget may have left an instruction
        instruction = None
        async with self._unit() as db:
            cur = await db.execute(
                f"UPDATE jobs SET {', '.join(f'{c} = ?' for c in changes)} WHERE id = ? AND owner IS ? "
                "AND epoch = ? AND (cancelled_by IS NULL OR ? != 'submitting')"
                + (" RETURNING on_settle" if settling else ""),
                (*changes.values(), job.id, job.owner, job.epoch, job.state.value))
            if settling:
                returned = list(await cur.fetchall())
                changed, instruction = len(returned), returned[0][0] if returned else None
            else:
                changed = cur.rowcount
            if changed == 1 and image is not None:
                await db.execute(f"INSERT OR IGNORE INTO images ({', '.join(IMAGE_COLUMNS)}) VALUES "
                                 f"({', '.join('?' * len(IMAGE_COLUMNS))})", image_row(image))
            if instruction is not None:
                await self._settle_forgotten(db, job.id, instruction, row["params"])
        if instruction is not None:
            await self._checkpoint()
        if changed == 0:
            found = await self._row("SELECT cancelled_by, owner, epoch FROM jobs WHERE id = ?", (job.id,))
            if found is not None and found[0] and (found[1], found[2]) == (job.owner, job.epoch):
                raise JobCancelled(found[0])
            raise JobLost(job.id)
        self._written.remember(row)

    async def request_cancel(self, job_id: str, user_id: str) -> bool:
        """Cancel a job that still waits for Luma; False once it has been sent (or finished)."""
        return await self._write("UPDATE jobs SET cancelled_by = ? WHERE id = ? AND state = 'queued' "
                                 "AND settled = 0 AND cancelled_by IS NULL", (user_id, job_id)) == 1

    async def cancel_requests(self, replica_id: str) -> list[tuple[str, str]]:
        rows = await self._rows("SELECT id, cancelled_by FROM jobs WHERE owner = ? AND settled = 0 "
                                "AND state = 'queued' AND cancelled_by IS NOT NULL", (replica_id,))
        return [(r[0], r[1]) for r in rows]

    # -- replicas: ownership, heartbeats, takeover --------------------------------------------
    async def heartbeat(self, replica_id: str) -> None:
        await self._write("INSERT INTO replicas (id, heartbeat_at) VALUES (?, ?) ON CONFLICT(id) "
                          "DO UPDATE SET heartbeat_at = excluded.heartbeat_at", (replica_id, time.time()))

    async def claim_jobs(self, replica_id: str, *, stale_after: float, include_own: bool = False,
                         limit: int = 500, after: tuple[float, str] | None = None) -> list[Job]:
        since, last_id = after if after is not None else (float("-inf"), "")
        async with self._unit() as db:
            cur = await db.execute(
                f"UPDATE jobs SET owner = ?, epoch = epoch + 1 WHERE id IN (SELECT id FROM jobs "
                "WHERE settled = 0 AND (owner IS NULL OR (owner = ? AND ?) OR (owner != ? AND owner "
                "NOT IN (SELECT id FROM replicas WHERE heartbeat_at >= ?))) AND created_at >= ? AND "
                "(created_at > ? OR id > ?) ORDER BY created_at, id LIMIT ?) "
                f"RETURNING {', '.join(JOB_COLUMNS)}",
                (replica_id, replica_id, include_own, replica_id, time.time() - stale_after, since, since,
                 last_id, limit))
            rows = await cur.fetchall()
        jobs = sorted((job_from_row(r) for r in rows), key=lambda j: (j.created_at, j.id))
        self._written.remember_jobs(jobs)
        return jobs

    async def wait_for_released_jobs(self, timeout: float) -> None:
        await asyncio.sleep(timeout)  # one process per SQLite database: nobody else hands back

    async def release_jobs(self, replica_id: str) -> int:
        async with self._unit() as db:
            cur = await db.execute("UPDATE jobs SET owner = NULL WHERE owner = ? AND settled = 0",
                                   (replica_id,))
            await db.execute("DELETE FROM replicas WHERE id = ?", (replica_id,))
            return cur.rowcount

    async def mark_deleted(self, job_id: str) -> None:
        """The requester (or an admin) deleted the result; touches nothing else of the row."""
        await self._write("UPDATE jobs SET deleted = 1 WHERE id = ?", (job_id,))

    async def get_job(self, job_id: str) -> Job | None:
        row = await self._row(f"{JOB_SELECT} WHERE id = ?", (job_id,))
        return job_from_row(row) if row else None

    async def job_ids(self) -> list[str]:
        """Every job id, oldest first (tests, demo and benchmarks)."""
        return [r[0] for r in await self._rows("SELECT id FROM jobs ORDER BY created_at, rowid")]

    async def unfinished_jobs(self) -> list[Job]:
        rows = await self._rows(f"{JOB_SELECT} WHERE settled = 0 ORDER BY created_at")
        return [job_from_row(r) for r in rows]

    async def claim_key(self, key: str, *, window: float | None = None) -> bool:
        """Claim a dedupe key; False if already claimed (within `window` seconds, if given)."""
        now = time.time()
        if window is None:
            sql = "INSERT OR IGNORE INTO dedupe_keys (key, created_at) VALUES (?, ?)"
            args: tuple[Any, ...] = (key, now)
        else:
            sql = ("INSERT INTO dedupe_keys (key, created_at) VALUES (?, ?) ON CONFLICT(key) DO "
                   "UPDATE SET created_at = excluded.created_at WHERE dedupe_keys.created_at < ?")
            args = (key, now, now - window)
        return await self._write(sql, args) == 1

    async def recent_jobs(self, team_id: str, user_id: str, limit: int = 20) -> list[Job]:
        rows = await self._rows(f"{JOB_SELECT} WHERE team_id = ? AND user_id = ? ORDER BY created_at DESC "
                                "LIMIT ?", (team_id, user_id, limit))
        return [job_from_row(r) for r in rows]

    async def usage(self, team_id: str, since: float, *, user_id: str | None = None,
                    channel_id: str | None = None, refunded: frozenset[str] = frozenset()) -> Usage:
        try:
            return await self._usage(self.reader, team_id, since, user_id, channel_id, refunded)
        except sqlite3.Error as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def _usage(self, db: aiosqlite.Connection, team_id: str, since: float, user_id: str | None,
                     channel_id: str | None, refunded: frozenset[str]) -> Usage:
        """Images and estimated spend since a time (a day's start), for a workspace, or one
        person or channel in it: the jobs still stored plus the daily totals of swept ones. A
        job counts as charged as `Job.charged` says, here in SQL for the aggregate."""
        charged, marks = _charged(refunded)
        where, args = "team_id = ? AND created_at >= ?", [team_id, since]
        totals_where, totals_args = "team_id = ? AND day >= ?", [team_id, since]
        for column, value in (("user_id", user_id), ("channel_id", channel_id)):
            if value is not None:
                where += f" AND {column} = ?"
                totals_where += f" AND {column} = ?"
                args.append(value)
                totals_args.append(value)
        sql = (
            "SELECT COALESCE(SUM(state = 'done'), 0), COALESCE(SUM(state NOT IN ('failed', 'cancelled')), 0), "
            f"COALESCE(SUM(CASE WHEN {charged} THEN cost_usd ELSE 0 END), 0), "
            "COALESCE(SUM(CASE WHEN settled = 0 AND attempts = 0 AND state NOT IN ('failed', 'cancelled') AND cancelled_by IS NULL "
            f"THEN cost_usd ELSE 0 END), 0) FROM jobs WHERE {where}"
        )
        async with db.execute(sql, [*marks, *args]) as cur:
            images, requested, spend, pending = _one(await cur.fetchone())
        async with db.execute(f"SELECT COALESCE(SUM(images), 0), COALESCE(SUM(spend), 0) FROM usage_days "
                              f"WHERE {totals_where}", totals_args) as cur:
            swept_images, swept_spend = _one(await cur.fetchone())
        return Usage(images=images + swept_images, requested=requested + swept_images,
                     spend=spend + swept_spend, pending=pending)

    # -- images --------------------------------------------------------------------------------
    async def record_image(self, image: KnownImage) -> None:
        await self._write(f"INSERT OR IGNORE INTO images ({', '.join(IMAGE_COLUMNS)}) VALUES "
                          f"({', '.join('?' * len(IMAGE_COLUMNS))})", image_row(image))

    async def _one_image(self, where: str, args: Args) -> KnownImage | None:
        row = await self._row(f"{IMAGE_SELECT} WHERE {where} ORDER BY id DESC LIMIT 1", args)
        return image_from_row(row) if row else None

    async def latest_image_in_thread(self, channel_id: str, thread_ts: str) -> KnownImage | None:
        return await self._one_image("channel_id = ? AND thread_ts = ?", (channel_id, thread_ts))

    async def latest_image_in_channel(self, channel_id: str) -> KnownImage | None:
        return await self._one_image("channel_id = ?", (channel_id,))

    async def image_by_file(self, slack_file_id: str) -> KnownImage | None:
        return await self._one_image("slack_file_id = ? AND origin = 'lumabot'", (slack_file_id,))

    async def is_lumabot_thread(self, channel_id: str, thread_ts: str) -> bool:
        """A thread whose root is a lumabot status message, or that holds an image lumabot made."""
        row = await self._row(
            "SELECT 1 FROM jobs WHERE channel_id = ? AND status_ts = ? AND thread_ts IS NULL "
            "UNION ALL SELECT 1 FROM images WHERE channel_id = ? AND thread_ts = ? "
            "AND origin = 'lumabot' LIMIT 1",
            (channel_id, thread_ts, channel_id, thread_ts))
        return row is not None

    async def set_image_message(self, job_id: str, message_ts: str) -> None:
        await self._write("UPDATE images SET message_ts = ? WHERE job_id = ?", (message_ts, job_id))

    async def job_for_message(self, channel_id: str, ts: str) -> Job | None:
        """The job whose image, buttons or status message is the message at `ts`."""
        row = await self._row(
            f"{JOB_SELECT} WHERE channel_id = ? AND (actions_ts = ? OR status_ts = ? OR id IN "
            "(SELECT job_id FROM images WHERE channel_id = ? AND message_ts = ? AND origin = 'lumabot')) "
            "LIMIT 1", (channel_id, ts, ts, channel_id, ts))
        return job_from_row(row) if row else None

    # -- sessions, votes, thumbnails -------------------------------------------------------------
    async def create_session(self, session: Session) -> bool:
        """False if the channel already has a running session."""
        try:
            await self._write(f"INSERT INTO sessions ({', '.join(SESSION_COLUMNS)}) VALUES "
                              f"({', '.join('?' * len(SESSION_COLUMNS))})", session_row(session))
        except sqlite3.IntegrityError:
            return False
        return True

    async def save_session(self, session: Session) -> None:
        cols = SESSION_COLUMNS[1:]
        row = session_row(session)
        await self._write(f"UPDATE sessions SET {', '.join(f'{c} = ?' for c in cols)} WHERE id = ?",
                          (*row[1:], row[0]))

    async def touch_session(self, session_id: str, at: float) -> None:
        """A prompt arrived: only a running session's last_prompt_at changes."""
        await self._write("UPDATE sessions SET last_prompt_at = ? WHERE id = ? AND ended_at IS NULL",
                          (at, session_id))

    async def end_session(self, session_id: str, at: float, reason: str) -> bool:
        """End a session if it is still running; False if it had ended already."""
        return await self._write("UPDATE sessions SET ended_at = ?, end_reason = ? "
                                 "WHERE id = ? AND ended_at IS NULL", (at, reason, session_id)) == 1

    async def get_session(self, session_id: str) -> Session | None:
        row = await self._row(f"{SESSION_SELECT} WHERE id = ?", (session_id,))
        return session_from_row(row) if row else None

    async def running_session(self, channel_id: str) -> Session | None:
        row = await self._row(f"{SESSION_SELECT} WHERE channel_id = ? AND ended_at IS NULL", (channel_id,))
        return session_from_row(row) if row else None

    async def open_sessions(self) -> list[Session]:
        """Running sessions, and ended ones whose recap is not posted yet."""
        rows = await self._rows(f"{SESSION_SELECT} WHERE ended_at IS NULL OR recap_posted = 0")
        return [session_from_row(r) for r in rows]

    async def session_jobs(self, session_id: str) -> list[Job]:
        rows = await self._rows(f"{JOB_SELECT} WHERE session_id = ? ORDER BY created_at", (session_id,))
        return [job_from_row(r) for r in rows]

    async def set_vote(self, session_id: str, job_id: str, user_id: str, on: bool) -> None:
        if on:
            await self._write("INSERT OR IGNORE INTO votes (job_id, user_id, session_id, created_at) "
                              "VALUES (?, ?, ?, ?)", (job_id, user_id, session_id, time.time()))
        else:
            await self._write("DELETE FROM votes WHERE job_id = ? AND user_id = ?", (job_id, user_id))

    async def votes(self, session_id: str) -> dict[str, int]:
        rows = await self._rows("SELECT job_id, COUNT(*) FROM votes WHERE session_id = ? GROUP BY job_id",
                                (session_id,))
        return {job_id: n for job_id, n in rows}

    async def save_thumbnail(self, job_id: str, data: bytes) -> None:
        """(Not for a job that is gone: one forgotten as it settled.)"""
        await self._write("INSERT OR REPLACE INTO thumbnails (job_id, data) SELECT ?, ? WHERE EXISTS "
                          "(SELECT 1 FROM jobs WHERE id = ?)", (job_id, data, job_id))

    async def thumbnails(self, job_ids: list[str]) -> dict[str, bytes]:
        if not job_ids:
            return {}
        marks = ", ".join("?" * len(job_ids))
        rows = await self._rows(f"SELECT job_id, data FROM thumbnails WHERE job_id IN ({marks})", job_ids)
        return {job_id: bytes(data) for job_id, data in rows}

    # -- admin policy --------------------------------------------------------------------------
    async def _policy(self, db: aiosqlite.Connection, team_id: str) -> Policy:
        async with db.execute("SELECT data FROM policies WHERE team_id = ?", (team_id,)) as cur:
            row = await cur.fetchone()
        return Policy.model_validate_json(row[0]) if row else Policy()

    async def get_policy(self, team_id: str) -> Policy:
        try:
            return await self._policy(self.reader, team_id)
        except sqlite3.Error as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def update_policy(self, team_id: str, edit: Callable[[Policy], Policy], *, by: str,
                            change: str) -> Policy:
        async with self._unit() as db:
            policy = edit(await self._policy(db, team_id))
            now = time.time()
            await db.execute("INSERT INTO policies (team_id, data, updated_at) VALUES (?, ?, ?) ON CONFLICT "
                             "(team_id) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at",
                             (team_id, policy.model_dump_json(exclude_unset=True), now))
            await db.execute("INSERT INTO policy_log (team_id, user_id, at, change) VALUES (?, ?, ?, ?)",
                             (team_id, by, now, change))
        return policy

    async def policy_log(self, team_id: str, limit: int = 20) -> list[PolicyChange]:
        rows = await self._rows("SELECT team_id, user_id, at, change FROM policy_log WHERE team_id = ? "
                                "ORDER BY id DESC LIMIT ?", (team_id, limit))
        return [PolicyChange(*r) for r in rows]

    # -- usage reports, export, retention ----------------------------------------------------------
    async def usage_lines(self, team_id: str, since: float, until: float, *,
                          refunded: frozenset[str] = frozenset()) -> list[UsageLine]:
        charged, marks = _charged(refunded)
        rows = await self._rows(
            "SELECT user_id, channel_id, model, type, SUM(images), SUM(spend) FROM ("
            f"SELECT user_id, channel_id, {_MODEL} AS model, {_TYPE} AS type, state = 'done' AS images, "
            f"CASE WHEN {charged} THEN cost_usd ELSE 0 END AS spend FROM jobs WHERE team_id = ? "
            "AND created_at >= ? AND created_at < ? UNION ALL SELECT user_id, channel_id, model, type, "
            "images, spend FROM usage_days WHERE team_id = ? AND day >= ? AND day < ?) "
            "GROUP BY user_id, channel_id, model, type", (*marks, team_id, since, until, team_id, since, until))
        return [UsageLine(r[0], r[1], r[2], r[3], int(r[4]), float(r[5])) for r in rows]

    async def job_records(self, team_id: str, since: float, until: float, *,
                          refunded: frozenset[str] = frozenset(), after: tuple[float, str] | None = None,
                          limit: int | None = None) -> list[JobRecord]:
        charged, marks = _charged(refunded)
        since_at, last_id = after if after is not None else (since, "")
        rows = await self._rows(
            f"SELECT id, created_at, user_id, channel_id, {_MODEL}, {_TYPE}, CASE WHEN settled = 1 OR "
            "state IN ('done', 'failed', 'cancelled') THEN state ELSE 'in progress' END, failure_code, "
            f"CASE WHEN {charged} THEN cost_usd ELSE 0 END, json_extract(params, '$.prompt') FROM jobs "
            "WHERE team_id = ? AND created_at >= ? AND created_at < ? AND (created_at > ? OR id > ?) "
            "ORDER BY created_at, id LIMIT ?",
            (*marks, team_id, since_at, until, since_at, last_id, -1 if limit is None else limit))
        return [JobRecord(*r) for r in rows]

    async def release_key(self, key: str) -> None:
        await self._write("DELETE FROM dedupe_keys WHERE key = ?", (key,))

    async def sweep(self, cutoff: float, *, period_cutoff: float,
                    refunded: frozenset[str] = frozenset()) -> Removed:
        """Delete what is older than `cutoff`: settled jobs (their daily usage totals are kept),
        their thumbnails and votes, images, ended sessions, dedupe keys (keys starting with
        `period:` live until `period_cutoff`)."""
        charged, marks = _charged(refunded)
        old = "settled = 1 AND created_at < ?"
        async with self._unit() as db:
            await db.execute(_roll_up("user_id", old, charged), (*marks, cutoff))
            thumbnails = await _delete(db, f"DELETE FROM thumbnails WHERE job_id IN (SELECT id FROM jobs WHERE {old})", (cutoff,))
            ended = "ended_at IS NOT NULL AND ended_at < ? AND recap_posted = 1"
            votes = await _delete(db, f"DELETE FROM votes WHERE job_id IN (SELECT id FROM jobs WHERE {old}) "
                                      f"OR session_id IN (SELECT id FROM sessions WHERE {ended})", (cutoff, cutoff))
            jobs = await _delete(db, f"DELETE FROM jobs WHERE {old}", (cutoff,))
            images = await _delete(db, "DELETE FROM images WHERE created_at < ?", (cutoff,))
            sessions = await _delete(db, f"DELETE FROM sessions WHERE {ended}", (cutoff,))
            keys = await _delete(db, "DELETE FROM dedupe_keys WHERE created_at < ? AND (key NOT LIKE 'period:%' "
                                     "OR created_at < ?)", (cutoff, period_cutoff))
        return Removed(jobs=jobs, images=images, thumbnails=thumbnails, sessions=sessions, votes=votes,
                       dedupe_keys=keys)

    async def forget_user(self, team_id: str, user_id: str, anonymous_id: str, *,
                          refunded: frozenset[str] = frozenset()) -> Removed:
        """Delete a person's prompts, history and thumbnails now (their finished jobs' spend stays
        in the daily usage totals under `anonymous_id`), remove copies of their text from other
        people's jobs, and leave an instruction on their jobs still under way (forgotten as they
        settle). The WAL is then checkpointed and truncated: the text is in no file."""
        charged, marks = _charged(refunded)
        theirs = "team_id = ? AND user_id = ? AND settled = 1"
        async with self._unit() as db:
            async with db.execute("SELECT id, params, settled FROM jobs WHERE team_id = ? AND user_id = ?",
                                  (team_id, user_id)) as cur:
                mine = [(r[0], r[1], bool(r[2])) for r in await cur.fetchall()]
            async with db.execute("SELECT theme FROM sessions WHERE team_id = ? AND started_by = ?",
                                  (team_id, user_id)) as cur:
                themes = [r[0] for r in await cur.fetchall()]
            async with db.execute("SELECT id, params, settled FROM jobs WHERE team_id = ? AND user_id != ?",
                                  (team_id, user_id)) as cur:
                others = [(r[0], r[1], bool(r[2])) for r in await cur.fetchall()]
            plan = forget_plan(anonymous_id, mine, themes, others)
            await db.executemany("UPDATE jobs SET params = ? WHERE id = ?", [(p, i) for i, p in plan.rewrite])
            await db.executemany("UPDATE jobs SET on_settle = ? WHERE id = ?", [(o, i) for i, o in plan.on_settle])
            await db.execute(_roll_up("?", theirs, charged), (anonymous_id, *marks, team_id, user_id))
            thumbnails = await _delete(db, f"DELETE FROM thumbnails WHERE job_id IN (SELECT id FROM jobs WHERE {theirs})",
                                       (team_id, user_id))
            images = await _delete(db, f"DELETE FROM images WHERE user_id = ? OR job_id IN (SELECT id FROM jobs WHERE {theirs})",
                                   (user_id, team_id, user_id))
            votes = await _delete(db, f"DELETE FROM votes WHERE user_id = ? OR job_id IN (SELECT id FROM jobs WHERE {theirs})",
                                  (user_id, team_id, user_id))
            jobs = await _delete(db, f"DELETE FROM jobs WHERE {theirs}", (team_id, user_id))
            sessions = await _delete(db, "UPDATE sessions SET started_by = ?, theme = NULL WHERE team_id = ? "
                                         "AND started_by = ?", (anonymous_id, team_id, user_id))
            keys = await _delete(db, "DELETE FROM dedupe_keys WHERE key LIKE '%:' || ? OR key LIKE '%:' || ? || ':%'",
                                 (user_id, user_id))
        await self._checkpoint()
        return Removed(jobs=jobs, images=images, thumbnails=thumbnails, sessions=sessions, votes=votes,
                       dedupe_keys=keys, copies=plan.copies, running=plan.running)

    async def _settle_forgotten(self, db: aiosqlite.Connection, job_id: str, instruction: str,
                                params: str) -> None:
        """Apply what a forget left on a job, as it settles (in the settling transaction)."""
        action, value = settle_action(instruction, params)
        if action == "rewrite":
            await db.execute("UPDATE jobs SET params = ?, on_settle = NULL WHERE id = ?", (value, job_id))
            return
        charged, marks = _charged(REFUNDED_FAILURE_CODES)
        await db.execute(_roll_up("?", "id = ?", charged), (value, *marks, job_id))
        for table, column in (("thumbnails", "job_id"), ("votes", "job_id"), ("images", "job_id"), ("jobs", "id")):
            await db.execute(f"DELETE FROM {table} WHERE {column} = ?", (job_id,))

    async def _checkpoint(self) -> None:
        """Copy the WAL into the database and truncate it (after a forget: the deleted text is
        then in neither file). A reader in the middle of a query may make it wait or skip; the
        next automatic checkpoint then does it."""
        async with self._lock:
            try:
                await self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:
                log.warning("WAL checkpoint after a forget failed: %s", exc)

    async def recent_latencies(self, limit: int) -> list[tuple[str, str, float]]:
        rows = await self._rows(
            f"SELECT {_MODEL}, {_TYPE}, completed_at - submitted_at FROM jobs WHERE state = 'done' AND "
            "completed_at IS NOT NULL AND submitted_at IS NOT NULL ORDER BY completed_at DESC LIMIT ?", (limit,))
        return [(r[0], r[1], float(r[2])) for r in rows]

    # -- reports for the benchmarks --------------------------------------------------------------
    async def unsettled_count(self) -> int:
        row = await self._row("SELECT COUNT(*) FROM jobs WHERE settled = 0")
        return int(_one(row)[0])


async def peek_version(path: str | Path) -> int:
    """The schema version of the database at `path` (0 if there is none yet), read-only."""
    if str(path) != ":memory:" and not Path(path).exists():
        return 0
    try:
        async with aiosqlite.connect(f"file:{Path(path)}?mode=ro", uri=True) as db:
            async with db.execute("PRAGMA user_version") as cur:
                return int(_one(await cur.fetchone())[0])
    except sqlite3.Error as exc:
        raise StoreUnavailable(str(exc)) from exc
