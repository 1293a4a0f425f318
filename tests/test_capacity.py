"""Capacity end to end: a backlog drains under Luma's limits, people are served in turn, the
place in line is shown, and the per-person and workspace limits hold. (The scheduler's rules on
a fake clock: tests/unit/test_scheduler.py; 1,000 and 10,000 pending generations, with
figures: bench/ack.py and bench/pending.py.)"""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from lumabot.jobs.models import JobState
from lumabot.testing.fake_luma import FakeLuma, Outcome



# -- admission under Luma's limits, fairness, quotas -----------------------------------------



@pytest.fixture
async def tight_luma():
    """Luma with its limits scaled down: 3 concurrent jobs, 6 requests per 0.5 s."""
    fake = FakeLuma(latency=0.15, concurrency_limit=3, rpm_limit=6, rpm_window=0.5,
                    concurrency_retry_after=1)
    await fake.start()
    yield fake
    await fake.stop()


async def _settled(h, n, timeout=30.0):
    until = time.monotonic() + timeout
    while True:
        jobs = await h.jobs()
        if len(jobs) >= n and all(j.settled for j in jobs):
            return jobs
        assert time.monotonic() < until, [j.state for j in jobs]
        await asyncio.sleep(0.02)


async def test_backlog_drains_under_luma_limits_without_failures(tmp_path, slack, tight_luma):
    from lumabot.app import LumaBot
    from lumabot.config import load_settings

    from .conftest import Harness, bot_env

    env = bot_env(tmp_path, slack, tight_luma, LUMABOT_LUMA_CONCURRENCY="5",
                  LUMABOT_LUMA_RATE_WINDOW="0.5", LUMABOT_MAX_QUEUED_PER_USER="20",
                  LUMABOT_GENERATION_TIMEOUT="30")
    bot = LumaBot(load_settings(_env_file=None, **env))
    port = await bot.serve_http(host="127.0.0.1", port=0)
    await bot.start()
    h = Harness(bot=bot, slack=slack, luma=tight_luma, port=port, url=f"http://127.0.0.1:{port}/slack/events")
    try:
        for i in range(18):
            status, body = await h.command(f"backlog picture {i}", user_id=f"U{i % 3}")
            assert status == 200 and not body
        jobs = await _settled(h, 18, timeout=60)
        assert all(j.state == JobState.DONE for j in jobs), [(j.state, j.failure_code) for j in jobs]
        assert len(tight_luma.creates) == 18
        # The fake refuses what is over its limits; lumabot learned them and kept 429s rare.
        assert tight_luma.stats["429"] <= 4, tight_luma.stats
    finally:
        await bot.stop()


async def test_waiting_jobs_are_served_round_robin_across_users(start_bot, slack, luma):
    h = await start_bot(LUMABOT_LUMA_CONCURRENCY="1")
    luma.script(Outcome(hold=True))
    await h.imagine("alice 1", user_id="UA")
    await luma.wait_for(lambda: len(luma.generations) == 1)
    for prompt, user in [("alice 2", "UA"), ("alice 3", "UA"), ("alice 4", "UA"),
                         ("bob 1", "UB"), ("carol 1", "UC"), ("bob 2", "UB")]:
        await h.command(prompt, user_id=user)
        # A job joins the line once its status message is up: one after the other, in order.
        await h.wait_job(lambda j: j.params.prompt == prompt and j.status_ts)
    luma.release_all()
    await _settled(h, 7)
    order = [b["prompt"] for b in luma.creates]
    assert order == ["alice 1", "alice 2", "bob 1", "carol 1", "alice 3", "bob 2", "alice 4"]


async def test_place_in_line_is_shown_and_updated(start_bot, slack, luma):
    h = await start_bot(LUMABOT_LUMA_CONCURRENCY="1", LUMABOT_QUEUE_UPDATE_INTERVAL="0.05")
    luma.script(Outcome(hold=True), Outcome(hold=True))
    await h.imagine("first", user_id="U1")
    await luma.wait_for(lambda: len(luma.generations) == 1)
    for i, user in enumerate(["U2", "U3", "U4"], 2):
        await h.command(f"waiting {i}", user_id=user)
        # A job joins the line once its status message is up: one after the other, in order.
        last = await h.wait_job(lambda j: j.params.prompt == f"waiting {i}" and j.status_ts)
    await slack.wait_for(lambda: "#3 in line" in h.status_text(last))
    luma.release_all()  # the first is done; the second generates (held), the last moves up
    await slack.wait_for(lambda: "#2 in line" in h.status_text(last))
    # (the last one's place can move up before the second's create reaches Luma: release that)
    await luma.wait_for(lambda: len(luma.generations) == 2)
    luma.release_all()
    # (a bound, not a speed: on PostgreSQL under a loaded CI run the last job's whole life, its
    # grant through its delivery, has taken more than 5 s)
    await slack.wait_for(lambda: "Done in" in slack.message("C1", last.status_ts).text, timeout=20)
    history = [t for t, _ in slack.message("C1", last.status_ts).history]
    assert len(history) <= 6, history  # batched: a handful of updates, not one per poll


async def test_per_user_queue_cap(start_bot, slack, luma):
    h = await start_bot(LUMABOT_LUMA_CONCURRENCY="1", LUMABOT_MAX_QUEUED_PER_USER="3")
    luma.script(Outcome(hold=True))
    await h.imagine("in flight", user_id="U1")
    await luma.wait_for(lambda: len(luma.generations) == 1)
    for i in range(3):
        status, body = await h.command(f"queued {i}", user_id="U1")
        assert not body
    status, body = await h.command("one too many", user_id="U1")
    text = json.loads(body)["text"]
    assert "3 images waiting in line" in text and "the limit is 3" in text
    status, body = await h.command("a colleague's picture", user_id="U2")
    assert not body  # the cap is per person
    assert len(await h.jobs()) == 5
    luma.release_all()


async def test_daily_image_limit_per_user(start_bot, slack, luma):
    h = await start_bot(LUMABOT_USER_DAILY_IMAGES="2")
    for i in range(2):
        await h.finished((await h.imagine(f"allowed {i}", user_id="U1")).id)
    status, body = await h.command("third", user_id="U1")
    text = json.loads(body)["text"]
    assert "daily limit of 2 images per person" in text and "resets at 00:00 UTC" in text
    await h.finished((await h.imagine("someone else", user_id="U2")).id)
    assert len(luma.creates) == 3


async def test_moderated_images_do_not_count_against_the_daily_limit(start_bot, slack, luma):
    h = await start_bot(LUMABOT_USER_DAILY_IMAGES="1")
    luma.script(Outcome(state="failed", failure_code="content_moderated"))
    await h.finished((await h.imagine("flagged", user_id="U1")).id)
    await h.finished((await h.imagine("fine", user_id="U1")).id)
    assert len(luma.creates) == 2


async def test_daily_workspace_budget(start_bot, slack, luma):
    h = await start_bot(LUMABOT_DAILY_BUDGET_USD="0.10")
    await h.finished((await h.imagine("cheap one", user_id="U1")).id)     # $0.0404
    status, body = await h.command("an expensive one --max", user_id="U2")  # + $0.10 > $0.10
    text = json.loads(body)["text"]
    assert "daily Luma budget of $0.10" in text and "resets at 00:00 UTC" in text
    await h.finished((await h.imagine("another cheap one", user_id="U2")).id)  # $0.0808 in all
    assert len(luma.creates) == 2
    # An edit is priced too: $0.0434 more would pass the budget.
    status, body = await h.command("make it night", command="/edit", user_id="U1")
    assert "daily Luma budget" in json.loads(body)["text"]


async def test_luma_usage_report(start_bot, slack, luma):
    h = await start_bot(LUMABOT_USER_DAILY_IMAGES="10", LUMABOT_DAILY_BUDGET_USD="5")
    await h.finished((await h.imagine("one", user_id="U1")).id)
    await h.finished((await h.imagine("two --max", user_id="U1")).id)
    luma.script(Outcome(state="failed", failure_code="content_moderated"))
    await h.finished((await h.imagine("flagged", user_id="U1")).id)
    await h.finished((await h.imagine("colleague", user_id="U2")).id)
    status, body = await h.command("usage", command="/luma", user_id="U1")
    reply = json.loads(body)
    assert reply["response_type"] == "ephemeral"
    text = reply["text"]
    mine, workspace, limits = text.splitlines()[:3]
    assert "today 2 images · $0.14" in mine and "this month 2 images · $0.14" in mine
    assert "today 3 images · $0.18" in workspace
    assert "10 images a day per person (8 left for you today)" in limits
    assert "$5.00 per day for the workspace ($4.82 left)" in limits
