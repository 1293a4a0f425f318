"""Upgrading in place (issue #22): a database of lumabot 0.1 (SQLite at its migration 10,
PostgreSQL at its migration 6; tests/data) goes through the one Alembic chain with nothing lost,
and ends with exactly the schema store/schema.py declares, as a new database does."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from lumabot.store import migrate
from lumabot.store.dialects.postgres import PostgresDatabase
from lumabot.testing.postgres import create_database
from lumabot.store.dialects.sqlite import SQLiteDatabase
from lumabot.store.schema import metadata

pytestmark = pytest.mark.filterwarnings("ignore:.*expression-based index:UserWarning",
                                        "ignore:Skipped unsupported reflection")

DATA = Path(__file__).parent.parent / "data"
T0 = 1_790_000_000.0


def _same_type(context, inspected, metadata_column, inspected_type, metadata_type) -> bool | None:
    """SQLite compares by affinity: a legacy INTEGER flag is the BOOLEAN SQLAlchemy declares,
    REAL is FLOAT; PostgreSQL's types are compared as Alembic does."""
    if context.dialect.name != "sqlite":
        return None
    affinity = {"INTEGER": "INTEGER", "BOOLEAN": "INTEGER", "BIGINT": "INTEGER", "REAL": "REAL",
                "FLOAT": "REAL", "TEXT": "TEXT", "BLOB": "BLOB", "VARCHAR": "TEXT",
                "DATETIME": "NUMERIC", "TIMESTAMP": "NUMERIC"}
    seen = affinity.get(str(inspected_type).split("(")[0].upper())
    want = affinity.get(str(metadata_type.compile(dialect=context.dialect)).split("(")[0].upper())
    return seen != want


def _legacy_sqlite_key(difference) -> bool:
    """SQLite lets a PRIMARY KEY column declared without NOT NULL (as lumabot 0.1's tables were)
    hold NULL; SQLAlchemy declares NOT NULL. Nothing ever writes NULL there, and rebuilding every
    table to say so would copy the whole database at upgrade: the one difference allowed."""
    if not isinstance(difference, list) or len(difference) != 1:
        return False
    kind, _, table, column, *_ = difference[0]
    return kind == "modify_nullable" and metadata.tables[table].c[column].primary_key


EXPRESSION_INDEXES = {"luma_waiting_line"}  # Alembic cannot compare these: index_definition() does


def schema_differences(sync_conn) -> list:
    def for_this_database(obj, name, kind, reflected, compare_to) -> bool:
        condition = getattr(obj, "_ddl_if", None)  # Index(...).ddl_if(dialect=...): one database's only
        return condition is None or condition.dialect in (None, sync_conn.dialect.name)

    context = MigrationContext.configure(sync_conn, opts={"compare_type": _same_type,
                                                          "include_object": for_this_database})
    return [d for d in compare_metadata(context, metadata)
            if not (isinstance(d, tuple) and d[0] == "remove_table" and d[1].name == "alembic_version")
            and not (isinstance(d, tuple) and d[0] in ("add_index", "remove_index")
                     and d[1].name in EXPRESSION_INDEXES)
            and not (sync_conn.dialect.name == "sqlite" and _legacy_sqlite_key(d))]


def index_definition(sync_conn, name: str) -> str:
    """An index as the database itself states it (whitespace and case aside)."""
    query = ("SELECT sql FROM sqlite_master WHERE name = :name" if sync_conn.dialect.name == "sqlite"
             else "SELECT indexdef FROM pg_indexes WHERE indexname = :name")
    sql = sync_conn.execute(sa.text(query), {"name": name}).scalar()
    return " ".join(str(sql).replace("public.", "").lower().split())


def rows(sync_conn, table: str, order: str) -> list[tuple]:
    return [tuple(r) for r in sync_conn.exec_driver_sql(f"SELECT * FROM {table} ORDER BY {order}")]


def check_the_data(sync_conn) -> None:
    """Every row lumabot 0.1 wrote, as the new schema reads it."""
    jobs = {r[0]: r for r in sync_conn.execute(sa.text(
        "SELECT id, team_id, user_id, channel_id, state, params, settled, deleted, cost_usd, owner, epoch, "
        "cancelled_by, blind_resends, created_at, generation_id, session_id, failure_code FROM jobs"))}
    assert set(jobs) == {"job-done", "job-edit", "job-queued", "job-failed", "job-cancelled"}
    done = jobs["job-done"]
    assert done[4] == "done" and bool(done[6]) and done[8] == pytest.approx(0.1) and done[10] == 2
    assert '"prompt":"a lighthouse at dusk"' in done[5] and done[13] == pytest.approx(T0)
    assert "ünïcödé ✨" in jobs["job-queued"][5] and jobs["job-queued"][9] == "replica-a"
    assert '"generation_id":"gen-1"' in jobs["job-edit"][5] and jobs["job-edit"][15] == "sess-1"
    assert bool(jobs["job-failed"][7]) and jobs["job-failed"][12] == 1 and jobs["job-failed"][16] == "content_moderated"
    assert jobs["job-cancelled"][11] == "U9"
    assert len(rows(sync_conn, "dedupe_keys", "key")) == 6
    images = rows(sync_conn, "images", "id")
    assert [(i[4], i[7]) for i in images] == [("lumabot", "F1"), ("user", "F9")]
    # 0.1 served one workspace: every image is its (issue #23 scopes every lookup by workspace).
    assert [r[0] for r in sync_conn.exec_driver_sql("SELECT team_id FROM images ORDER BY id")] == ["T1", "T1"]
    sessions = {r[0]: r for r in rows(sync_conn, "sessions", "id")}
    assert sessions["sess-1"][6] == "noir city" and sessions["sess-0"][11] == "F7"
    assert rows(sync_conn, "votes", "job_id")[0][:3] == ("job-edit", "U5", "sess-1")
    assert rows(sync_conn, "thumbnails", "job_id") == [("job-done", bytes(range(256)) * 4)]
    assert '"month_budget":200.0' in rows(sync_conn, "policies", "team_id")[0][1]
    assert rows(sync_conn, "policy_log", "id")[0][1:3] == ("T1", "UADMIN")
    assert [r[:3] + r[6:] for r in rows(sync_conn, "usage_days", "day")] == [
        ("T1", pytest.approx(1772668800.0), "U4", 1, 1, pytest.approx(0.0404))]
    heartbeat = rows(sync_conn, "replicas", "id")
    assert heartbeat[0][0] == "replica-a" and heartbeat[0][1] > T0  # a time, in epoch seconds


async def expression_indexes(db) -> dict[str, str]:
    async with db.engine.connect() as conn:
        return {name: await conn.run_sync(index_definition, name) for name in EXPRESSION_INDEXES}


async def test_a_sqlite_database_of_lumabot_0_1_upgrades_in_place(tmp_path):
    path = tmp_path / "lumabot.db"
    shutil.copy(DATA / "lumabot-0.1-sqlite.db", path)
    db, new = SQLiteDatabase(path), SQLiteDatabase(tmp_path / "new.db")
    await db.open()
    await new.open()
    try:
        async with db.engine.connect() as conn:
            assert await conn.run_sync(migrate.current) == migrate.head()
            await conn.run_sync(check_the_data)
            assert await conn.run_sync(schema_differences) == []
        assert await expression_indexes(db) == await expression_indexes(new)
    finally:
        await db.close()
        await new.close()


async def test_a_new_sqlite_database_is_the_declared_schema(tmp_path):
    db = SQLiteDatabase(tmp_path / "new.db")
    await db.open()
    try:
        async with db.engine.connect() as conn:
            assert await conn.run_sync(migrate.current) == migrate.head()
            assert await conn.run_sync(schema_differences) == []
    finally:
        await db.close()


async def _restore(cluster, dump: Path) -> str:
    name = f"legacy_{uuid.uuid4().hex[:12]}"
    await create_database(cluster.url, name)
    url = cluster.database_url(name)
    import asyncpg

    script = "\n".join(line for line in dump.read_text().splitlines() if not line.startswith("\\"))
    con = await asyncpg.connect(url)
    try:
        await con.execute(script)
    finally:
        await con.close()
    return url


async def test_a_postgresql_database_of_lumabot_0_1_upgrades_in_place(pg_cluster):
    url = await _restore(pg_cluster, DATA / "lumabot-0.1-postgresql.sql")
    db, new = PostgresDatabase(url), PostgresDatabase(await pg_cluster.new_database())
    await db.open()
    await new.open()
    try:
        assert await expression_indexes(db) == await expression_indexes(new)
        async with db.engine.connect() as conn:
            assert await conn.run_sync(migrate.current) == migrate.head()
            await conn.run_sync(check_the_data)
            assert await conn.run_sync(schema_differences) == []
            line = await conn.run_sync(lambda c: rows(c, "luma_waiting", "job_id"))
            assert [(r[0], r[2], r[3]) for r in line] == [("job-queued", "U3", True)]
            account = await conn.run_sync(lambda c: rows(c, "luma_account", "id"))
            assert account[0][4] == 30 and account[0][5] >= line[0][4]  # the turn counter passed seq
    finally:
        await db.close()
        await new.close()


async def test_a_new_postgresql_database_is_the_declared_schema(pg_cluster):
    name = f"new_{uuid.uuid4().hex[:12]}"
    await create_database(pg_cluster.url, name)
    db = PostgresDatabase(pg_cluster.database_url(name))
    await db.open()
    try:
        async with db.engine.connect() as conn:
            assert await conn.run_sync(schema_differences) == []
    finally:
        await db.close()
