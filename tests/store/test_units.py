"""Units of work, for every store: each operation is atomic on its own, so one operation's
rollback never undoes another's write and a commit never commits another's half-done work,
however the coroutines interleave (on SQLite's one writer connection)."""

from __future__ import annotations

import asyncio

import pytest

from lumabot.jobs.models import Job, JobState, Session
from lumabot.jobs.policy import Limits
from lumabot.jobs.admission import AdmissionRules

from .conftest import job


async def test_a_rollback_never_undoes_another_operations_write(store):
    jobs = [job() for _ in range(40)]
    for j in jobs:
        assert (await store.jobs.create(j)).status == "created"
    assert await store.sessions.create(Session(team_id="T1", channel_id="C1", started_by="U1"))

    async def update(j: Job) -> None:
        j.state, j.generation_id, j.slack_file_id = JobState.GENERATING, f"gen-{j.id}", f"F{j.id}"
        await store.jobs.save(j)

    async def conflict() -> bool:  # a second running session in C1: rolled back
        return await store.sessions.create(Session(team_id="T1", channel_id="C1", started_by="U2"))

    async def duplicate() -> str:
        return (await store.jobs.create(job(), dedupe_key="same-event")).status

    work = []
    for j in jobs:
        work += [update(j), conflict(), duplicate()]
    results = await asyncio.gather(*work)
    assert results.count(False) == 40 and results.count("created") == 1 and results.count("duplicate") == 39
    for j in jobs:
        stored = await store.jobs.get(j.id)
        assert (stored.state, stored.generation_id, stored.slack_file_id) == (
            JobState.GENERATING, f"gen-{j.id}", f"F{j.id}")


async def test_a_commit_never_commits_another_operations_half_done_work(store):
    taken = job()
    assert (await store.jobs.create(taken)).status == "created"

    async def doomed(i: int) -> None:
        # Inserts its dedupe key, then fails on the job's primary key: the whole unit goes.
        with pytest.raises(Exception):
            await store.jobs.create(taken.model_copy(), dedupe_key=f"doomed-{i}")

    async def commit_often(i: int) -> bool:
        return await store.keys.claim(f"other-{i}")

    results = await asyncio.gather(*(f(i) for i in range(30) for f in (doomed, commit_often)))
    assert results.count(True) == 30
    for i in range(30):  # no half of a doomed unit was committed by someone else's commit
        assert await store.keys.claim(f"doomed-{i}")


async def test_admission_is_decided_in_the_insert_under_parallel_requests(store):
    rules = AdmissionRules(limits=Limits(max_queued_per_user=100, user_daily_images=7, daily_budget_usd=None), day_start=0.0, month_start=0.0)
    results = await asyncio.gather(*(store.jobs.create(job(), rules=rules) for _ in range(40)))
    assert [r.status for r in results].count("created") == 7
    refused = [r for r in results if r.status == "refused"]
    assert {r.refusal for r in refused} == {"daily_images"} and refused[0].counts.requested_today == 7


async def test_targeted_writes_leave_the_rest_of_the_row_alone(store):
    j = job()
    await store.jobs.create(j)
    stale = j.model_copy()
    await store.jobs.mark_deleted(j.id)
    j.state = JobState.DONE
    await store.jobs.save(j)  # a later full write by the engine from its own copy...
    stored = await store.jobs.get(j.id)
    assert stored.state == JobState.DONE and stored.deleted  # ...does not undo the delete
    session = Session(team_id="T1", channel_id="C1", started_by="U1")
    await store.sessions.create(session)
    assert await store.sessions.end(session.id, 123.0, "idle")
    await store.sessions.touch(session.id, 999.0)  # a prompt that raced the end
    ended = await store.sessions.get(session.id)
    assert ended.ended_at == 123.0 and ended.last_prompt_at != 999.0
    assert not await store.sessions.end(session.id, 456.0, "stopped:U1")
    assert stale.deleted is False


async def test_the_daily_sweep_runs_once_a_day_whichever_replica_asks(store):
    from lumabot.admin import Retention
    from lumabot.jobs.models import JobState
    from lumabot.jobs.policy import Limits
    from lumabot.jobs.admission import Prices
    from lumabot.quotas import Quotas

    now = [100 * 86400.0]
    quotas = Quotas(store, Prices(0.04, 0.04, 0.1, 0.1, 0.0), Limits(5, None, None, retention_days=30))
    replicas = [Retention(store, quotas, clock=lambda: now[0]) for _ in range(2)]
    old = job(created_at=now[0] - 31 * 86400, state=JobState.DONE, settled=True)
    await store.jobs.create(old)
    first = await replicas[0].sweep_if_due()
    assert first is not None and first.jobs == 1
    assert await replicas[1].sweep_if_due() is None   # the same day: already swept
    now[0] += 86400
    assert await replicas[1].sweep_if_due() is not None  # the next day


async def test_a_unit_cancelled_as_it_takes_the_writer_leaves_the_writer_usable(tmp_path):
    """SQLite's one writer: a unit that waited for it and is cancelled (an ack's deadline, a
    stop) as it takes it, its BEGIN in flight, writes nothing, and the writer connection is not
    left inside a transaction (every later write was refused: "cannot start a transaction
    within a transaction")."""
    import sqlalchemy as sa

    from lumabot.store.dialects.sqlite import SQLiteDatabase
    from lumabot.store.schema import dedupe_keys

    db = SQLiteDatabase(f"sqlite:///{tmp_path / 'units.db'}")
    await db.open()
    try:
        holding, release, waiting = asyncio.Event(), asyncio.Event(), asyncio.Event()

        async def first() -> None:
            async with db.write():
                holding.set()
                await release.wait()

        async def second() -> None:
            waiting.set()
            async with db.write() as tx:
                await tx.execute(sa.insert(dedupe_keys).values(key="second", created_at=1.0))

        one = asyncio.ensure_future(first())
        await holding.wait()
        two = asyncio.ensure_future(second())
        await waiting.wait()
        await asyncio.sleep(0)            # (it waits for the writer)
        release.set()
        await one                         # the writer is free, and granted to the second unit...
        two.cancel()                      # ... as it is cancelled
        with pytest.raises(asyncio.CancelledError):
            await two
        async with asyncio.timeout(10):   # the writer is free again
            async with db.write() as tx:
                assert await tx.scalar(sa.select(sa.func.count()).select_from(dedupe_keys)) == 0
    finally:
        await db.close()


async def test_a_read_begun_after_a_commit_sees_it_while_other_reads_are_in_flight(store):
    """Reads share a connection (SQLite's one reader): a read in flight must not lend its older
    snapshot to one begun after a commit. (A job's file id, recorded before its upload, was once
    read back as missing.)"""
    j = job()
    await store.jobs.create(j)
    reads = 0
    done = asyncio.Event()

    async def meanwhile() -> None:
        nonlocal reads
        while not done.is_set():
            await store.jobs.get(j.id)
            reads += 1

    others = [asyncio.create_task(meanwhile()) for _ in range(3)]
    try:
        for i in range(100):
            j.slack_file_id = f"F{i}"
            await store.jobs.save(j)
            assert (await store.jobs.get(j.id)).slack_file_id == f"F{i}", f"write {i} not seen"
    finally:
        done.set()
        await asyncio.gather(*others)
    assert reads >= 100  # (the other reads did run alongside)
