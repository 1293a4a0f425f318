"""Admission to Luma (runner/scheduler.py) on a fake clock: slots, round-robin fairness,
learned rate allowance, 429s."""

from __future__ import annotations

import asyncio

import pytest

from lumabot.runner.scheduler import Scheduler


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def granted(scheduler: Scheduler, *requests: tuple[str, str]) -> tuple[list[str], list[asyncio.Task]]:
    """Ask for a slot for each (job, user) in turn; the jobs let through so far, in order."""
    order: list[str] = []

    async def one(job_id: str, user: str) -> None:
        await scheduler.acquire(job_id, user)
        order.append(job_id)

    tasks = []
    for job_id, user in requests:
        tasks.append(asyncio.create_task(one(job_id, user)))
        await asyncio.sleep(0)
    await asyncio.sleep(0)
    return order, tasks


async def test_at_most_concurrency_slots_and_a_freed_slot_goes_at_once():
    s = Scheduler(2, clock=Clock())
    order, tasks = await granted(s, ("a", "U1"), ("b", "U2"), ("c", "U3"))
    assert order == ["a", "b"] and s.waiting == 1
    s.release("a")
    await asyncio.sleep(0)
    assert order == ["a", "b", "c"] and s.in_flight == 2
    await asyncio.gather(*tasks)


async def test_waiting_jobs_are_served_round_robin_across_people():
    s = Scheduler(1, clock=Clock())
    order, tasks = await granted(s, ("alice 1", "UA"), ("alice 2", "UA"), ("alice 3", "UA"),
                                 ("alice 4", "UA"), ("bob 1", "UB"), ("carol 1", "UC"), ("bob 2", "UB"))
    assert dict(await s.front(10**6)) == {"alice 2": 1, "bob 1": 2, "carol 1": 3, "alice 3": 4, "bob 2": 5, "alice 4": 6}
    for _ in range(6):
        s.release(order[-1])
        await asyncio.sleep(0)
    assert order == ["alice 1", "alice 2", "bob 1", "carol 1", "alice 3", "bob 2", "alice 4"]
    await asyncio.gather(*tasks)


async def test_workspaces_take_turns_then_their_people():
    """A busy workspace (three people, many images) and a quiet one (one person): the quiet one
    gets every other slot, and inside the busy one its people take turns."""
    s = Scheduler(1, clock=Clock())
    order, tasks = await granted(s, ("a1", "TA/alice"), ("a2", "TA/alice"), ("b1", "TA/bob"), ("c1", "TA/carol"),
                                 ("b2", "TA/bob"), ("z1", "TZ/zoe"), ("z2", "TZ/zoe"), ("a3", "TA/alice"))
    expected = ["a2", "z1", "b1", "z2", "c1", "a3", "b2"]
    assert [job for job, _ in await s.front(10**6)] == expected
    for _ in expected:
        s.release(order[-1])
        await asyncio.sleep(0)
    assert order == ["a1", *expected]
    await asyncio.gather(*tasks)


async def test_the_same_person_id_in_two_workspaces_is_two_people():
    s = Scheduler(1, clock=Clock())
    order, tasks = await granted(s, ("t1 a", "T1/U1"), ("t1 b", "T1/U1"), ("t2 a", "T2/U1"), ("t1 c", "T1/U1"))
    assert [job for job, _ in await s.front(10)] == ["t1 b", "t2 a", "t1 c"]   # not both of T1's U1 first
    for _ in range(3):
        s.release(order[-1])
        await asyncio.sleep(0)
    await asyncio.gather(*tasks)


async def test_a_retried_job_goes_to_the_front_of_the_line():
    s = Scheduler(1, clock=Clock())
    order, tasks = await granted(s, ("a", "U1"), ("b", "U2"))
    retry = asyncio.create_task(s.acquire("again", "U3", front=True))
    await asyncio.sleep(0)
    assert dict(await s.front(10**6)) == {"again": 1, "b": 2}
    s.release("a")
    await retry  # granted before b
    assert order == ["a"] and s.in_flight == 1
    s.release("again")
    await asyncio.gather(*tasks)
    assert order == ["a", "b"]


async def test_the_parked_job_granted_next_is_known_whatever_the_turns():
    """What the runner reads ahead of its turn is the job the next free slot goes to."""
    s = Scheduler(1, clock=Clock())
    grants: list[str] = []
    s.on_grant = grants.append
    assert s.next_parked() is None
    assert not s.park("first", "TA/alice")  # a slot is free: it acquires instead
    await s.acquire("first", "TA/alice")
    for job_id, person in (("a2", "TA/alice"), ("a3", "TA/alice"), ("b1", "TA/bob"), ("z1", "TZ/zoe")):
        assert s.park(job_id, person)
    retry = asyncio.create_task(s.acquire("again", "TR/rita", front=True))  # a task waits for it
    await asyncio.sleep(0)
    assert s.next_parked() is None   # the head of the line is not parked
    s.release("first")
    await retry
    running = "again"
    for _ in range(4):
        expected = s.next_parked()
        assert expected is not None
        s.release(running)
        assert grants[-1] == expected
        running = expected
    assert grants == ["a2", "z1", "b1", "a3"] and s.next_parked() is None
    s.park("z2", "TZ/zoe")
    assert s.unpark("z2") and s.next_parked() is None


async def test_submissions_are_paced_under_the_learned_rate_allowance():
    clock = Clock()
    s = Scheduler(100, rate_window=60.0, clock=clock)
    s.observe_rate(limit=3, remaining=2, reset_at_unix=None)
    order, tasks = await granted(s, *[(f"j{i}", f"U{i}") for i in range(5)])
    assert order == ["j0", "j1", "j2"]  # the allowance of a window
    clock.now += 59.0
    s.release("j0")  # (any event looks again)
    await asyncio.sleep(0)
    assert len(order) == 3
    clock.now += 1.0  # the first submission leaves the window
    s.release("j1")
    await asyncio.sleep(0)
    assert order == ["j0", "j1", "j2", "j3", "j4"]
    await asyncio.gather(*tasks)


async def test_rate_limited_pauses_everyone_until_retry_after():
    clock = Clock()
    s = Scheduler(5, clock=clock)
    s.rate_limited(10.0)
    order, tasks = await granted(s, ("a", "U1"))
    assert order == [] and s.paused_for() == pytest.approx(10.0)
    clock.now += 10.0
    s._dispatch()
    await asyncio.sleep(0)
    assert order == ["a"]
    await asyncio.gather(*tasks)


async def test_too_many_concurrent_lowers_the_ceiling_then_probes_higher():
    clock = Clock()
    s = Scheduler(4, rate_window=1.0, clock=clock)
    order, tasks = await granted(s, ("a", "U1"), ("b", "U2"), ("c", "U3"))
    s.release("c")
    s.too_many_concurrent("c", retry_after=1.0)  # Luma holds only what a and b use
    assert s.limit() == 2
    clock.now += s.probe_period
    assert s.limit() == 3  # one more slot is tried after the probe period
    await asyncio.gather(*tasks)


async def test_too_many_concurrent_with_nothing_of_ours_in_flight_waits_as_told():
    clock = Clock()
    s = Scheduler(4, clock=clock)
    s.too_many_concurrent("a", retry_after=7.0)
    assert s.limit() == 4 and s.paused_for() == pytest.approx(7.0)


async def test_a_cancelled_waiter_leaves_the_line():
    s = Scheduler(1, clock=Clock())
    order, tasks = await granted(s, ("a", "U1"), ("b", "U2"))
    tasks[1].cancel()
    await asyncio.gather(tasks[1], return_exceptions=True)
    assert s.waiting == 0 and dict(await s.front(10**6)) == {}


def test_the_front_of_the_line_costs_what_it_returns():
    from lumabot.runner.scheduler import round_robin_front

    class Counted:
        """A person's line that counts how far it was read."""

        def __init__(self, name: str, n: int):
            self.name, self.n, self.read = name, n, 0

        def __iter__(self):
            for i in range(self.n):
                self.read += 1
                yield f"{self.name} {i}"

    alice, bob = Counted("alice", 100_000), Counted("bob", 2)
    assert round_robin_front([alice, bob], 5) == [("alice 0", 1), ("bob 0", 2), ("alice 1", 3), ("bob 1", 4),
                                                  ("alice 2", 5)]
    assert alice.read <= 4  # not the 100,000 behind


async def test_the_line_reporter_looks_only_at_the_front():
    from lumabot.jobs.models import GenerationParams, Job
    from lumabot.runner.lines import LOOK_AHEAD, LineReporter
    from lumabot.testing.ports import MemoryNotifier

    asked: list[int] = []
    jobs = {f"j{i}": Job(id=f"j{i}", team_id="T", user_id="U", channel_id="C", status_ts="1.1",
                         params=GenerationParams(prompt="p")) for i in range(10)}

    class Line:
        async def front(self, limit: int):
            asked.append(limit)
            return [(f"j{i}", i + 1) for i in range(min(limit, 10))]

    notifier = MemoryNotifier()
    reporter = LineReporter(Line(), notifier.update_status, jobs.get, interval=1.0, per_tick=4)  # type: ignore[arg-type]
    assert await reporter.report_once() == 4
    assert asked == [LOOK_AHEAD]
    assert [jobs[f"j{i}"].queue_position for i in range(5)] == [1, 2, 3, 4, None]  # front first


def test_the_front_of_a_line_of_many_workspaces_starts_only_the_lines_it_reaches():
    """A thousand workspaces of fifty people: the first places cost the lines they reach, not
    fifty thousand (the place-in-line reporter asks every few seconds)."""
    from lumabot.runner.scheduler import interleave, round_robin_front

    pulled: list[str] = []   # every line taken from its workspace's list of people, or workspace

    def people(team: int):
        for user in range(50):
            pulled.append(f"{team}/{user}")
            yield iter([f"job {team}/{user}"])

    def teams():
        for team in range(1000):
            pulled.append(str(team))
            yield interleave(people(team))

    assert round_robin_front(teams(), 3) == [("job 0/0", 1), ("job 1/0", 2), ("job 2/0", 3)]
    assert len(pulled) <= 8
