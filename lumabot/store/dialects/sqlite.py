"""SQLite (aiosqlite, WAL): one process's embedded database.

One writer connection, used by one unit at a time (an asyncio lock around BEGIN IMMEDIATE ...
COMMIT, with nothing but database calls inside), and one reader connection: WAL readers never
wait for the writer. A unit's rollback can therefore never undo another unit's write, and a
commit never commits someone else's half-done work. With one writer, every unit is serialised
already: `one_at_a_time` has nothing to add, and there are no other replicas to wake."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Iterable

import aiosqlite
from sqlalchemy import event
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.pool import AsyncAdaptedQueuePool, NullPool
from sqlalchemy.sql import ClauseElement

from .. import migrate
from ..errors import StoreUnavailable
from ..sql import Database, Duplicate, Row, Statements, Tx
from . import now, utc_day

log = logging.getLogger("lumabot.store")

# How long one statement waits for another connection's lock before the store reports the
# database as unavailable (callers retry with backoff, so a long lock never blocks a request).
BUSY_TIMEOUT_MS = 1000
# How long a unit of work waits for the one writer before the store reports the database as
# unavailable (a long sweep holds it; work before an ack has its own, shorter bound).
WRITER_WAIT = 30.0
# Pages of a new database (an existing one keeps its own): a job's rows are far smaller, and
# every commit appends each page it touched to the WAL in full.
PAGE_SIZE = 1024
CHECKPOINT_ATTEMPTS = 10  # a forget's checkpoint waits this many times for readers to move on


@compiles(now, "sqlite")
def _now(element: Any, compiler: Any, **kw: Any) -> str:
    return "((julianday('now') - 2440587.5) * 86400.0)"



@compiles(utc_day, "sqlite")
def _utc_day(element: Any, compiler: Any, **kw: Any) -> str:
    return f"(CAST({compiler.process(element.clauses.clauses[0], **kw)} / 86400 AS INTEGER) * 86400.0)"


def _classified(exc: sqlite3.Error) -> Exception:
    if isinstance(exc, sqlite3.IntegrityError):
        return Duplicate(str(exc))
    return StoreUnavailable(str(exc))


class _Tx(Tx):
    def __init__(self, db: aiosqlite.Connection, statements: Statements):
        self.db = db
        self.statements = statements

    async def rows(self, stmt: ClauseElement, **params: Any) -> list[Row]:
        # Run and read whole in one call to the connection's thread: a statement left between
        # calls keeps its snapshot open for the connection, so another read begun meanwhile
        # (the reader is shared) would not see what was committed after it began.
        sql, args = self.statements.sql(stmt, params)
        try:
            return list(await self.db.execute_fetchall(sql, args))
        except sqlite3.Error as exc:
            raise _classified(exc) from exc

    async def execute(self, stmt: ClauseElement, **params: Any) -> int:
        sql, args = self.statements.sql(stmt, params)
        try:
            cur = await self.db.execute(sql, args)
        except sqlite3.Error as exc:
            raise _classified(exc) from exc
        return int(cur.rowcount)

    async def executemany(self, stmt: ClauseElement, params: Iterable[dict[str, Any]]) -> None:
        batch = list(params)
        if not batch:
            return
        sql, _ = self.statements.sql(stmt, batch[0])
        rows = [self.statements.sql(stmt, p)[1] for p in batch]
        try:
            await self.db.executemany(sql, rows)
        except sqlite3.Error as exc:
            raise _classified(exc) from exc


class SQLiteDatabase(Database):
    name = "sqlite"
    shared = False  # one process per database file

    def __init__(self, path: str | Path, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS):
        super().__init__(f"sqlite:///{path}")
        self.path = Path(path)
        self.busy_timeout_ms = busy_timeout_ms
        self._writer: AsyncConnection | None = None
        self._reader: AsyncConnection | None = None
        self._db: aiosqlite.Connection | None = None
        self._reads: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()
        self._statements: Statements | None = None
        self._library: AsyncEngine | None = None

    # -- connections ---------------------------------------------------------------------------
    async def _connect(self) -> aiosqlite.Connection:
        # isolation_level=None: no implicit transactions; every write unit says BEGIN IMMEDIATE.
        db = await aiosqlite.connect(self.path, isolation_level=None)
        await db.execute(f"PRAGMA page_size={PAGE_SIZE}")
        await db.execute("PRAGMA journal_mode=WAL")
        # NORMAL is durable across a process crash (kill -9) in WAL mode.
        await db.execute("PRAGMA synchronous=NORMAL")
        await db.execute(f"PRAGMA busy_timeout={self.busy_timeout_ms}")
        # Deleted rows are overwritten with zeros, not left in free space: what a forget or a
        # sweep deletes is gone from the file (and from the WAL after the checkpoint that
        # follows a forget).
        await db.execute("PRAGMA secure_delete=ON")
        return db

    @property
    def db(self) -> aiosqlite.Connection:
        """The writer connection (tests use it to trace statements or inject faults)."""
        if self._db is None:
            raise RuntimeError("store is not open")
        return self._db

    @property
    def reader(self) -> aiosqlite.Connection:
        if self._reads is None:
            raise RuntimeError("store is not open")
        return self._reads

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        engine = self.engine = create_async_engine("sqlite+aiosqlite://", async_creator=self._connect,
                                                   poolclass=NullPool)
        # Transactions SQLAlchemy begins itself (migrations) take the write lock at once.
        event.listen(engine.sync_engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
        self._statements = Statements.of(engine.dialect)
        try:
            async with engine.connect() as conn:
                await conn.run_sync(migrate.upgrade, lambda _conn: None)
            self._writer = await engine.connect()
            self._reader = await engine.connect()
        except sqlite3.Error as exc:
            raise StoreUnavailable(str(exc)) from exc
        self._db = (await self._writer.get_raw_connection()).driver_connection
        self._reads = (await self._reader.get_raw_connection()).driver_connection

    def library_engine(self) -> AsyncEngine:
        """One connection of its own (their writes take turns) that waits for the store's
        writer as long as a unit of work would."""
        if self._library is None:
            async def connect() -> aiosqlite.Connection:
                db = await self._connect()
                await db.execute(f"PRAGMA busy_timeout={int(WRITER_WAIT * 1000)}")
                return db

            self._library = create_async_engine("sqlite+aiosqlite://", async_creator=connect,
                                                poolclass=AsyncAdaptedQueuePool, pool_size=1,
                                                max_overflow=0, pool_timeout=WRITER_WAIT)
            event.listen(self._library.sync_engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
        return self._library

    async def close(self) -> None:
        if self._library is not None:
            await self._library.dispose()
            self._library = None
        for conn in (self._reader, self._writer):
            if conn is not None:
                await conn.close()
        self._reader = self._writer = None
        self._db = self._reads = None
        if self.engine is not None:
            await self.engine.dispose()
            self.engine = None

    # -- units of work -------------------------------------------------------------------------
    @asynccontextmanager
    async def _writing(self) -> AsyncIterator[aiosqlite.Connection]:
        """The one writer connection, for one unit at a time."""
        if self._lock.locked():
            try:   # (asyncio.timeout: a cancel that comes as the lock is granted is not lost)
                async with asyncio.timeout(WRITER_WAIT):
                    await self._lock.acquire()
            except TimeoutError:
                raise StoreUnavailable("the database is busy (another write held it too long)") from None
        else:
            await self._lock.acquire()  # free: taken at once
        try:
            yield self.db
        finally:
            self._lock.release()

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Tx]:
        async with self._writing() as db:
            # The BEGIN is inside what rolls back: one cancelled while in flight may have run all
            # the same, and the one writer connection would stay inside a transaction (every
            # later write refused).
            try:
                try:
                    await db.execute("BEGIN IMMEDIATE")
                except sqlite3.Error as exc:
                    raise StoreUnavailable(str(exc)) from exc
                assert self._statements is not None
                yield _Tx(db, self._statements)
                await db.execute("COMMIT")
            except BaseException as exc:
                try:
                    await db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass   # (nothing had begun)
                if isinstance(exc, sqlite3.Error):
                    raise _classified(exc) from exc
                raise

    async def execute(self, stmt: ClauseElement, **params: Any) -> int:
        """Outside BEGIN, SQLite commits a statement on its own: one call to the connection's
        thread where a unit makes three (which the event loop answers in turn, each waiting
        behind whatever else it runs)."""
        async with self._writing() as db:
            assert self._statements is not None
            return await _Tx(db, self._statements).execute(stmt, **params)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Tx]:
        assert self._statements is not None
        yield _Tx(self.reader, self._statements)

    # -- what differs --------------------------------------------------------------------------
    @property
    def insert(self) -> Any:
        return sqlite_insert

    async def one_at_a_time(self, tx: Tx, what: str) -> None:
        return None  # one writer: every unit runs alone already

    async def wake_replicas(self, tx: Tx, channel: str, topic: str = "") -> None:
        return None  # one process per SQLite database: nobody else to wake

    async def wait_for_notice(self, channel: str, timeout: float, topic: str = "") -> None:
        await asyncio.sleep(timeout)

    async def forgotten(self) -> None:
        """Copy the WAL into the database and truncate it: the deleted text is then in neither
        file. A reader in the middle of a query may make it wait or skip; the next automatic
        checkpoint then does it."""
        for attempt in range(CHECKPOINT_ATTEMPTS):
            async with self._lock:
                try:
                    async with self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)") as cursor:
                        busy = (await cursor.fetchone() or (1,))[0]
                except sqlite3.Error as exc:
                    log.warning("WAL checkpoint after a forget failed: %s", exc)
                    return
            if not busy:
                return
            await asyncio.sleep(0.05 * (attempt + 1))  # a reader still holds an old snapshot
        log.warning("WAL checkpoint after a forget did not complete (readers kept it busy); "
                    "the next automatic checkpoint will")


async def peek_revision(path: str | Path) -> str | None:
    """The revision of the database at `path` (None: no database yet), read-only."""
    if not Path(path).exists():
        return None
    engine = create_async_engine("sqlite+aiosqlite://", poolclass=NullPool, async_creator=lambda: aiosqlite.connect(
        f"file:{Path(path)}?mode=ro", uri=True))
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(migrate.current)
    except sqlite3.Error as exc:
        raise StoreUnavailable(str(exc)) from exc
    finally:
        await engine.dispose()
