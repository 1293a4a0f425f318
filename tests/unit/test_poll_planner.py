"""When generations are polled (runner/polling.py), on a fake clock."""

from __future__ import annotations

from lumabot.runner.polling import BACKLOG_SPEEDUP, PollPlanner


def planner(**kw) -> PollPlanner:
    return PollPlanner(**{"first_poll_delay": 20.0, "poll_interval": 2.0, "max_polls_per_second": 50.0, **kw})


def test_the_first_poll_waits_the_configured_delay_until_enough_latencies_are_seen():
    p = planner()
    for seconds in range(19):
        p.record("uni-1", 30.0 + seconds)
    assert p.first_poll_after("uni-1") == 20.0


def test_then_the_first_poll_comes_at_a_low_quantile_of_seen_latencies_per_model():
    p = planner()
    for seconds in range(100):
        p.record("uni-1", 10.0 + seconds)  # 10 .. 109 s
    assert p.first_poll_after("uni-1") == 14.0  # the 5 % quantile
    assert p.first_poll_after("uni-1-max") == 20.0  # another model: not learned yet


def test_polls_come_four_times_as_often_only_while_work_waits_for_a_slot():
    p = planner()
    assert p.interval(backlog=False) == 2.0
    assert p.interval(backlog=True) == 2.0 / BACKLOG_SPEEDUP


def test_with_very_many_pending_each_interval_stretches_to_keep_the_poll_rate():
    p = planner()
    assert p.interval(backlog=False, polling=10_000) == 10_000 / 50.0


async def test_polls_together_stay_under_the_rate_cap():
    now = [100.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    p = planner(max_polls_per_second=10.0, clock=lambda: now[0], sleep=sleep)
    for _ in range(5):
        await p.pace()  # five polls at the same moment
    assert [round(s, 6) for s in slept] == [0.1, 0.2, 0.3, 0.4]
    now[0] += 10.0
    slept.clear()
    await p.pace()
    assert slept == []  # a poll after a quiet spell goes at once
