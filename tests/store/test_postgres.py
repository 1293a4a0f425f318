"""What only the PostgreSQL store does: migrations when replicas start together."""

from __future__ import annotations

import asyncio
import uuid

import sqlalchemy as sa

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


async def test_a_notice_sent_while_the_listener_opens_is_not_missed(pg_cluster, monkeypatch):
    """A scheduler's wait is cancelled whenever it has something to write: one cancelled while
    the listening connection opened aborted it (in a burst it might never open), and a notice
    sent before it listened was lost (the replica looked again only at its next tick: up to a
    second, or never in a test that stretched the tick). Now the connection opens regardless,
    and the waits that follow are woken once it listens."""
    import asyncpg
    from lumabot.store.sql import SLOTS_CHANGED

    url = await pg_cluster.new_database()
    mine, other = open_store(url), open_store(url)
    await mine.open()
    await other.open()
    connect, connecting, let_it = asyncpg.connect, asyncio.Event(), asyncio.Event()

    async def slow_for_the_listener(*args, **kw):
        if args and args[0] == mine.db.dsn:   # (the pool's connections are not held up)
            connecting.set()
            await let_it.wait()
        return await connect(*args, **kw)

    monkeypatch.setattr(asyncpg, "connect", slow_for_the_listener)
    try:
        first = asyncio.ensure_future(mine.slots.wait(60))
        await connecting.wait()
        first.cancel()                                   # (the scheduler had something to write)
        async with other.db.write() as tx:               # a slot freed before anyone listens
            await other.db.wake_replicas(tx, SLOTS_CHANGED, "default")
        let_it.set()
        await asyncio.gather(first, return_exceptions=True)
        for _ in range(200):
            if mine.db.listening:
                break
            await asyncio.sleep(0.01)
        assert mine.db.listening                         # it opened all the same
        await asyncio.wait_for(mine.slots.wait(60), 10)  # woken to look again, not at the timeout
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


async def test_an_acks_work_gets_a_connection_while_background_work_holds_the_pool(pg_cluster):
    """A burst of commands: the replica's background work (status messages, the line, the
    place-in-line read) had every pooled connection, and acks waited up to 2.5 s for one (then
    "please try again"). The work before an ack has connections of its own; what it starts
    for later (a job's task) does not."""
    from lumabot.runner.deadline import before_ack
    from lumabot.store.sql import for_an_ack, outside_an_ack

    url = await pg_cluster.new_database()
    store = open_store(url)
    await store.open()
    release = asyncio.Event()
    holding = 0

    async def background() -> None:
        nonlocal holding
        async with store.db.read() as tx:
            await tx.scalar(sa.select(sa.literal(1)))
            holding += 1
            await release.wait()

    held = [asyncio.ensure_future(background()) for _ in range(store.db.pool_size)]
    try:
        for _ in range(1000):
            if holding == store.db.pool_size:
                break
            await asyncio.sleep(0.01)
        assert holding == store.db.pool_size   # every background connection is taken

        async def probe() -> bool:
            return for_an_ack()

        async def ack_work() -> tuple[object, bool]:
            later = asyncio.get_running_loop().create_task(probe(), context=outside_an_ack())
            return await store.policy.with_organisation("T1"), await later
        (policy, _), later_for_ack = await asyncio.wait_for(before_ack(ack_work), 10)
        assert policy is not None and later_for_ack is False
    finally:
        release.set()
        await asyncio.gather(*held)
        await store.close()


async def test_a_unit_that_begins_with_its_lock_holds_it_to_the_end_and_leaves_nothing_behind(pg_cluster):
    """A unit's BEGIN goes with its first statement, and with its advisory lock in one round
    trip: the lock is still held until that unit commits (a later unit on the same lock waits
    for it, then sees what it wrote); a unit that raised, or was cancelled, rolls back and its
    connection goes back to the pool outside any transaction."""
    from lumabot.store.dialects.postgres import PostgresDatabase
    from lumabot.store.schema import dedupe_keys

    url = await pg_cluster.new_database()
    db = PostgresDatabase(url, pool_size=2, ack_pool_size=1)
    await db.open()
    count = sa.select(sa.func.count()).select_from(dedupe_keys)
    try:
        locked, go_on = asyncio.Event(), asyncio.Event()

        async def first() -> None:
            async with db.write() as tx:
                await db.one_at_a_time(tx, "admit:T'1")   # (a quote in what it locks, too)
                locked.set()
                await go_on.wait()
                await tx.execute(sa.insert(dedupe_keys).values(key="first", created_at=1.0))

        async def second() -> int:
            async with db.write() as tx:
                await db.one_at_a_time(tx, "admit:T'1")
                return int(await tx.scalar(count))

        one = asyncio.ensure_future(first())
        await locked.wait()
        two = asyncio.ensure_future(second())
        done, _ = await asyncio.wait([two], timeout=0.3)   # (nothing may happen: it waits)
        assert not done
        go_on.set()
        await one
        assert await asyncio.wait_for(two, 10) == 1   # it waited, then counted what the first wrote

        class Boom(Exception):
            pass

        try:
            async with db.write() as tx:
                await db.one_at_a_time(tx, "admit:T2")
                await tx.execute(sa.insert(dedupe_keys).values(key="raised", created_at=1.0))
                raise Boom()
        except Boom:
            pass
        started = asyncio.Event()

        async def cancelled() -> None:
            async with db.write() as tx:
                await tx.execute(sa.insert(dedupe_keys).values(key="cancelled", created_at=1.0))
                started.set()
                await asyncio.Event().wait()

        task = asyncio.ensure_future(cancelled())
        await started.wait()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        for _ in range(4):   # every pooled connection, each outside a transaction
            async with db.write() as tx:
                assert await tx.scalar(sa.select(sa.func.txid_current_if_assigned())) is None
                assert await tx.scalar(count) == 1
        async with db.write() as tx:   # a unit that wrote nothing
            pass
    finally:
        await db.close()
