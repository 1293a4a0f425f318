"""Durability: a `kill -9` at any moment followed by a restart ends with exactly one image."""

from __future__ import annotations

import asyncio
import time

import pytest

from lumabot.jobs.models import JobState
from lumabot.store import open_store
from lumabot.testing.fake_luma import Outcome
from lumabot.testing.process import BotProcess

from .conftest import bot_env
from lumabot.testing.store import job_ids


async def _all_jobs(db_path):
    store = open_store(f"sqlite:///{db_path}")
    await store.open()
    try:
        return [await store.jobs.get(i) for i in await job_ids(store)]
    finally:
        await store.close()


async def _wait(predicate, timeout=10.0):
    until = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > until:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def _run_until_settled(env, tmp_path, db_path):
    """Start lumabot, wait until every job is settled (the user told), stop; the jobs."""
    bot = BotProcess(env, tmp_path)
    await bot.start()
    try:
        async def all_settled():
            jobs = await _all_jobs(db_path)
            return jobs and all(j.settled for j in jobs)
        await _wait(all_settled, timeout=20)
    finally:
        await bot.stop()
    return await _all_jobs(db_path)


KILL_POINTS = ["submit_in_flight", "generating", "upload_in_flight_lost",
               "upload_in_flight_processed", "upload_completed_unrecorded"]


@pytest.mark.parametrize("kill_point", KILL_POINTS)
async def test_kill_9_then_restart_delivers_exactly_one_image(tmp_path, slack, luma, kill_point):
    env = bot_env(tmp_path, slack, luma)
    db_path = tmp_path / "lumabot.db"
    bot = BotProcess(env, tmp_path)
    await bot.start()
    try:
        if kill_point == "submit_in_flight":
            luma.stall_next("POST", 3.0)
        if kill_point == "generating":
            luma.script(Outcome(hold=True))
        if kill_point.startswith("upload_in_flight"):
            slack.hold("files.completeUploadExternal")
        if kill_point == "upload_completed_unrecorded":
            slack.hold("files.completeUploadExternal", after_effect=True)

        status, _body, *_ = await slack.post_command(bot.url, "/imagine", "a phoenix --ar 2:3",
                                                     user_id="U1", channel_id="C1")
        assert status == 200

        if kill_point == "submit_in_flight":
            # The create is at Luma, stalled: its answer never reaches the process.
            await luma.wait_for(lambda: any(r.method == "POST" for r in luma.requests) or
                                bool(luma.generations))
        elif kill_point == "generating":
            await luma.wait_for(lambda: any(g.get_count >= 1 for g in luma.generations.values()))
        else:
            # The completion is at Slack, held (after taking effect, for "completed_unrecorded").
            await slack.wait_for(lambda: slack.held["files.completeUploadExternal"] >= 1)
        bot.kill9()
        await bot.wait()

        if kill_point == "upload_in_flight_processed":
            slack.release("files.completeUploadExternal")  # Slack still acts on the dead call
        elif kill_point.startswith("upload"):
            slack.unhold("files.completeUploadExternal")  # the dead process's call stays stuck
        if kill_point == "generating":
            luma.release_all()

        (job,) = await _run_until_settled(env, tmp_path, db_path)
        assert job.state == JobState.DONE, job
        files = slack.files_in_thread("C1", job.status_ts)
        shared = [f for f in files if f.shared]
        assert len(shared) == 1, files
        assert shared[0].content == luma.output_bytes(job.generation_id)
        # One status message, updated to Done.
        top = [m for m in slack.top_level("C1") if "a phoenix" in m.text]
        assert len(top) == 1 and "Done in" in top[0].text
    finally:
        await bot.stop()


async def test_restart_resumes_queued_and_generating_jobs(start_bot, luma, slack):
    """In-process: stop the bot with one generation in flight and one waiting, start again."""
    h = await start_bot(LUMABOT_LUMA_CONCURRENCY="1")
    luma.script(Outcome(hold=True), Outcome())
    first = await h.imagine("first picture")
    second = await h.imagine("second picture", user_id="U2")
    await luma.wait_for(lambda: len(luma.generations) == 1)
    # in flight as lumabot knows it (its create answered and recorded), not merely at Luma
    await h.wait_job(lambda j: j.id == first.id and j.state == JobState.GENERATING)
    await h.bot.stop()

    h2 = await start_bot(LUMABOT_LUMA_CONCURRENCY="1")
    luma.release_all()
    a = await h2.finished(first.id)
    b = await h2.finished(second.id)
    assert a.state == b.state == JobState.DONE
    assert len(luma.creates) == 2
    for job in (a, b):
        assert len(slack.files_in_thread("C1", job.status_ts)) == 1
