"""When generations are polled (runner/polling.py), on a fake clock."""

from __future__ import annotations

import asyncio
import math
import random
from lumabot.runner.polling import BACKLOG_PRICE, BACKLOG_SPEEDUP, GRID, STEADY_PRICE, PollPlanner

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


def test_without_a_line_the_polls_are_the_same_optimum_with_a_dearer_get():
    """Without a line a GET is weighed against the person's wait, at STEADY_PRICE x the median
    (about two GETs per job): for a uniform distribution the gaps shrink by that price."""
    p = learned(planner())   # 10 .. 109 s, uniform
    price, cell = STEADY_PRICE * p._learned(UNI).age_at(0.5), 109 / GRID
    polls = [p.next_poll_age(UNI, None, backlog=False)]
    while polls[-1] < 109:
        polls.append(p.next_poll_age(UNI, polls[-1], backlog=False))
    gaps = [b - a for a, b in zip(polls, polls[1:])]
    assert len(polls) <= 4 and abs(gaps[0] - gaps[1] - price) < 2 * cell
    # while jobs wait for a slot, sooner, and closer together
    first, second = polls[:2]
    assert p.next_poll_age(UNI, None, backlog=True) < first
    sooner = p.next_poll_age(UNI, first, backlog=True)
    assert first < sooner < second
    assert len(backlog_polls(p, 109.0)) > 2 * len(polls)


def backlog_polls(p: PollPlanner, until: float) -> list[float]:
    polls = [p.next_poll_age(UNI, None, backlog=True)]
    while polls[-1] < until:
        polls.append(p.next_poll_age(UNI, polls[-1], backlog=True))
    return polls


def test_under_backlog_the_polls_are_the_least_delay_plus_price_per_get():
    """The backlog plan is the exact optimum of expected detection delay + price x GETs for
    what was learned: for a uniform distribution the gaps shrink by the price at each poll
    (the optimum's first-order condition), and no poll moved to a neighbouring time lowers the
    expected cost."""
    p = learned(planner(poll_interval=100.0))   # 10 .. 109 s, uniform
    p.min_gap = 0.01
    seen = p._learned(UNI)
    price, cell = BACKLOG_PRICE * seen.age_at(0.5), seen._top / GRID
    polls = backlog_polls(p, 109.0)
    gaps = [b - a for a, b in zip(polls, polls[1:])]
    # away from the estimate's smoothed ends; poll times are the grid's edges (a cell either way)
    middle = gaps[1:-2]
    assert abs((middle[0] - middle[-1]) / (len(middle) - 1) - price) < 2 * cell / (len(middle) - 1)

    def share_done(t: float) -> float:    # the estimate, completions even within a cell
        j = min(int(t / cell), GRID - 1)
        return (sum(seen._p[:j]) + seen._p[j] * (t - j * cell) / cell) / sum(seen._p)

    def cost(times: list[float]) -> float:   # expected delay + price x expected GETs
        total, last, steps = 0.0, 0.0, 200
        for t in times:
            total += price * (1.0 - share_done(last))
            for i in range(steps):   # the delay of the completions in (last, t]
                a, b = last + (t - last) * i / steps, last + (t - last) * (i + 1) / steps
                total += (t - (a + b) / 2) * (share_done(b) - share_done(a))
            last = t
        return total

    best = cost(polls)
    for i in range(len(polls) - 1):
        for shift in (-cell, cell):
            moved = polls[:i] + [polls[i] + shift] + polls[i + 1:]
            if (i == 0 or moved[i] > moved[i - 1]) and moved[i] < moved[i + 1]:
                assert cost(moved) >= best - 1e-9, (i, shift)


def test_under_backlog_the_stragglers_past_what_was_learned_well_are_polled_at_the_same_pace():
    """The estimate ends at the oldest latency seen, as if every generation were done by then;
    its optimum left the stragglers of the thin tail one long gap before that age (in the
    benchmark: a generation a tenth over it waited half a median). Past the age by which 90 %
    finished, no gap is longer than the plan's longest where the latencies are dense."""
    for seed in (1, 2):
        p = planner()
        p.min_gap = 0.01
        rnd = random.Random(seed)
        for i in range(230):   # lognormal, p50 30 s; seen by sparse polls first, then dense ones
            latency, step, age = 30.0 * math.exp(0.42 * rnd.gauss(0, 1)), 25.0 if i < 30 else 2.5, 0.0
            while age + step < latency:
                age += step
            p.record_seen(UNI, age, age + step)
        seen = p._learned(UNI)
        ninety = seen.age_at(0.9)   # (the estimate is made on first use)
        polls = backlog_polls(p, seen._top)
        gaps = list(zip(polls, polls[1:]))
        dense = max(b - a for a, b in gaps if b <= ninety)
        assert max(b - a for a, b in gaps) <= dense + seen._top / GRID, seed


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
    assert p.chance(UNI, None, 9.0) < 0.02 and p.chance(UNI, None, 200.0) == 1.0  # (smoothed a little)
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


def test_it_learns_when_generations_finished_not_when_they_were_seen_finished():
    """Luma does not say when a generation finished: only that it was running at one poll and
    done at the next. Learning the second would make every latency late by the detection delay;
    the planner places each one in between, and its median stays where the true one is."""
    true = [10.0 + 10.0 * ((i * 37) % 200) / 200 for i in range(200)]  # 10 .. 20 s, median 15 s
    p, late = planner(), planner()
    for i, latency in enumerate(true):  # polled every 4 s, each from its own start: seen done later
        phase = (i * 13) % 40 / 10
        seen_at = phase + 4.0 * ((latency - phase) // 4.0 + 1)
        p.record_seen(UNI, seen_at - 4.0, seen_at)
        late.record(UNI, seen_at)
    learned = p._learned(UNI)
    assert abs(learned.age_at(0.5) - 15.0) <= 0.5
    assert late._learned(UNI).age_at(0.5) >= 16.0  # (what it learned before)
    # and its spread too, though each generation was only seen within 4 s (Turnbull's estimate)
    assert abs(learned.age_at(0.1) - 11.0) <= 0.5 and abs(learned.age_at(0.9) - 19.0) <= 0.5
    # (smoothed over a tenth of the median either side: a little of it before the true least)
    assert learned.cdf(9.5) <= 0.03 and learned.cdf(20.5) >= 0.97


def test_what_it_learned_is_made_again_once_a_twentieth_is_new():
    """The estimate and its backlog plan cost milliseconds on the event loop: they are made
    again when a twentieth of the intervals are new, not at every completion."""
    p = learned(planner())          # 100 latencies, 10 .. 109 s
    assert p.chance(UNI, None, 150.0) == 1.0
    for _ in range(5):
        p.record(UNI, 200.0)        # much slower ones
    assert p.chance(UNI, None, 150.0) == 1.0
    p.record(UNI, 200.0)            # the sixth new of 106
    assert p.chance(UNI, None, 150.0) < 0.97


def test_after_a_quiet_spell_it_still_knows_where_below_the_first_poll_generations_finish():
    """Without a line every generation is polled first at about the same age, and its interval
    says only that it finished before: once a quiet spell has filled the window, the intervals
    of generations polled densely during the last burst (a fifth of the window) still say where.
    Those of generations polled sparsely are not kept: an interval kept for what it is (a
    narrow one) would skew what is learned towards the latencies that give such intervals."""
    def after_quiet_spell(dense: bool) -> PollPlanner:
        p = planner(window=50)
        for i in range(50):   # a burst: 12 .. 18 s, each seen within half a second
            latency = 12.0 + 6.0 * i / 49
            p.record_seen(UNI, latency - 0.5, latency, dense=dense)
        for _ in range(100):  # a quiet spell: each seen done at its first poll, at 20 s
            p.record_seen(UNI, 0.0, 20.0)
        return p

    p = planner()
    assert p.polls_densely(UNI, backlog=False)   # before it has learned: every interval after the first
    learned(p)
    assert not p.polls_densely(UNI, backlog=False) and p.polls_densely(UNI, backlog=True)
    kept, forgotten = after_quiet_spell(True), after_quiet_spell(False)
    assert kept.kept == 10
    assert kept._learned(UNI).cdf(10.0) < 0.05 and kept._learned(UNI).age_at(0.5) > 12.0
    assert forgotten._learned(UNI).cdf(10.0) > 0.4   # spread evenly over (0, 20 s]
    # and the backlog plan's first poll is where they finish, not in the first half of the wait
    assert kept.next_poll_age(UNI, None, backlog=True) > 11.0 > forgotten.next_poll_age(UNI, None, backlog=True)
