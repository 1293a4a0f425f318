"""The one SQL layer: every statement is built with SQLAlchemy Core against store/schema.py,
compiled once per database (the dialect decides placeholders, casts, booleans, upserts), and
run in a unit of work (`Database.write()` / `read()`, a `Tx`).

The units run compiled statements on the driver's own connection (aiosqlite, asyncpg) rather
than through SQLAlchemy's async execution: on aiosqlite that path costs 3.5x per statement
(1.1 ms against 0.31 ms for a BEGIN, INSERT, UPDATE, COMMIT unit on this machine: an adapted
cursor and several thread hops per statement), and the job lifecycle is nothing but such units.
SQLAlchemy's engine still owns the connections, the dialect and the migrations (Alembic).

What truly differs between the databases (locks, notifications, the clock, a few functions)
lives in store/dialects/, one small module each.
"""

from __future__ import annotations

import contextvars
import logging
from abc import ABC, abstractmethod
from collections import OrderedDict
from contextlib import AbstractAsyncContextManager
from typing import Any, Iterable, Sequence, cast

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler as Compiled

log = logging.getLogger("lumabot.store")

Row = Sequence[Any]

# What replicas wake each other about (PostgreSQL NOTIFY channels).
JOBS_RELEASED = "lumabot_jobs"    # a replica handed jobs back, or stopped
SLOTS_CHANGED = "lumabot_slots"   # Luma slots were granted or freed
INSTALLATIONS_CHANGED = "lumabot_installations"   # OAuth mode: installed, uninstalled, rotated
CHANNELS = (JOBS_RELEASED, SLOTS_CHANGED, INSTALLATIONS_CHANGED)


# Work a person waits on before Slack's 3-second ack (runner/deadline.py marks it): on PostgreSQL
# it has connections of its own, so the bots' background work (status messages, the line, the
# place-in-line read) cannot keep an ack waiting for one. Tasks started from it for later work
# start outside it (`outside_an_ack`).
_for_an_ack: contextvars.ContextVar[bool] = contextvars.ContextVar("for_an_ack", default=False)


def mark_for_an_ack() -> None:
    """From now on, in this task's context, the database work is for an ack."""
    _for_an_ack.set(True)


def for_an_ack() -> bool:
    return _for_an_ack.get()


def outside_an_ack() -> contextvars.Context:
    """A copy of this context where the work is not for an ack: for a task started by an ack's
    work that lives on (a job's own task)."""
    context = contextvars.copy_context()
    context.run(_for_an_ack.set, False)
    return context


class Duplicate(Exception):
    """A unique key was already there (the statement changed nothing)."""


class _Compiled:
    """A statement compiled for one database: its SQL, the order of its parameters, the values
    of those the statement itself holds (literals), and whether it expands a list at each use."""

    __slots__ = ("compiled", "string", "names", "defaults", "expanding")

    def __init__(self, compiled: Compiled):
        self.compiled = compiled
        self.string = compiled.string
        self.names = tuple(compiled.positiontup or ())
        self.defaults = compiled.params
        self.expanding = "POSTCOMPILE" in compiled.string


class Statements:
    """Compiled statements, once per statement object and database kind (statements are built
    once and kept: module constants). A statement holding a list of the caller's values (`IN
    (...)`) is expanded at each use. The most recent `size` are kept: a statement built at each
    call costs a compile, never memory."""

    def __init__(self, dialect: Dialect, size: int = 1024):
        self.dialect = dialect
        self.size = size
        self._cache: OrderedDict[int, tuple[ClauseElement, _Compiled]] = OrderedDict()

    _shared: dict[str, "Statements"] = {}

    @classmethod
    def of(cls, dialect: Dialect) -> "Statements":
        """The compiled statements of this kind of database, shared by every store of the
        process (statements are module constants: each is compiled once per process)."""
        found = cls._shared.get(dialect.name)
        if found is None:
            found = cls._shared[dialect.name] = cls(dialect)
        return found

    def sql(self, stmt: ClauseElement, params: dict[str, Any] | None) -> tuple[str, list[Any]]:
        """The SQL text and its positional arguments for `stmt` with `params`."""
        cached = self._cache.get(id(stmt))
        if cached is None or cached[0] is not stmt:
            compiled = _Compiled(cast(Compiled, stmt.compile(dialect=self.dialect)))
            self._cache[id(stmt)] = (stmt, compiled)
            if len(self._cache) > self.size:
                self._cache.popitem(last=False)
        else:
            compiled = cached[1]
        if compiled.expanding:  # an IN list of the caller's values: expanded now
            state = compiled.compiled.construct_expanded_state({**compiled.defaults, **(params or {})})
            return state.statement, list(state.positional_parameters)
        if not params:
            return compiled.string, [compiled.defaults[name] for name in compiled.names]
        defaults = compiled.defaults
        return compiled.string, [params[name] if name in params else defaults[name] for name in compiled.names]


def one_of(column: sa.ColumnElement[Any], values: Iterable[str]) -> sa.ColumnElement[bool]:
    """`column IN (...)` of constant values, compiled once (a list of the caller's values is
    expanded at each use instead)."""
    return column.in_([sa.literal(v) for v in values])


class Tx(ABC):
    """One unit of work on one connection (a transaction for writes)."""

    @abstractmethod
    async def rows(self, stmt: ClauseElement, **params: Any) -> list[Row]:
        """The rows a statement returns (a SELECT, or a write with RETURNING)."""

    @abstractmethod
    async def execute(self, stmt: ClauseElement, **params: Any) -> int:
        """Run a statement that returns no rows; how many rows it changed. Duplicate when it
        broke a unique key."""

    @abstractmethod
    async def executemany(self, stmt: ClauseElement, params: Iterable[dict[str, Any]]) -> None: ...

    async def row(self, stmt: ClauseElement, **params: Any) -> Row | None:
        found = await self.rows(stmt, **params)
        return found[0] if found else None

    async def scalar(self, stmt: ClauseElement, **params: Any) -> Any:
        found = await self.row(stmt, **params)
        return found[0] if found is not None else None


class Database(ABC):
    """One database: its engine, its units of work, and what differs about it."""

    name: str
    shared: bool  # several replicas share it (PostgreSQL); SQLite is one process's

    def __init__(self, url: str):
        self.url = url
        self.engine: AsyncEngine | None = None

    @abstractmethod
    async def open(self) -> None:
        """Connect, and bring the schema up to date (store/migrate.py)."""

    @abstractmethod
    async def close(self) -> None: ...

    def library_engine(self) -> AsyncEngine:
        """The engine for libraries that run their own statements on this database (slack_sdk's
        installation and OAuth state stores): they must not fail for a moment's lock."""
        assert self.engine is not None, "store is not open"
        return self.engine

    @abstractmethod
    def write(self) -> AbstractAsyncContextManager[Tx]:
        """One write transaction: committed when the block ends, rolled back if it raises."""

    @abstractmethod
    def read(self) -> AbstractAsyncContextManager[Tx]:
        """Reads (each statement sees what was committed when it started)."""

    # -- what differs between the databases, by what it guarantees -------------------------------
    @property
    @abstractmethod
    def insert(self) -> Any:
        """The dialect's INSERT construct (with on_conflict_do_nothing / on_conflict_do_update)."""

    @abstractmethod
    async def one_at_a_time(self, tx: Tx, what: str) -> None:
        """Until `tx` ends, no other unit that says the same `what` runs (on every replica):
        admission per workspace, policy edits per workspace, sweeps and forgets."""

    @abstractmethod
    async def wake_replicas(self, tx: Tx, channel: str, topic: str = "") -> None:
        """When `tx` commits, the other replicas waiting on `channel` (about `topic`: one Luma
        account's slots, say) are woken."""

    @abstractmethod
    async def wait_for_notice(self, channel: str, timeout: float, topic: str = "") -> None:
        """Return when another replica woke `channel` about `topic`, or after `timeout` seconds."""

    async def listen(self) -> None:
        """From now on, notices of the other replicas are not missed (they wake the next
        `wait_for_notice`); nothing where there are no other replicas."""

    async def forgotten(self) -> None:
        """After a forget: what the database must do so the deleted text is gone from its files."""

    # -- one statement, a unit of its own -------------------------------------------------------
    async def rows(self, stmt: ClauseElement, **params: Any) -> list[Row]:
        async with self.read() as tx:
            return await tx.rows(stmt, **params)

    async def row(self, stmt: ClauseElement, **params: Any) -> Row | None:
        async with self.read() as tx:
            return await tx.row(stmt, **params)

    async def scalar(self, stmt: ClauseElement, **params: Any) -> Any:
        async with self.read() as tx:
            return await tx.scalar(stmt, **params)

    @abstractmethod
    async def execute(self, stmt: ClauseElement, **params: Any) -> int:
        """One statement, committed by itself (a unit of one statement, in as few calls as the
        database allows); the rows it changed."""


def param(name: str, type_: sa.types.TypeEngine[Any] | None = None) -> sa.BindParameter[Any]:
    """A named parameter of a statement built once and run many times (`type_` where the
    database cannot tell it from the column it is compared with)."""
    return sa.bindparam(name, type_=type_)
