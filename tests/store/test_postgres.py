"""What only the PostgreSQL store does: migrations when replicas start together."""

from __future__ import annotations

import asyncio
import uuid

from lumabot.store import schema_status
from lumabot.store.postgres import MIGRATIONS, PostgresStore, create_database


async def test_replicas_starting_together_migrate_once(pg_cluster):
    name = f"empty_{uuid.uuid4().hex[:12]}"
    await create_database(pg_cluster.url, name)  # no schema at all
    url = pg_cluster.database_url(name)
    assert await schema_status(url) == (0, len(MIGRATIONS))
    stores = [PostgresStore(url) for _ in range(4)]
    await asyncio.gather(*(s.open() for s in stores))  # one migrates, the others wait
    try:
        # (a migration applied twice would have failed: its CREATE TABLEs exist)
        assert [await s.schema_version() for s in stores] == [len(MIGRATIONS)] * 4
    finally:
        await asyncio.gather(*(s.close() for s in stores))
