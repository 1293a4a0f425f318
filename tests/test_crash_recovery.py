"""Exactly once, really: `kill -9` between an external effect and its record, then a restart.
Paid creates are re-sent at most once; messages lumabot posted are found again (message
metadata) rather than posted twice; an upload Slack shares late is waited for."""

from __future__ import annotations

import pytest

from lumabot.jobs.models import JobState
from lumabot.testing.fake_luma import Outcome
from lumabot.testing.process import BotProcess

from .conftest import bot_env
from .test_restart import _all_jobs, _run_until_settled, _wait


async def _kill_while_held(bot: BotProcess, slack, method: str) -> None:
    """kill -9 the bot while Slack holds its answer to `method` (whose effect took place);
    the dead process's call then stays unanswered."""
    await slack.wait_for(lambda: slack.held[method] >= 1, timeout=10,
                         message=f"the bot never called {method}; its log ends:\n{bot.log_text[-3000:]}")
    bot.kill9()
    await bot.wait()
    slack.unhold(method)


async def test_a_create_interrupted_twice_is_not_sent_a_third_time(tmp_path, slack, luma):
    env = bot_env(tmp_path, slack, luma, LUMABOT_LUMA_REQUEST_TIMEOUT="30")
    db_path = tmp_path / "lumabot.db"
    luma.stall_next("POST", 60, after_create=True, count=2)  # accepted, the answer never comes
    for posts in (1, 2):
        bot = BotProcess(env, tmp_path)
        await bot.start()
        try:
            if posts == 1:
                status, *_ = await slack.post_command(bot.url, "/imagine", "a phoenix")
                assert status == 200
            await luma.wait_for(lambda: len([r for r in luma.requests if r.method == "POST"]) == posts,
                                timeout=10)
            bot.kill9()
            await bot.wait()
        finally:
            await bot.stop()
    (job,) = await _run_until_settled(env, tmp_path, db_path)
    assert job.state == JobState.FAILED and job.failure_code == "create_uncertain"
    assert len([r for r in luma.requests if r.method == "POST"]) == 2  # re-sent once, not twice
    assert "uncertain" in slack.thread("C1", job.status_ts)[-1].text


@pytest.mark.parametrize("kind", ["status", "failure"])
async def test_a_message_posted_just_before_a_crash_is_not_posted_again(tmp_path, slack, luma, kind):
    env = bot_env(tmp_path, slack, luma)
    db_path = tmp_path / "lumabot.db"
    if kind == "failure":
        luma.script(Outcome(state="failed", failure_code="content_moderated"))
    bot = BotProcess(env, tmp_path)
    await bot.start()
    try:
        if kind == "status":
            slack.hold("chat.postMessage", after_effect=True)
        status, body, *_ = await slack.post_command(bot.url, "/imagine", "a phoenix")
        assert status == 200 and not body, body  # accepted (not "please try again")
        if kind != "status":
            await slack.wait_for(lambda: slack.top_level("C1"))
            await _wait(lambda: _has_status(db_path))
            slack.hold("chat.postMessage", after_effect=True)  # the next post: the failure
        await _kill_while_held(bot, slack, "chat.postMessage")
    finally:
        await bot.stop()

    (job,) = await _run_until_settled(env, tmp_path, db_path)
    (top,) = [m for m in slack.top_level("C1") if "a phoenix" in (m.text or "")]
    assert top.ts == job.status_ts
    replies = [m for m in slack.thread("C1", job.status_ts) if hasattr(m, "ts")]
    if kind == "failure":
        assert job.state == JobState.FAILED
        assert len([m for m in replies if "content policy" in (m.text or "")]) == 1
        assert "Failed" in top.text
    else:
        assert job.state == JobState.DONE and "Done in" in top.text
        (image,) = [f for f in slack.files_in_thread("C1", job.status_ts) if f.shared]
        assert [b["type"] for b in image.blocks or []] == ["actions"]  # its buttons on it, once


async def _has_status(db_path) -> bool:
    jobs = await _all_jobs(db_path)
    return bool(jobs) and jobs[0].status_ts is not None


async def test_an_upload_shared_late_after_a_crash_is_not_uploaded_again(tmp_path, slack, luma):
    slack.share_delay = 1.5
    env = bot_env(tmp_path, slack, luma)
    db_path = tmp_path / "lumabot.db"
    bot = BotProcess(env, tmp_path)
    await bot.start()
    try:
        slack.hold("files.completeUploadExternal", after_effect=True)
        status, *_ = await slack.post_command(bot.url, "/imagine", "a phoenix")
        assert status == 200
        await _kill_while_held(bot, slack, "files.completeUploadExternal")
    finally:
        await bot.stop()
    (job,) = await _run_until_settled(env, tmp_path, db_path)
    assert job.state == JobState.DONE
    assert slack.count_calls("files.getUploadURLExternal") == 1
    assert len([f for f in slack.files_in_thread("C1", job.status_ts) if f.shared]) == 1


async def test_a_crash_mid_batch_delivers_each_image_exactly_once(tmp_path, slack, luma):
    """Issue #24: kill -9 once the batch's status message is posted but not recorded (its other
    images wait for it); after a restart the request still has one status message and each of
    its images is in the thread once. (An upload cut short is test_restart's, image by image.)"""
    held = "chat.postMessage"
    env = bot_env(tmp_path, slack, luma)
    db_path = tmp_path / "lumabot.db"
    bot = BotProcess(env, tmp_path)
    await bot.start()
    try:
        slack.hold(held, after_effect=True)
        status, body, *_ = await slack.post_command(bot.url, "/imagine", "a phoenix --n 3")
        assert status == 200 and not body, body
        await _kill_while_held(bot, slack, held)
    finally:
        await bot.stop()

    jobs = await _run_until_settled(env, tmp_path, db_path)
    assert len(jobs) == 3 and all(j.state == JobState.DONE for j in jobs)
    (top,) = [m for m in slack.top_level("C1") if "a phoenix" in (m.text or "")]
    assert {j.status_ts for j in jobs} == {top.ts} and "All 3 images done" in top.text
    files = slack.files_in_thread("C1", top.ts)
    assert sorted(f.content for f in files) == sorted(luma.output_bytes(j.generation_id) for j in jobs)
