"""Luma's limits held across replicas (runner/shared_scheduler.py on PostgreSQL): two
schedulers on one database behave as one."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from lumabot.runner.shared_scheduler import SharedScheduler
from lumabot.store import open_store
from lumabot.store.schema import luma_turns

from .conftest import eventually, new_job


@pytest.fixture
async def pair(pg_cluster):
    url = await pg_cluster.new_database()
    made: list[tuple[object, SharedScheduler]] = []

    async def make(concurrency: int, rate_window: float = 60.0, account: str = "default",
                   replica: str | None = None) -> SharedScheduler:
        store = open_store(url)
        await store.open()
        scheduler = SharedScheduler(store, concurrency, replica_id=replica or f"replica-{len(made)}",
                                    rate_window=rate_window, account=account)
        made.append((store, scheduler))
        return scheduler

    yield make
    for store, scheduler in made:
        await scheduler.stop()
        await store.close()


class Holders:
    """Jobs that take a slot and keep it until told to let go."""

    def __init__(self) -> None:
        self.granted: list[str] = []
        self.tasks: list[asyncio.Task] = []

    def start(self, scheduler: SharedScheduler, job_id: str, user: str) -> None:
        async def hold() -> None:
            # The job, owned by this replica (slots are only touched for jobs one owns).
            await scheduler.store.jobs.create(new_job(user=user).model_copy(
                update={"id": job_id, "owner": scheduler.replica_id}))
            await scheduler.acquire(job_id, user)
            self.granted.append(job_id)
        self.tasks.append(asyncio.create_task(hold()))


async def settle(*schedulers: SharedScheduler) -> None:
    """Every scheduler has looked at the line once more (nothing left to grant right now)."""
    for _ in range(2):
        for s in schedulers:
            await s.tick()


async def test_two_replicas_never_hold_more_than_the_concurrency_together(pair):
    a, b = await pair(3), await pair(3)
    holders = Holders()
    for i in range(12):
        holders.start(a if i % 2 else b, f"job{i}", f"U{i}")
    await eventually(lambda: len(holders.granted) == 3)
    await settle(a, b)
    assert len(holders.granted) == 3  # not one more, whichever replica dispatches
    for n in range(4, 13):
        first = holders.granted[n - 4]
        (a if first in {f"job{i}" for i in range(1, 12, 2)} else b).release(first)
        await eventually(lambda: len(holders.granted) == n)
        await settle(a, b)
        assert len(holders.granted) == n
    assert await a.store.slots.counts() == (0, 3)  # nobody waits, three slots held


async def test_each_luma_account_has_its_own_slots_line_and_pauses_across_replicas(pair):
    """A workspace with its own Luma key is an account of its own: the shared account's full
    slots, line and 429 pause do not hold it back (nor it them)."""
    shared_a, shared_b = await pair(1), await pair(1)
    # (a replica has one scheduler per account: each hears of its own grants only)
    own_a = await pair(1, account="T9", replica=shared_a.replica_id)
    own_b = await pair(1, account="T9", replica=shared_b.replica_id)
    holders = Holders()
    holders.start(shared_a, "s1", "T1/alice")
    holders.start(shared_b, "s2", "T1/bob")
    await eventually(lambda: len(holders.granted) == 1)      # the shared account's one slot
    shared_a.rate_limited(3600)                              # and Luma paused it
    holders.start(own_a, "o1", "T9/carol")
    await eventually(lambda: "o1" in holders.granted)        # the other account goes at once
    holders.start(own_b, "o2", "T9/dan")
    await eventually(lambda: _waiting(own_a, "o2"))
    await settle(shared_a, shared_b, own_a, own_b)
    assert sorted(holders.granted) == sorted(["o1", holders.granted[0]])   # one slot each, no more
    assert await shared_a.slots.counts() == (1, 1) and await own_a.slots.counts() == (1, 1)
    assert [j for j, _ in await own_b.front(10)] == ["o2"]
    own_a.release("o1")
    await eventually(lambda: "o2" in holders.granted)        # its own line moves; the paused one does not
    await settle(shared_a, shared_b, own_a, own_b)
    assert len(holders.granted) == 3


async def test_a_replica_hears_of_each_accounts_grants_through_that_accounts_scheduler(pair):
    """One replica runs one scheduler per account: a grant in one account is told to that
    account's scheduler, never taken (and lost) by another's."""
    shared = await pair(1)
    store = shared.store
    own = store.slots.for_account("T9")
    await store.jobs.create(new_job(user="T9/carol").model_copy(update={"id": "o1", "owner": shared.replica_id}))
    await own.enqueue("o1", "T9/carol", front=False, replica_id=shared.replica_id)
    granted, _ = await own.dispatch(concurrency=1, rate_window=60.0, probe_period=900.0)
    assert granted == ["o1"]
    assert await store.slots.granted_to(shared.replica_id) == []     # the default account's scheduler
    assert await own.granted_to(shared.replica_id) == ["o1"]          # the account's own, once
    assert await own.granted_to(shared.replica_id) == []


async def test_a_replica_with_nothing_in_an_account_stops_looking_at_its_line(pair, monkeypatch):
    """Each replica runs a scheduler per Luma account: one with nothing waiting or in flight in
    that account leaves its line to the replicas that have (until it asks again)."""
    from lumabot.runner import shared_scheduler

    monkeypatch.setattr(shared_scheduler, "TICK", 0.01)
    busy, idle = await pair(1), await pair(1)
    looks = {busy.replica_id: 0, idle.replica_id: 0}
    for s in (busy, idle):
        dispatch = s.slots.dispatch

        async def counted(*a, _dispatch=dispatch, _id=s.replica_id, **kw):
            looks[_id] += 1
            return await _dispatch(*a, **kw)
        s.slots.dispatch = counted
    holders = Holders()
    holders.start(idle, "i1", "T1/ida")
    await eventually(lambda: holders.granted == ["i1"])
    idle.release("i1")
    await eventually(lambda: not idle._ops and not idle._holding)
    holders.start(busy, "b1", "T1/bea")          # busy holds its slot from now on
    await eventually(lambda: holders.granted == ["i1", "b1"])
    after = looks[idle.replica_id]
    before_busy = looks[busy.replica_id]
    await eventually(lambda: looks[busy.replica_id] >= before_busy + 20)   # busy looks every TICK...
    assert looks[idle.replica_id] <= after + 1                             # ...idle does not
    holders.start(idle, "i2", "T1/ida")          # asking again: it looks again
    busy.release("b1")
    await eventually(lambda: holders.granted[-1] == "i2")


async def test_people_are_served_in_turn_across_replicas(pair):
    a, b = await pair(1), await pair(1)
    holders = Holders()
    holders.start(a, "alice 1", "UA")
    await eventually(lambda: holders.granted == ["alice 1"])
    for replica, job, user in [(a, "alice 2", "UA"), (b, "alice 3", "UA"), (a, "alice 4", "UA"),
                               (b, "bob 1", "UB"), (a, "carol 1", "UC"), (b, "bob 2", "UB")]:
        holders.start(replica, job, user)
        await eventually(lambda: _waiting(a, job))
    await a.tick()
    assert dict(await a.front(10**6)) == {"alice 2": 1, "bob 1": 2, "carol 1": 3, "alice 3": 4, "bob 2": 5,
                             "alice 4": 6}
    for n in range(2, 8):
        last = holders.granted[-1]
        for s in (a, b):
            s.release(last)  # (only the replica that holds it writes)
        await eventually(lambda: len(holders.granted) == n)
    assert holders.granted == ["alice 1", "alice 2", "bob 1", "carol 1", "alice 3", "bob 2", "alice 4"]
    # Nobody waits: nobody is left in the turn order (a pick looks only at people with jobs waiting).
    assert await a.store.db.rows(sa.select(luma_turns.c.user_key)) == []


async def test_workspaces_take_turns_then_their_people_across_replicas(pair):
    """As the in-process scheduler: a busy workspace does not starve a quiet one."""
    from lumabot.store.schema import luma_team_turns

    a, b = await pair(1), await pair(1)
    holders = Holders()
    holders.start(a, "a1", "TA/alice")
    await eventually(lambda: holders.granted == ["a1"])
    for replica, job, key in [(a, "a2", "TA/alice"), (b, "b1", "TA/bob"), (a, "c1", "TA/carol"),
                              (b, "b2", "TA/bob"), (a, "z1", "TZ/zoe"), (b, "z2", "TZ/zoe"), (a, "a3", "TA/alice")]:
        holders.start(replica, job, key)
        await eventually(lambda: _waiting(a, job))
    expected = ["a2", "z1", "b1", "z2", "c1", "a3", "b2"]
    assert [job for job, _ in await a.front(10**6)] == expected
    for n in range(2, 9):
        last = holders.granted[-1]
        for s in (a, b):
            s.release(last)
        await eventually(lambda: len(holders.granted) == n)
    assert holders.granted == ["a1", *expected]
    assert await a.store.db.rows(sa.select(luma_team_turns.c.team)) == []


async def test_the_requests_per_minute_window_holds_across_replicas(pair):
    # A window far longer than the test: what holds the line back is the allowance, not time.
    a, b = await pair(10, rate_window=600.0), await pair(10, rate_window=600.0)
    await a.store.slots.observe_rate(3, 2, None, 600.0)  # learned from a create's headers
    holders = Holders()
    for i in range(5):
        holders.start(a if i % 2 else b, f"job{i}", f"U{i}")
    await eventually(lambda: len(holders.granted) == 3)
    await settle(a, b)
    assert len(holders.granted) == 3  # the window's allowance, for both replicas together
    await a.store.slots.observe_rate(5, 2, None, 600.0)  # Luma announces a larger allowance
    await eventually(lambda: len(holders.granted) == 5)


async def test_the_requests_per_minute_window_moves_on(pair):
    a, b = await pair(10, rate_window=0.5), await pair(10, rate_window=0.5)
    await a.store.slots.observe_rate(2, 1, None, 0.5)
    holders = Holders()
    for i in range(5):
        holders.start(a if i % 2 else b, f"job{i}", f"U{i}")
    await eventually(lambda: len(holders.granted) == 5)  # two per window, as the window moves


async def test_a_pause_after_a_429_holds_for_every_replica(pair):
    a, b = await pair(5), await pair(5)
    a.rate_limited(3600)
    await a.tick()  # the note is written
    holders = Holders()
    holders.start(b, "job", "U1")
    await eventually(lambda: _waiting(b, "job"))
    await settle(a, b)
    assert holders.granted == []
    _, wait = await b.store.slots.dispatch(concurrency=5, rate_window=60, probe_period=900)
    assert wait > 3500
    holders.tasks[0].cancel()  # (it would wait the hour)
    await asyncio.gather(*holders.tasks, return_exceptions=True)


async def _waiting(scheduler: SharedScheduler, job_id: str) -> bool:
    return job_id in await scheduler.slots.front(10**6)


async def test_a_replica_cannot_queue_or_free_the_slot_of_a_job_it_does_not_own(pair):
    from lumabot.store import JobLost

    a, b = await pair(1), await pair(1)
    holders = Holders()
    holders.start(a, "job", "U1")
    await eventually(lambda: holders.granted == ["job"])
    with pytest.raises(JobLost):
        await b.acquire("job", "U1")  # b does not own it
    b._holding.add("job")
    b.release("job")  # a stale release: ignored by the store
    await b.tick()
    assert (await a.store.slots.counts())[1] == 1


async def test_a_job_released_and_queued_again_gets_its_slot(pair):
    """After a 429 a job frees its slot and queues again at once: the release must not take
    the new place in line away (writes happen in the order they were asked for)."""
    a = await pair(1)
    holders = Holders()
    holders.start(a, "job", "U1")
    await eventually(lambda: holders.granted == ["job"])
    a.release("job")
    await asyncio.wait_for(a.acquire("job", "U1", front=True), 5)
    assert (await a.store.slots.counts())[1] == 1


async def test_too_many_concurrent_lowers_the_ceiling_for_every_replica(pair):
    """Luma says "too many concurrent jobs" to a create of replica b while a holds two slots:
    the account holds no more than those two, for both replicas, until the probe period ends."""
    a, b = await pair(5), await pair(5)
    holders = Holders()
    for job in ("a1", "a2"):
        holders.start(a, job, job)
    holders.start(b, "b1", "b1")
    await eventually(lambda: len(holders.granted) == 3)
    b.release("b1")
    b.too_many_concurrent("b1", 1.0)
    await b.tick()
    holders.start(a, "a3", "a3")
    holders.start(b, "b2", "b2")
    await eventually(lambda: _waiting(a, "a3"))
    await eventually(lambda: _waiting(b, "b2"))
    await settle(a, b)
    assert sorted(holders.granted) == ["a1", "a2", "b1"]  # two in flight: the learned ceiling
    a.release("a1")
    await eventually(lambda: len(holders.granted) == 4)  # one finished, one more may go
    await settle(a, b)
    assert len(holders.granted) == 4


async def test_a_parked_job_is_woken_on_its_replica_when_another_frees_the_slot(pair):
    """A job waiting without a task (parked) on replica b gets the slot replica a frees: b is
    told once, through the grant's record, and the line is empty again."""
    a, b = await pair(1), await pair(1)
    woken: list[str] = []
    b.on_grant = woken.append
    holders = Holders()
    holders.start(a, "first", "U1")
    await eventually(lambda: holders.granted == ["first"])
    await b.store.jobs.create(new_job(user="U2").model_copy(update={"id": "parked", "owner": b.replica_id}))
    await b.tick()  # b has seen the slot taken
    assert b.park("parked", "U2") and b.parked == 1
    await eventually(lambda: _waiting(a, "parked"))
    await settle(a, b)
    assert woken == []
    a.release("first")
    await eventually(lambda: woken == ["parked"])
    await settle(a, b)
    assert woken == ["parked"] and b.parked == 0  # told once
    assert await b.store.slots.counts() == (0, 1)


async def test_an_unparked_job_leaves_the_line(pair):
    a = await pair(1)
    a.on_grant = lambda job_id: None
    holders = Holders()
    holders.start(a, "first", "U1")
    await eventually(lambda: holders.granted == ["first"])
    await a.store.jobs.create(new_job(user="U2").model_copy(update={"id": "second", "owner": a.replica_id}))
    assert a.park("second", "U2", always=True)
    await eventually(lambda: _waiting(a, "second"))
    assert a.unpark("second") and not a.unpark("second")
    await a.tick()
    assert await a.store.slots.counts() == (0, 1)


async def test_the_front_of_the_line_reads_only_what_it_returns(pair):
    """slots_front: the first of each person's line in turn order, then the second of each..."""
    a = await pair(1)
    holders = Holders()
    holders.start(a, "held", "U0")
    await eventually(lambda: holders.granted == ["held"])
    for i in range(3):
        for user in ("UA", "UB"):
            holders.start(a, f"{user} {i}", user)
            await eventually(lambda: _waiting(a, f"{user} {i}"))
    assert await a.store.slots.front(3) == ["UA 0", "UB 0", "UA 1"]
    assert await a.store.slots.counts() == (6, 1)
    for t in holders.tasks:
        t.cancel()
    await asyncio.gather(*holders.tasks, return_exceptions=True)


async def test_the_front_cut_short_is_the_start_of_the_whole_line(pair):
    """slots_front reads only the first `limit` workspaces, people and jobs of each: whatever
    the limit, it returns the start of the whole line (workspaces, people and own lines of
    different lengths, and a retry at the front of its person's line)."""
    a = await pair(1)
    holders = Holders()
    holders.start(a, "held", "T0/U0")
    await eventually(lambda: holders.granted == ["held"])
    people = {"TA": ["ann", "abe", "ada"], "TB": ["bob"], "TC": ["cat", "cid"]}
    for i in range(3):
        for team, names in people.items():
            for name in names[: 3 - i]:  # fewer people with each round: own lines of 1-3 jobs
                job = f"{team}/{name} {i}"
                holders.start(a, job, f"{team}/{name}")
                await eventually(lambda: _waiting(a, job))
    retry = "TC/cid again"
    await a.store.jobs.create(new_job(user="TC/cid").model_copy(update={"id": retry, "owner": a.replica_id}))
    await a.store.slots.enqueue(retry, "TC/cid", front=True, replica_id=a.replica_id)
    whole = await a.store.slots.front(10**6)
    assert len(whole) == 15 and whole.index(retry) < whole.index("TC/cid 0")
    assert whole[:3] == ["TA/ann 0", "TB/bob 0", "TC/cat 0"]   # one of each workspace first
    for limit in range(1, len(whole) + 1):
        assert await a.store.slots.front(limit) == whole[:limit], limit
    for t in holders.tasks:
        t.cancel()
    await asyncio.gather(*holders.tasks, return_exceptions=True)


async def test_jobs_that_join_together_are_written_at_once_in_the_line_one_process_keeps(pair):
    """A burst of requests: the jobs parked meanwhile join the shared line in one transaction
    (not one each, which left the line tens of seconds behind a burst of thousands), in the
    order the in-process scheduler gives the same arrivals: workspaces and people already
    waiting keep their turn, new ones join at the back, a retry goes to its person's front,
    and a job this replica does not own is left out (JobLost) without holding the others up."""
    from lumabot.runner.scheduler import Scheduler

    a = await pair(1)
    one = Scheduler(1)   # the same arrivals in one process
    a.on_grant = one.on_grant = lambda job_id: None
    holders = Holders()
    holders.start(a, "held", "T0/U0")
    await eventually(lambda: holders.granted == ["held"])
    await one.acquire("held", "T0/U0")
    writes: list[int] = []
    enqueue_many = a.slots.enqueue_many

    async def counted(batch, *, replica_id):
        writes.append(len(batch))
        return await enqueue_many(batch, replica_id=replica_id)
    a.slots.enqueue_many = counted   # type: ignore[method-assign]

    before = [("TA/ann 1", "TA/ann", False), ("TB/bob 1", "TB/bob", False), ("TA/abe 1", "TA/abe", False)]
    burst = [("TC/cat 1", "TC/cat", False), ("TA/ann 2", "TA/ann", False), ("TB/bob 0", "TB/bob", True),
             ("TA/ada 1", "TA/ada", False), ("TC/cat 2", "TC/cat", False), ("TB/bea 1", "TB/bea", False),
             ("TD/dan 1", "TD/dan", False), ("TA/abe 2", "TA/abe", False)]
    burst += [(f"TE/u{i % 3} {i}", f"TE/u{i % 3}", False) for i in range(20)]
    for n, jobs in enumerate((before, burst)):
        theirs = f"theirs {n}"
        for job_id, key, _ in jobs:
            await a.store.jobs.create(new_job(user=key).model_copy(update={"id": job_id, "owner": a.replica_id}))
        await a.store.jobs.create(new_job(user="TA/ann").model_copy(update={"id": theirs, "owner": "replica-x"}))
        for job_id, key, front in jobs[:2] + [(theirs, "TA/ann", False)] + jobs[2:]:
            assert a.park(job_id, key, front=front, always=True)
        for job_id, key, front in jobs:
            assert one.park(job_id, key, front=front, always=True)
        await a.tick()
        assert theirs not in a._parked and a.parked == sum(map(len, (before, burst)[:n + 1]))
    assert writes == [len(before) + 1, len(burst) + 1]   # one transaction per burst
    assert await a.front(10**6) == await one.front(10**6)
    assert (await a.store.slots.counts())[0] == len(before) + len(burst)
    for t in holders.tasks:
        t.cancel()
    await asyncio.gather(*holders.tasks, return_exceptions=True)


async def test_jobs_joining_a_full_line_do_not_make_every_replica_look_at_it(pair, monkeypatch):
    """Under a backlog every slot is taken: a job that joins the line is written, and the
    replica does not look at the whole line again for it (nothing could be granted). A slot
    freed by another replica still reaches the line's next job at once."""
    import lumabot.runner.shared_scheduler as shared

    monkeypatch.setattr(shared, "TICK", 60.0)   # no look because time passed, during the test
    a, b = await pair(1), await pair(1)
    await a.store.db.listen()   # (a replica's waits are woken to look once when it begins to listen)
    a.on_grant = b.on_grant = lambda job_id: None
    holders = Holders()
    holders.start(b, "held", "U0")
    await eventually(lambda: holders.granted == ["held"])
    await a.tick()   # a has seen every slot taken
    looks: list[str] = []
    dispatch = a.slots.dispatch

    async def counted(**kw):
        looks.append("look")
        return await dispatch(**kw)
    a.slots.dispatch = counted   # type: ignore[method-assign]
    for i in range(5):
        job = f"waits {i}"
        await a.store.jobs.create(new_job(user=f"U{i}").model_copy(update={"id": job, "owner": a.replica_id}))
        assert a.park(job, f"U{i}", always=True)
        await eventually(lambda: _waiting(b, job))
    assert looks == []
    granted: list[str] = []
    a.on_grant = granted.append
    b.release("held")
    await eventually(lambda: granted == ["waits 0"])
    assert looks


async def test_a_slot_freed_while_the_scheduler_looks_at_the_line_is_written_at_once(pair, monkeypatch):
    """A release (a generation seen finished) that comes while a look at the line is under way
    wakes the scheduler again: it is not left until the next periodic look (TICK, a second;
    here made far longer than the test)."""
    from lumabot.runner import shared_scheduler

    monkeypatch.setattr(shared_scheduler, "TICK", 600.0)
    a = await pair(1)
    holders = Holders()
    holders.start(a, "first", "T1/ann")
    await eventually(lambda: holders.granted == ["first"])
    holders.start(a, "second", "T1/bob")
    await eventually(lambda: _waiting(a, "second"))
    counts = a.slots.counts
    released: list[str] = []

    async def counts_while_released() -> tuple[int, int]:
        if not released:   # the generation finishes during this look, after its writes
            released.append("first")
            a.release("first")
        return await counts()

    monkeypatch.setattr(a.slots, "counts", counts_while_released)
    a.observe_rate(None, None, None)   # something to write: a look at the line
    await eventually(lambda: released)
    await eventually(lambda: holders.granted == ["first", "second"])
