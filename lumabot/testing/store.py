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


def commits(statements: list[str]) -> int:
    """The transactions a trace of SQLite's writer connection committed: each COMMIT, and each
    write sent outside BEGIN ... COMMIT (SQLite commits such a statement on its own)."""
    count, inside = 0, False
    for sql in statements:
        verb = sql.split(None, 1)[0].upper() if sql.strip() else ""
        if verb == "BEGIN":
            inside = True
        elif verb in ("COMMIT", "ROLLBACK"):
            count += verb == "COMMIT"
            inside = False
        elif verb in ("INSERT", "UPDATE", "DELETE", "REPLACE") and not inside:
            count += 1
    return count
