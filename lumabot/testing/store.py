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
