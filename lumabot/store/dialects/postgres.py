"""PostgreSQL (asyncpg): one database several replicas share.

Each unit is one transaction on a pooled connection. Units that must not overlap across
replicas (admission per workspace, policy edits, sweeps and forgets) take a transaction-level
advisory lock on what they say (`one_at_a_time`), then count in later statements, which under
READ COMMITTED see everything committed while they waited. Replicas wake each other with
NOTIFY; one connection per replica LISTENs, and is reopened (with backoff) when PostgreSQL
restarts or the connection is killed. Migrations run under an advisory lock: replicas that start
together migrate once."""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Iterable, cast

import asyncpg
import sqlalchemy.exc
from sqlalchemy import Connection, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import ClauseElement

from .. import migrate
from ..errors import StoreUnavailable
from ..sql import CHANNELS, Database, Duplicate, Row, Statements, Tx, for_an_ack
from . import now, utc_day
from ...waits import wait_event

log = logging.getLogger("lumabot.store")

# A database that hangs holds no caller for ever: waiting for a pooled connection, and each
# statement, give up after these many seconds (StoreUnavailable). Work before an ack has its own,
# shorter bound (runner/deadline.py); these are for everything else.
ACQUIRE_TIMEOUT = 30.0
STATEMENT_TIMEOUT = 120.0
POOL_SIZE = 10
# Connections kept for work before an ack (store/sql.py `for_an_ack`), besides POOL_SIZE.
ACK_POOL_SIZE = 5

# Any number, the same in every replica: the advisory lock that serialises migrations.
_MIGRATION_LOCK = 0x6C756D61

# Errors that mean "the database cannot do this right now": the caller retries later.
UNAVAILABLE: tuple[type[BaseException], ...] = (
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
    sqlalchemy.exc.TimeoutError,                      # no pooled connection in ACQUIRE_TIMEOUT
)


def unavailable(exc: BaseException) -> bool:
    """Is this driver (or pool) error a database that cannot answer now? Classified once, here."""
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.orig is not None:
        return unavailable(exc.orig)
    return isinstance(exc, UNAVAILABLE)


@compiles(now, "postgresql")
def _now(element: Any, compiler: Any, **kw: Any) -> str:
    return "extract(epoch FROM now())::double precision"



@compiles(utc_day, "postgresql")
def _utc_day(element: Any, compiler: Any, **kw: Any) -> str:
    return f"(floor({compiler.process(element.clauses.clauses[0], **kw)} / 86400) * 86400)"


def _changed(status: str) -> int:
    """Rows a statement changed, from asyncpg's status ("UPDATE 1", "INSERT 0 1")."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


class _Tx(Tx):
    """`write`: a transaction whose BEGIN goes with its first statement (with the advisory lock
    of `one_at_a_time` in one round trip; a unit that wrote nothing sends nothing)."""

    def __init__(self, con: asyncpg.Connection, statements: Statements, *, write: bool = False):
        self.con = con
        self.statements = statements
        self.unbegun = write

    async def _begin(self) -> None:
        if self.unbegun:
            self.unbegun = False
            await self.con.execute("BEGIN")

    async def rows(self, stmt: ClauseElement, **params: Any) -> list[Row]:
        await self._begin()
        sql, args = self.statements.sql(stmt, params)
        try:
            return cast(list[Row], await self.con.fetch(sql, *args))
        except asyncpg.UniqueViolationError as exc:
            raise Duplicate(str(exc)) from exc

    async def execute(self, stmt: ClauseElement, **params: Any) -> int:
        await self._begin()
        sql, args = self.statements.sql(stmt, params)
        try:
            return _changed(await self.con.execute(sql, *args))
        except asyncpg.UniqueViolationError as exc:
            raise Duplicate(str(exc)) from exc

    async def executemany(self, stmt: ClauseElement, params: Iterable[dict[str, Any]]) -> None:
        batch = list(params)
        if batch:
            await self._begin()
            sql, _ = self.statements.sql(stmt, batch[0])
            await self.con.executemany(sql, [self.statements.sql(stmt, p)[1] for p in batch])

    async def begin_one_at_a_time(self, what: str) -> None:
        """The advisory lock on `what`: with BEGIN in one simple query (one round trip) when
        it is the unit's first statement."""
        if not self.unbegun:
            await self.execute(_ADVISORY_LOCK, what=what)
            return
        self.unbegun = False
        literal = "'" + what.replace("'", "''") + "'"   # (standard_conforming_strings)
        await self.con.execute(f"BEGIN; SELECT pg_advisory_xact_lock(hashtext({literal}))")

    async def end(self, commit: bool) -> None:
        """COMMIT or ROLLBACK what was begun. A connection left inside a transaction (the end
        failed or was cancelled) is closed, never handed to the next unit."""
        if self.unbegun:
            return
        try:
            await self.con.execute("COMMIT" if commit else "ROLLBACK")
        except BaseException:
            if commit:
                raise
            # (a ROLLBACK that failed: the unit's own error is the one that counts)
        finally:
            if not self.con.is_closed() and self.con.is_in_transaction():
                self.con.terminate()


class PostgresDatabase(Database):
    name = "postgresql"
    shared = True  # several replicas

    def __init__(self, dsn: str, *, pool_size: int = POOL_SIZE, ack_pool_size: int = ACK_POOL_SIZE):
        super().__init__(dsn)
        self.dsn = dsn
        self.pool_size = pool_size
        self.ack_pool_size = ack_pool_size
        self._for_acks: AsyncEngine | None = None   # the connections kept for acks
        self._statements: Statements | None = None
        # One connection LISTENs on every channel; each notice sets the event of its channel and
        # topic (its payload: a Luma account's slots wake only that account's schedulers).
        self._listener: asyncpg.Connection | None = None
        self._listening = asyncio.Lock()
        self._notices: dict[tuple[str, str], asyncio.Event] = {(c, ""): asyncio.Event() for c in CHANNELS}
        self._listen_again_at = 0.0   # after a failed LISTEN connect: not before then (loop time)
        self._listen_backoff = 0.0

    async def _connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.dsn, timeout=10, command_timeout=STATEMENT_TIMEOUT)

    def _pool(self, size: int) -> AsyncEngine:
        return create_async_engine("postgresql+asyncpg://", async_creator=self._connect, pool_size=size,
                                   max_overflow=0, pool_timeout=ACQUIRE_TIMEOUT, pool_reset_on_return=None)

    async def open(self) -> None:
        engine = self.engine = self._pool(self.pool_size)
        self._for_acks = self._pool(self.ack_pool_size)
        self._statements = Statements.of(engine.dialect)
        try:
            async with engine.connect() as conn:
                await conn.run_sync(migrate.upgrade, _migration_lock)
        except Exception as exc:
            if unavailable(exc):
                raise StoreUnavailable(f"cannot connect to PostgreSQL: {exc}") from exc
            raise

    async def close(self) -> None:
        async with self._listening:   # (after a listener still opening: see wait_for_notice)
            listener, self._listener = self._listener, None
        if listener is not None:
            try:
                await asyncio.wait_for(listener.close(), 5)
            except Exception:
                listener.terminate()
        for engine in (self.engine, self._for_acks):
            if engine is not None:
                await engine.dispose()
        self.engine = self._for_acks = None

    # -- units of work -------------------------------------------------------------------------
    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        engine = self._for_acks if for_an_ack() else self.engine
        if engine is None:
            raise RuntimeError("store is not open")
        try:
            async with engine.connect() as conn:
                con = cast(asyncpg.Connection, (await conn.get_raw_connection()).driver_connection)
                try:
                    yield con
                finally:
                    if con.is_closed():   # (closed by a unit that could not end its transaction)
                        await conn.invalidate()
        except Duplicate:
            raise
        except Exception as exc:
            if unavailable(exc):
                raise StoreUnavailable(str(exc) or type(exc).__name__) from exc
            raise

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Tx]:
        assert self._statements is not None
        async with self._connection() as con:
            tx = _Tx(con, self._statements, write=True)
            try:
                yield tx
            except BaseException:
                await tx.end(commit=False)
                raise
            await tx.end(commit=True)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Tx]:
        assert self._statements is not None
        async with self._connection() as con:
            yield _Tx(con, self._statements)

    async def execute(self, stmt: ClauseElement, **params: Any) -> int:
        """Outside a transaction, PostgreSQL commits a statement on its own: one round trip
        where BEGIN, the statement and COMMIT make three."""
        assert self._statements is not None
        async with self._connection() as con:
            return await _Tx(con, self._statements).execute(stmt, **params)

    # -- what differs --------------------------------------------------------------------------
    @property
    def insert(self) -> Any:
        return pg_insert

    async def one_at_a_time(self, tx: Tx, what: str) -> None:
        assert isinstance(tx, _Tx)
        await tx.begin_one_at_a_time(what)

    async def wake_replicas(self, tx: Tx, channel: str, topic: str = "") -> None:
        await tx.execute(_NOTIFY, channel=channel, topic=topic)

    async def listen(self) -> None:
        await self._listen()

    async def wait_for_notice(self, channel: str, timeout: float, topic: str = "") -> None:
        event = self._notices.get((channel, topic))
        if event is None:
            event = self._notices[(channel, topic)] = asyncio.Event()
        # (Shielded: a waiter cancelled while the connection opens, as a scheduler's wait is
        # whenever it has something to write, does not abort it: it would never open in a burst.)
        await asyncio.shield(self._listen())
        await wait_event(event, timeout)
        event.clear()

    @property
    def listening(self) -> bool:
        """Whether a live connection LISTENs for the other replicas' notices."""
        return self._listener is not None and not self._listener.is_closed()

    async def _listen(self) -> None:
        """(Re)open the listening connection: at first, and after PostgreSQL restarted or the
        connection was killed (then with backoff, while it cannot be opened). Every waiter is
        woken once it listens, the first time too: notices sent while nobody listened are lost,
        so whoever waits looks again."""
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
                for name in CHANNELS:
                    await listener.add_listener(name, self._heard)
            except UNAVAILABLE as exc:
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

    def _heard(self, _con: object, _pid: int, channel: str, topic: object) -> None:
        event = self._notices.get((channel, str(topic)))
        if event is not None:
            event.set()

    def _wake_all(self) -> None:
        for event in self._notices.values():
            event.set()


_ADVISORY_LOCK = text("SELECT pg_advisory_xact_lock(hashtext(:what))")
_NOTIFY = text("SELECT pg_notify(:channel, :topic)")


def _migration_lock(connection: Connection) -> None:
    connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")


async def peek_revision(dsn: str) -> str | None:
    """The database's revision (None before the first start), read-only."""
    try:
        con = await asyncpg.connect(dsn, timeout=10)
    except UNAVAILABLE as exc:
        raise StoreUnavailable(f"cannot connect to PostgreSQL: {type(exc).__name__}: {exc}") from exc
    try:
        if await con.fetchval("SELECT to_regclass('alembic_version')") is not None:
            return str(await con.fetchval("SELECT version_num FROM alembic_version"))
        if await con.fetchval("SELECT to_regclass('schema_version')") is not None:
            return f"legacy:{await con.fetchval('SELECT COALESCE(MAX(version), 0) FROM schema_version')}"
        return None
    finally:
        await con.close()
