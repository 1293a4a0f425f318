"""Schema migrations: one Alembic chain for both databases (store/migrations/versions), run at
start by whichever process opens the database first (PostgreSQL: under an advisory lock, so
replicas that start together migrate once; later ones find it done).

- A new database gets store/schema.py's tables at once and is stamped at the newest revision
  (the chain gives the same schema: tests/store/test_upgrade.py compares them).
- A database of lumabot 0.1 (numbered migrations, before Alembic) goes through the chain from its
  first revision, which finishes those numbered migrations.
- A database newer than this lumabot refuses to open."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any
from typing import Callable

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy import create_mock_engine

from . import legacy
from .schema import luma_account, metadata

MIGRATIONS = Path(__file__).parent / "migrations"


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


@functools.cache
def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def head() -> str:
    """The newest revision this lumabot knows."""
    revision = _script().get_current_head()
    assert revision is not None
    return revision


def known_revisions() -> set[str]:
    """Every revision of the chain this lumabot brings."""
    return {r.revision for r in _script().walk_revisions()}


def legacy_version(connection: Connection) -> int:
    """The numbered-migration version of a lumabot 0.1 database (0: none)."""
    if connection.dialect.name == "sqlite":
        return int(connection.exec_driver_sql("PRAGMA user_version").scalar() or 0)
    if connection.exec_driver_sql("SELECT to_regclass('schema_version')").scalar() is None:
        return 0
    return int(connection.exec_driver_sql("SELECT COALESCE(MAX(version), 0) FROM schema_version").scalar() or 0)


def current(connection: Connection) -> str | None:
    """The database's revision: an Alembic revision, "legacy:N" for a lumabot 0.1 database, or
    None for an empty one."""
    revision = MigrationContext.configure(connection).get_current_revision()
    if revision is not None:
        return revision
    version = legacy_version(connection)
    return f"legacy:{version}" if version else None


def upgrade(connection: Connection, lock: Callable[[Connection], None]) -> None:
    """Bring the database to the newest revision, in one transaction, after `lock`."""
    with connection.begin():
        lock(connection)
        script = _script()
        found = current(connection)
        newest = legacy.SQLITE if connection.dialect.name == "sqlite" else legacy.POSTGRESQL
        if found is not None and not found.startswith("legacy:"):
            if found not in known_revisions():
                raise RuntimeError(f"the database's schema ({found}) is newer than this lumabot "
                                   f"({script.get_current_head()}): upgrade lumabot")
        elif found is not None and int(found.split(":")[1]) > len(newest):
            raise RuntimeError(f"the database's schema ({found}) is newer than this lumabot: upgrade lumabot")
        if found is None and not _has_tables(connection):
            for ddl in _create_all(connection.dialect):
                connection.exec_driver_sql(ddl)
            seed(connection)
            MigrationContext.configure(connection).stamp(script, "head")
        else:
            command.upgrade(_config(connection), "head")


_DDL: dict[str, list[str]] = {}


def _create_all(dialect: Dialect) -> list[str]:
    """schema.py's CREATE TABLE and CREATE INDEX statements, compiled once per process (what
    `metadata.create_all` runs, without its compiling and checking at every new database)."""
    found = _DDL.get(dialect.name)
    if found is None:
        statements: list[str] = []

        def record(ddl: Any, *_args: Any, **_kw: Any) -> None:
            statements.append(str(ddl.compile(dialect=dialect)))

        # (what create_all would run, as text)
        metadata.create_all(create_mock_engine(f"{dialect.name}://", record), checkfirst=False)
        found = _DDL[dialect.name] = statements
    return found


def seed(connection: Connection) -> None:
    """The rows a new database starts with (the chain's revisions insert them too)."""
    connection.execute(luma_account.insert().values(id="default"))


def _has_tables(connection: Connection) -> bool:
    from sqlalchemy import inspect

    return bool(inspect(connection).get_table_names())
