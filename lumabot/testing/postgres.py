"""A throwaway PostgreSQL cluster for tests and benchmarks: a temporary directory, a Unix
socket only (no TCP port), fsync off, gone when stopped.

PostgreSQL refuses to run as root, so when this process is root (CI) the cluster is created
and run as the `postgres` user (`runuser -u postgres -- initdb/pg_ctl`). Each test gets a fresh
database copied from a migrated template (`new_database`), which takes tens of milliseconds.

`LUMABOT_TEST_DATABASE_URL` points the tests at an existing server instead (its role must be
able to create databases).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from urllib.parse import quote

import asyncpg



class PostgresUnavailable(Exception):
    """No PostgreSQL binaries here (the message says what is missing)."""


def _bindir() -> Path:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    raise PostgresUnavailable("PostgreSQL is not installed (no pg_ctl on PATH or in "
                              "/usr/lib/postgresql/*/bin)")


class PostgresCluster:
    """`start()`, then `url` (the maintenance database) and `new_database()`; `stop()`."""

    def __init__(self) -> None:
        self.dir: Path | None = None
        self.url = ""
        self._as_postgres = os.geteuid() == 0
        self._bin: Path | None = None
        self._external = os.environ.get("LUMABOT_TEST_DATABASE_URL")
        self.template = f"lumabot_template_{os.getpid()}"  # one per test process (xdist workers)

    def _run(self, *args: str) -> None:
        assert self._bin is not None
        cmd = [str(self._bin / args[0]), *args[1:]]
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {result.stderr.strip() or result.stdout.strip()}")

    def start(self) -> str:
        if self._external:
            self.url = self._external
            return self.url
        self._bin = _bindir()
        self.dir = Path(tempfile.mkdtemp(prefix="lumabot-pg-"))
        data = self.dir / "data"
        if self._as_postgres:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run("initdb", "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync",
                  "-E", "UTF8", "--locale=C")
        options = (f"-c listen_addresses='' -c unix_socket_directories='{self.dir}' -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self._run("pg_ctl", "-D", str(data), "-o", options, "-l", str(self.dir / "log"), "-w", "start")
        self.url = f"postgresql://postgres@/postgres?host={quote(str(self.dir))}"
        return self.url

    def database_url(self, name: str) -> str:
        base, _, query = self.url.partition("?")
        root = base.rsplit("/", 1)[0]
        return f"{root}/{name}" + (f"?{query}" if query else "")

    async def create_template(self) -> None:
        """A database with lumabot's schema, the template of every test database."""
        from ..store import open_store

        await create_database(self.url, self.template, replace=True)
        store = open_store(self.database_url(self.template))
        await store.open()
        await store.close()

    async def new_database(self) -> str:
        """A fresh, migrated, empty database; its URL."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        await create_database(self.url, name, template=self.template)
        return self.database_url(name)

    def stop(self) -> None:
        if self.dir is None:  # an external server: only this process's template goes
            if self._external and self.url:
                import asyncio

                from concurrent.futures import ThreadPoolExecutor

                with ThreadPoolExecutor(1) as thread:  # whether or not a loop runs here
                    thread.submit(asyncio.run, drop_database(self.url, self.template)).result()
            return
        try:
            self._run("pg_ctl", "-D", str(self.dir / "data"), "-m", "immediate", "stop")
        except Exception:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None


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
