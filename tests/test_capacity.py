"""One process tracks 1,000 pending generations at once and delivers every image once."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from lumabot.jobs.models import JobState
from lumabot.testing.fake_luma import FakeLuma, Outcome

N = 1000


async def test_one_thousand_pending_generations(start_bot, slack, luma):
    h = await start_bot(LUMABOT_LUMA_CONCURRENCY=str(N), LUMABOT_POLL_INTERVAL="0.5",
                        LUMABOT_MAX_QUEUED_PER_USER=str(N),
                        LUMABOT_GENERATION_TIMEOUT="60", LUMABOT_DELIVERY_TIMEOUT="60")
    luma.script(*[Outcome(hold=True) for _ in range(N)])
    sem = asyncio.Semaphore(50)
    ack_times: list[float] = []

    async def one(i: int) -> None:
        async with sem:
            t0 = time.monotonic()
            status, _ = await h.command(f"picture number {i}", user_id=f"U{i % 37}")
            ack_times.append(time.monotonic() - t0)
            assert status == 200

    await asyncio.gather(*(one(i) for i in range(N)))
    await luma.wait_for(lambda: len(luma.generations) == N, timeout=60)
    assert luma.in_flight() == N  # all pending at Luma at once, all tracked by one process
    # While they are pending, the bot still answers at once.
    t0 = time.monotonic()
    status, body = await h.command("a cat --ar 4:3")
    assert status == 200 and "not an aspect ratio" in body
    assert time.monotonic() - t0 < 0.5

    luma.release_all()
    await slack.wait_for(lambda: len([f for f in slack.files if f.shared]) == N, timeout=90)
    jobs = await h.jobs()
    assert len(jobs) == N
    until = time.monotonic() + 30
    while not all(j.settled for j in jobs) and time.monotonic() < until:
        await asyncio.sleep(0.1)
        jobs = await h.jobs()
    assert all(j.state == JobState.DONE for j in jobs)
    # Every image in its own thread, once.
    roots = {j.status_ts for j in jobs}
    assert len(roots) == N
    shared = [f for f in slack.files if f.shared]
    assert sorted(f.thread_ts for f in shared) == sorted(roots)
    ack_times.sort()
    print(f"\nack p50={ack_times[N // 2] * 1000:.0f} ms p99={ack_times[int(N * .99)] * 1000:.0f} ms")


# -- admission under Luma's limits, fairness, quotas -----------------------------------------



@pytest.fixture
async def tight_luma():
    """Luma with the old default limits scaled down: 3 concurrent jobs, 6 requests per 2 s."""
    fake = FakeLuma(latency=0.15, concurrency_limit=3, rpm_limit=6, rpm_window=2.0,
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
                  LUMABOT_LUMA_RATE_WINDOW="2", LUMABOT_MAX_QUEUED_PER_USER="20",
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


async def test_rate_allowance_learned_from_headers_avoids_429s(start_bot, slack, luma):
    luma.rpm_limit, luma.rpm_window = 3, 1.0
    h = await start_bot(LUMABOT_LUMA_RATE_WINDOW="1", LUMABOT_MAX_QUEUED_PER_USER="20")
    for i in range(9):
        await h.command(f"paced picture {i}", user_id=f"U{i}")
    jobs = await _settled(h, 9)
    assert all(j.state == JobState.DONE for j in jobs)
    assert luma.stats["rate"] == 0, luma.stats
    posts = sorted(r.at for r in luma.requests if r.method == "POST" and r.status == 201)
    assert posts[-1] - posts[0] >= 1.9  # 9 requests at 3 per second take at least two windows


async def test_waiting_jobs_are_served_round_robin_across_users(start_bot, slack, luma):
    h = await start_bot(LUMABOT_LUMA_CONCURRENCY="1")
    luma.script(Outcome(hold=True))
    await h.imagine("alice 1", user_id="UA")
    await luma.wait_for(lambda: len(luma.generations) == 1)
    for prompt, user in [("alice 2", "UA"), ("alice 3", "UA"), ("alice 4", "UA"),
                         ("bob 1", "UB"), ("carol 1", "UC"), ("bob 2", "UB")]:
        await h.command(prompt, user_id=user)
    await h.wait_job(lambda j: j.params.prompt == "bob 2" and j.status_ts)
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
    last = await h.wait_job(lambda j: j.params.prompt == "waiting 4" and j.status_ts)
    await slack.wait_for(lambda: "#3 in line" in h.status_text(last))
    luma.release_all()
    await slack.wait_for(lambda: "Done in" in slack.message("C1", last.status_ts).text, timeout=10)
    history = [t for t, _ in slack.message("C1", last.status_ts).history]
    shown = [t for t in history if "in line" in t]
    assert any("#3 in line" in t for t in shown) and any("#2 in line" in t or "#1 in line" in t for t in shown)
    assert len(history) <= 6, history  # batched: a handful of updates, not one per poll


async def test_next_job_is_submitted_as_soon_as_a_slot_frees(start_bot, slack, luma):
    h = await start_bot(LUMABOT_LUMA_CONCURRENCY="1", LUMABOT_POLL_INTERVAL="0.05")
    luma.script(Outcome(latency=0.3), Outcome(latency=0.05))
    await h.command("one", user_id="U1")
    await h.command("two", user_id="U2")
    await _settled(h, 2)
    first, second = luma.generations.values()
    second_post = [r.at for r in luma.requests if r.method == "POST" and r.status == 201][1]
    assert second_post - first.completes_at < 0.05 + 0.1  # within a poll interval


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
    assert "today 2 images · $0.14" in mine and "last 30 days 2 images · $0.14" in mine
    assert "today 3 images · $0.18" in workspace
    assert "10 images per person per day (8 left for you)" in limits
    assert "$5.00 per day for the workspace ($4.82 left)" in limits
