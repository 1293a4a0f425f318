"""What only the PostgreSQL store does: migrations when replicas start together."""

from __future__ import annotations

import asyncio
import uuid

from lumabot.store import migrate, open_store, schema_status
from lumabot.testing.postgres import create_database


async def test_replicas_starting_together_migrate_once(pg_cluster):
    name = f"empty_{uuid.uuid4().hex[:12]}"
    await create_database(pg_cluster.url, name)  # no schema at all
    url = pg_cluster.database_url(name)
    assert await schema_status(url) == (None, migrate.head())
    stores = [open_store(url) for _ in range(4)]
    await asyncio.gather(*(s.open() for s in stores))  # one migrates, the others wait
    try:
        # (a migration applied twice would have failed: its CREATE TABLEs exist)
        assert await schema_status(url) == (migrate.head(), migrate.head())
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_a_killed_listener_is_noticed_and_reopened(pg_cluster):
    """Issue #21, point 7: after PostgreSQL restarted or its connection was killed, a replica
    used to poll every second for good instead of LISTENing again."""
    import asyncpg

    url = await pg_cluster.new_database()
    mine, other = open_store(url), open_store(url)
    await mine.open()
    await other.open()
    try:
        await mine.jobs.wait_for_released(0)
        assert mine.db.listening
        killed = mine.db._listener.get_server_pid()
        admin = await asyncpg.connect(pg_cluster.url)
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", killed)
        finally:
            await admin.close()
        for _ in range(500):  # the next waits notice the dead connection and open a new one
            await mine.jobs.wait_for_released(0.01)
            if mine.db.listening and mine.db._listener.get_server_pid() != killed:
                break
        else:
            raise AssertionError("the listener was never reopened")
        waiting = asyncio.ensure_future(mine.jobs.wait_for_released(60))
        await asyncio.sleep(0)
        await other.jobs.release("another-replica")  # NOTIFYs
        await asyncio.wait_for(waiting, 10)          # woken by the notice, not the timeout
    finally:
        await mine.close()
        await other.close()


async def test_a_slot_notice_wakes_only_the_schedulers_of_its_luma_account(pg_cluster):
    """A replica runs a scheduler per Luma account: a grant or a free in one account wakes that
    account's, not every account's (each would look at its line for nothing)."""
    from lumabot.store.sql import SLOTS_CHANGED

    url = await pg_cluster.new_database()
    mine, other = open_store(url), open_store(url)
    await mine.open()
    await other.open()
    try:
        await mine.db.listen()
        t9 = asyncio.ensure_future(mine.slots.for_account("T9").wait(60))
        t8 = asyncio.ensure_future(mine.slots.for_account("T8").wait(60))
        default = asyncio.ensure_future(mine.slots.wait(60))
        await asyncio.sleep(0)
        async with other.db.write() as tx:
            await other.db.wake_replicas(tx, SLOTS_CHANGED, "T9")
        await asyncio.wait_for(t9, 10)                   # woken by the notice, not the timeout
        async with other.db.write() as tx:               # (a notice after it: delivered in order)
            await other.db.wake_replicas(tx, SLOTS_CHANGED, "default")
        await asyncio.wait_for(default, 10)
        assert not t8.done()                             # the other account slept through both
        t8.cancel()
    finally:
        await mine.close()
        await other.close()


async def test_driver_errors_of_a_restarted_server_mean_unavailable(pg_cluster):
    """Issue #21, point 8: asyncpg's InternalClientError ("cannot switch to state 12") after a
    restart got a 500; every driver error of that kind is "database unavailable"."""
    import asyncpg
    import pytest

    from lumabot.store import StoreUnavailable

    store = open_store(await pg_cluster.new_database())
    await store.open()
    engine = store.db.engine

    class Broken:
        def __init__(self, error):
            self.error = error

        def connect(self, *_a, **_k):
            raise self.error

    try:
        for error in (asyncpg.InternalClientError("cannot switch to state 12"),
                      asyncpg.ConnectionDoesNotExistError("closed"), ConnectionResetError()):
            store.db.engine = Broken(error)
            with pytest.raises(StoreUnavailable):
                await store.jobs.get("x")
    finally:
        store.db.engine = engine
        await store.close()
