"""What tests, the demo and the benchmarks read of the store that lumabot itself never needs."""

from __future__ import annotations

import sqlalchemy as sa

from ..store import Store
from ..store.schema import UNSETTLED, jobs


async def job_ids(store: Store) -> list[str]:
    """Every job id, oldest first (by created_at, then id)."""
    return [r[0] for r in await store.db.rows(sa.select(jobs.c.id).order_by(jobs.c.created_at, jobs.c.id))]


async def unsettled_count(store: Store) -> int:
    return int(await store.db.scalar(sa.select(sa.func.count()).select_from(jobs).where(UNSETTLED)))


def transactions(statements: list[str]) -> list[list[str]]:
    """The transactions a trace of SQLite's writer connection committed, each as its statements
    from its BEGIN to before its COMMIT, or a write sent alone, outside BEGIN (SQLite commits
    such a statement on its own)."""
    done: list[list[str]] = []
    current: list[str] | None = None   # the statements of the transaction begun, if any
    for sql in statements:
        verb = sql.split(None, 1)[0].upper() if sql.strip() else ""
        if verb == "BEGIN":
            current = [sql]
        elif verb in ("COMMIT", "ROLLBACK"):
            if verb == "COMMIT" and current is not None:
                done.append(current)
            current = None
        elif current is not None:
            current.append(sql)
        elif verb in ("INSERT", "UPDATE", "DELETE", "REPLACE"):
            done.append([sql])
    return done
