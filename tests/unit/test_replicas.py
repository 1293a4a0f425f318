"""Several replicas on one PostgreSQL database (in one process, over in-memory ports): a dead
replica's jobs are taken over, a paused one is fenced, a stopping one hands its jobs back."""

from __future__ import annotations

from dataclasses import replace

import pytest

from lumabot.jobs.models import JobState
from lumabot.store import open_store
from lumabot.testing.ports import MemoryLuma

from .conftest import CONFIG, eventually, new_job
from .test_runner import must_wait_after_all


@pytest.fixture
async def replicas(make_rig, pg_cluster):
    """Two runners, A and B, on one fresh database and one Luma."""
    url = await pg_cluster.new_database()
    luma = MemoryLuma()

    async def make(name: str, takeover: float, concurrency: int = 4, shared: bool = False):
        return await make_rig(store=open_store(url), luma=luma, concurrency=concurrency, shared=shared,
                              config=replace(CONFIG, replica_id=name, takeover_seconds=takeover))
    return make


async def generating_on_a(replicas, *, takeover: float):
    """Replicas A and B running; a job on A, its generation held at Luma."""
    a = await replicas("A", takeover=takeover)
    b = await replicas("B", takeover=takeover)
    await a.runner.resume()
    await b.runner.resume()
    a.luma.holding = True
    job = new_job()
    await a.runner.submit(job)
    await eventually(async_state(a.store, job.id, JobState.GENERATING))
    return a, b, job


def crash(rig) -> None:
    """What kill -9 leaves: tasks gone, no heartbeat, nothing handed back."""
    rig.runner._leases.cancel()
    for task in rig.runner._tasks.values():
        task.cancel()


async def test_a_dead_replicas_jobs_are_taken_over_and_delivered_once(replicas):
    a, b, job = await generating_on_a(replicas, takeover=0.5)
    crash(a)
    a.luma.holding = False
    done = await b.settled(job.id)
    assert done.state == JobState.DONE and done.owner == "B" and done.epoch == 1
    assert len(a.luma.creates) == 1  # polled by B, not created again
    assert len(b.notifier.uploads) == 1 and a.notifier.uploads == []


async def test_a_paused_replica_cannot_act_on_jobs_taken_from_it(replicas):
    a, b, job = await generating_on_a(replicas, takeover=0.5)
    a.runner._leases.cancel()  # A stops heartbeating (SIGSTOP, a long pause) but keeps its task

    async def taken():
        stored = await b.store.jobs.get(job.id)
        return stored.owner == "B"
    await eventually(taken)
    a.luma.holding = False  # both see the generation completed; only the owner may go on
    done = await b.settled(job.id)
    assert done.state == JobState.DONE
    await eventually(lambda: not a.runner._tasks)  # A's task stopped itself (fenced)
    assert a.notifier.uploads == [] and len(b.notifier.uploads) == 1


async def test_a_stopping_replica_hands_its_jobs_back_at_once(replicas):
    a, b, job = await generating_on_a(replicas, takeover=60)  # no takeover by timeout here
    await a.runner.drain(timeout=1)
    a.luma.holding = False
    done = await b.settled(job.id)
    assert done.owner == "B" and done.state == JobState.DONE
    assert len(a.luma.creates) == 1 and len(b.notifier.uploads) == 1


async def test_a_restarted_replica_resumes_its_own_jobs_at_once(replicas):
    a = await replicas("A", takeover=60)
    await a.runner.resume()
    a.luma.holding = True
    job = new_job()
    await a.runner.submit(job)
    await eventually(async_state(a.store, job.id, JobState.GENERATING))
    crash(a)
    again = await replicas("A", takeover=60)  # same name, heartbeat still fresh
    assert await again.runner.resume() == 1
    again.luma.holding = False
    assert (await again.settled(job.id)).state == JobState.DONE


def async_state(store, job_id, state):
    async def check():
        stored = await store.jobs.get(job_id)
        return stored is not None and stored.state == state
    return check


async def test_a_job_cancelled_through_another_replica_leaves_the_line_at_once(replicas):
    a = await replicas("A", takeover=60, concurrency=1)
    b = await replicas("B", takeover=60)
    await a.runner.resume()
    await b.runner.resume()
    a.luma.holding = True
    first, second = new_job("first"), new_job("second", user="U2")
    await a.runner.submit(first)
    await eventually(lambda: a.luma.creates)
    await a.runner.submit(second)
    await eventually(lambda: a.scheduler.waiting == 1)  # the second waits for A's only slot
    assert await b.store.jobs.request_cancel(second.id, "U2")  # the click reached replica B
    b.runner.cancel(second.id, "U2")  # B does not run it: nothing happens there
    done = await a.settled(second.id)  # A notices within a second, long before its turn
    assert done.state == JobState.CANCELLED and [p.prompt for p, _ in a.luma.creates] == ["first"]
    assert (await a.store.jobs.get(first.id)).state == JobState.GENERATING  # its turn never came
    a.luma.holding = False


async def test_jobs_waiting_for_a_shared_slot_hold_no_task_until_their_turn(replicas):
    """Luma's slots in the database (several replicas): a job waiting for one is parked, no
    task, until its grant is noticed; then it is loaded, sent and delivered. (Turns across
    people: test_shared_scheduler.py.)"""
    a = await replicas("A", takeover=60, concurrency=1, shared=True)
    await a.runner.resume()
    a.luma.holding = True
    jobs = [new_job("first", user="U1"), new_job("second", user="U2"), new_job("third", user="U3")]
    for job in jobs:
        job.status_ts = "1.0"  # (its status message is up: it may wait without a task)
        await a.runner.submit(job)
    await eventually(lambda: a.scheduler.parked == 2 and len(a.runner._tasks) == 1)  # (their tasks end)
    assert a.runner.active == 3
    a.luma.holding = False
    for job in jobs:
        assert (await a.settled(job.id)).state == JobState.DONE
    assert [p.prompt for p, _ in a.luma.creates] == ["first", "second", "third"]
    await eventually(lambda: a.scheduler.parked == 0 and not a.runner._tasks)  # (done callbacks run)


async def test_a_job_that_must_wait_for_a_shared_slot_after_all_records_its_status_message_first(replicas, monkeypatch):
    """As test_runner.py's: a slot looked free when the status message went out, another job
    took it; the job parks in the database's line with its status message's ts stored."""
    a = await replicas("A", takeover=60, concurrency=1, shared=True)
    await a.runner.resume()
    await must_wait_after_all(a, monkeypatch)


async def test_polls_are_planned_again_when_a_shared_line_begins(replicas, monkeypatch):
    """With Luma's slots in the database, the backlog that re-plans polls is seen at a tick."""
    a = await replicas("A", takeover=60, concurrency=1, shared=True)
    await a.runner.resume()
    asked: list[bool] = []

    def next_poll_age(key, last_age, *, backlog, polling=1):
        asked.append(backlog)
        return (last_age or 0.0) + (0.0 if backlog else 600.0)

    monkeypatch.setattr(a.runner.polls, "next_poll_age", next_poll_age)
    first = new_job("alone", user="U1")
    await a.runner.submit(first)
    await eventually(lambda: asked == [False])
    second = new_job("waits", user="U2")
    second.status_ts = "1.0"
    await a.runner.submit(second)
    assert (await a.settled(first.id)).state == JobState.DONE
    assert asked[:2] == [False, True]
