"""jobs/slots.py: the one rule both schedulers follow (one process, in memory; several replicas,
in the database), on its own."""

from __future__ import annotations

import pytest

from lumabot.jobs.slots import Ceiling, Grant, grant, joins, paused, probe_period, rate_headers, too_many_concurrent


def test_free_slots_go_until_the_limit():
    assert grant(in_flight=2, limit=5, recent=[], rate_limit=None, paused_until=0, now=10, rate_window=60) == Grant(3)
    assert grant(in_flight=5, limit=5, recent=[], rate_limit=None, paused_until=0, now=10, rate_window=60) == Grant(0)


def test_the_rate_window_holds_back_what_it_does_not_allow_and_says_until_when():
    recent = [1.0, 2.0, 3.0]
    assert grant(in_flight=0, limit=10, recent=recent, rate_limit=5, paused_until=0, now=10,
                 rate_window=60) == Grant(2, pytest.approx(51.0))  # the first of the window leaves at 61
    assert grant(in_flight=0, limit=10, recent=recent, rate_limit=3, paused_until=0, now=10,
                 rate_window=60) == Grant(0, pytest.approx(51.0))
    assert grant(in_flight=8, limit=10, recent=recent, rate_limit=5, paused_until=0, now=10,
                 rate_window=60) == Grant(2)  # the slots are what limits


def test_a_pause_holds_everything_until_it_ends():
    assert grant(in_flight=0, limit=10, recent=[], rate_limit=None, paused_until=17, now=10,
                 rate_window=60) == Grant(0, pytest.approx(7.0))
    assert paused(17.0, 10.0, 3.0) == 17.0 and paused(17.0, 10.0, 30.0) == 40.0 and paused(0, 10, -5) == 10


def test_a_learned_ceiling_is_probed_one_higher_after_its_period():
    probe = probe_period(60)
    ceiling, pause = too_many_concurrent(Ceiling(), others_in_flight=2, now=100, retry_after=5, probe=probe)
    assert pause is None and ceiling == Ceiling(2, 100 + probe) and ceiling.limit(4) == 2
    assert ceiling.now(4, 100 + probe - 1, probe) == ceiling
    higher = ceiling.now(4, 100 + probe, probe)
    assert higher == Ceiling(3, 100 + 2 * probe)
    assert higher.now(4, 100 + 2 * probe, probe) == Ceiling()  # back to the configured concurrency
    assert too_many_concurrent(Ceiling(1, 50), others_in_flight=3, now=100, retry_after=5, probe=probe)[0].estimate == 1


def test_with_nothing_else_in_flight_someone_else_uses_the_account():
    assert too_many_concurrent(Ceiling(), others_in_flight=0, now=100, retry_after=7, probe=900) == (Ceiling(), 7)


def test_rate_headers_teach_the_allowance_and_an_empty_one_pauses():
    assert rate_headers(30, 10, None, 100, 60) == (30, None)
    assert rate_headers(30, 0, 120, 100, 60) == (30, 20)
    assert rate_headers(30, 0, 500, 100, 60) == (30, 60)   # at most a window
    assert rate_headers(None, 0, 90, 100, 60) == (None, None)  # the reset has passed


def test_people_join_the_back_of_the_line_and_a_retry_its_front():
    assert joins(7, front=False) == 7 and joins(7, front=True) == -7
