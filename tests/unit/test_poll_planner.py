"""When generations are polled (runner/polling.py), on a fake clock."""

from __future__ import annotations

import asyncio

from lumabot.runner.polling import BACKLOG_GAP, BACKLOG_SPEEDUP, STEADY_CHANCE, PollPlanner

UNI = ("uni-1", "image")


def planner(**kw) -> PollPlanner:
    return PollPlanner(**{"first_poll_delay": 20.0, "poll_interval": 2.0, "max_polls_per_second": 50.0, **kw})


def learned(p: PollPlanner, key=UNI, lo: float = 10.0, n: int = 100) -> PollPlanner:
    for i in range(n):
        p.record(key, lo + i)  # lo .. lo + n - 1 s, uniform
    return p


def test_before_enough_latencies_are_seen_it_polls_on_the_configured_delay_and_interval():
    p = planner()
    for seconds in range(19):
        p.record(UNI, 30.0 + seconds)
    assert p.next_poll_age(UNI, None, backlog=False) == 20.0
    assert p.next_poll_age(UNI, 20.0, backlog=False) == 22.0
    assert p.next_poll_age(UNI, 20.0, backlog=True) == 20.0 + 2.0 / BACKLOG_SPEEDUP


def test_then_each_poll_comes_when_the_chance_it_finished_since_the_last_reaches_a_threshold():
    p = learned(planner())
    first = p.next_poll_age(UNI, None, backlog=False)
    assert abs(first - (10 + 0.55 * 99)) < 0.01   # 55 % of 10 .. 109 s are done by then
    second = p.next_poll_age(UNI, first, backlog=False)
    assert abs(p.chance(UNI, first, second) - STEADY_CHANCE) < 0.03  # of those still running
    # while jobs wait for a slot, sooner: from when 5 % are done, gaps that shrink with the
    # square root of the rate at which the running ones finish, at most one interval
    assert abs(p.next_poll_age(UNI, None, backlog=True) - (10 + 0.05 * 99)) < 0.01
    sooner = p.next_poll_age(UNI, first, backlog=True)
    assert first < sooner < second and sooner - first <= p.poll_interval
    slow = learned(planner(poll_interval=100.0))
    slow.min_gap = 0.01
    near_median = slow.next_poll_age(UNI, 59.0, backlog=True) - 59.0
    late = slow.next_poll_age(UNI, 100.0, backlog=True) - 100.0   # few left, finishing fast
    assert abs(near_median - BACKLOG_GAP * (59.5 / slow._learned(UNI).hazard(59.0)) ** 0.5) < 1e-6
    assert late < near_median


def test_models_and_edits_are_learned_apart():
    p = learned(planner())
    learned(p, ("uni-1-max", "image"), lo=100.0)
    assert p.next_poll_age(("uni-1-max", "image"), None, backlog=False) > p.next_poll_age(UNI, None, backlog=False)
    assert p.next_poll_age(("uni-1", "image_edit"), None, backlog=False) == 20.0  # not learned yet


def test_gaps_have_a_floor_and_the_oldest_are_polled_every_interval():
    tight = planner()
    for i in range(100):
        tight.record(UNI, 5.0 + i / 1000)  # every generation takes 5.0 .. 5.1 s
    assert tight.next_poll_age(UNI, 5.0, backlog=False) - 5.0 == tight.min_gap
    assert tight.next_poll_age(UNI, 200.0, backlog=False) == 202.0  # older than anything seen


def test_with_very_many_pending_each_gap_stretches_to_keep_the_poll_rate():
    p = planner()
    assert p.next_poll_age(UNI, 30.0, backlog=False, polling=10_000) == 30.0 + 10_000 / 50.0
    assert learned(p).next_poll_age(UNI, 30.0, backlog=False, polling=10_000) == 30.0 + 10_000 / 50.0


def test_the_chance_of_having_finished():
    p = learned(planner())
    assert p.chance(UNI, None, 9.0) == 0.0 and p.chance(UNI, None, 200.0) == 1.0
    assert abs(p.chance(UNI, 59.0, 84.0) - 0.5) < 0.02  # half of those running at 59 s end by 84 s
    fresh = planner()  # nothing learned: older is likelier
    assert fresh.chance(UNI, None, 30.0) < fresh.chance(UNI, None, 60.0) < 1.0


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


async def test_polls_together_stay_under_the_rate_cap():
    t = FakeTime()
    p = planner(max_polls_per_second=10.0, clock=lambda: t.now, sleep=t.sleep)
    await asyncio.gather(*(p.pace() for _ in range(5)))  # five polls at the same moment
    assert [round(s, 6) for s in t.slept] == [0.1] * 4   # one every 0.1 s
    t.now += 10.0
    t.slept.clear()
    await p.pace()
    assert t.slept == []  # a poll after a quiet spell goes at once


async def test_when_polls_queue_the_likeliest_finished_goes_first():
    t = FakeTime()
    p = planner(max_polls_per_second=10.0, clock=lambda: t.now, sleep=t.sleep)
    order: list[float] = []

    async def poll(priority: float) -> None:
        await p.pace(priority)
        order.append(priority)

    await asyncio.gather(*(poll(x) for x in (0.0, 0.2, 0.9, 0.5, 0.1)))
    assert order == [0.0, 0.9, 0.5, 0.2, 0.1]  # the first went at once; then by priority
