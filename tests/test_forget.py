"""`/luma admin forget @person` forgets (issue #21, point 4): a job running during the forget is
forgotten as it finishes; copies of the person's text in other people's jobs (a Reroll of their
image, prompts in a session they started) are scrubbed; on SQLite the deleted text is in neither
the database file nor the WAL; the answer says plainly what stays in Slack."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from lumabot.jobs.forgetting import REMOVED
from lumabot.jobs.models import JobState
from lumabot.testing.fake_luma import Outcome
from lumabot.testing.fake_slack import block_actions_payload

from .test_admin import admin, answered_later, start

SECRET, THEME, RUNNING = "xyzzy plugh lantern", "quux velvet theme", "frotz brass running"


def database_bytes(h) -> bytes:
    path = Path(h.bot.store.db.path)
    return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())


async def test_forget_removes_the_text_everywhere_in_the_database(start_bot):
    h = await start(start_bot)
    mine = await h.finished((await h.imagine(SECRET, user_id="U7")).id)
    await h.slack.post_interaction(h.url, block_actions_payload(          # U8 rerolls U7's image
        "reroll", value=mine.id, user_id="U8", channel_id="C1", message_ts=mine.actions_ts,
        thread_ts=mine.root_ts, response_url=h.slack.new_response_url()))
    reroll = await h.wait_job(lambda j: j.user_id == "U8" and j.settled)
    status, _ = await h.command(f"session start {THEME}", command="/luma", user_id="U7", channel_id="C3")
    assert status == 200
    await h.slack.wait_for(lambda: h.slack.top_level("C3"))
    await h.slack.user_posts(h.url, "a garden", user="U8", channel="C3")
    in_session = await h.wait_job(lambda j: j.channel_id == "C3" and j.settled)
    unrelated = await h.finished((await h.imagine("an unrelated lantern", user_id="U8")).id)  # U8's own words
    h.luma.script(Outcome(hold=True))
    running = await h.imagine(RUNNING, user_id="U7")
    await h.luma.wait_for(lambda: any(c["prompt"] == RUNNING for c in h.luma.creates))
    before = await admin(h, "usage")

    await admin(h, "forget <@U7|seven>")
    answer = await answered_later(h, "Forgot <@U7>")
    assert "removed their text from 2 of other people's images" in answer
    assert "1 of their images is still being made and will be forgotten as soon as it is done" in answer
    assert "What lumabot posted in Slack stays there" in answer
    assert (await h.bot.store.jobs.get(reroll.id)).params.prompt == REMOVED
    assert (await h.bot.store.jobs.get(in_session.id)).params.prompt == f"a garden. Style direction: {REMOVED}"
    assert (await h.bot.store.jobs.get(unrelated.id)).params.prompt == "an unrelated lantern"

    h.luma.release_all()
    await h.slack.wait_for(lambda: "Done in" in h.status_text(running))  # delivered, then forgotten
    await h.slack.wait_for(lambda: _gone(h, running.id))
    assert await h.bot.store.jobs.get(mine.id) is None
    assert await h.bot.store.sessions.thumbnails([running.id]) == {}
    after = await admin(h, "usage")
    assert _total(after) == _total(before).replace("4 images", "5 images").replace("$0.16", "$0.20")
    assert "<@U7>" not in after and "a forgotten person" in after
    if not h.bot.store.shared:  # SQLite: search the whole database file and its WAL
        # The running job's row goes before its checkpoint does: wait for the checkpoint.
        await h.slack.wait_for(lambda: RUNNING.encode() not in database_bytes(h))
        data = database_bytes(h)
        for text in (SECRET, THEME, RUNNING):
            assert text.encode() not in data, text


async def _gone(h, job_id: str) -> bool:
    return await h.bot.store.jobs.get(job_id) is None


def _total(report: str) -> str:
    return next(line for line in report.splitlines() if line.startswith("*Total:*"))


async def test_a_cancelled_job_of_a_forgotten_person_is_forgotten_as_it_settles(start_bot):
    h = await start(start_bot, LUMABOT_LUMA_CONCURRENCY="1")
    h.luma.script(Outcome(hold=True))
    first = await h.imagine("holding the slot", user_id="U2")
    await h.luma.wait_for(lambda: len(h.luma.generations) == 1)
    waiting = await h.imagine(SECRET, user_id="U7")
    await admin(h, "forget <@U7|seven>")
    await answered_later(h, "Forgot <@U7>")
    await h.slack.post_interaction(h.url, block_actions_payload(
        "cancel", value=waiting.id, user_id="U7", channel_id="C1", message_ts=waiting.status_ts,
        response_url=h.slack.new_response_url()))
    await h.slack.wait_for(lambda: "Cancelled" in h.status_text(waiting))
    await h.slack.wait_for(lambda: _gone(h, waiting.id))
    h.luma.release_all()
    assert (await h.finished(first.id)).state == JobState.DONE
    assert [c["prompt"] for c in h.luma.creates] == ["holding the slot"]


async def test_a_request_held_for_its_cost_is_forgotten_too(start_bot):
    h = await start(start_bot, LUMABOT_CONFIRM_ABOVE_USD="0.01")
    status, body = await h.command(f"{SECRET} --n 2", user_id="U7")
    assert status == 200 and "Nothing has been sent or counted yet" in body
    await admin(h, "forget <@U7|seven>")
    await answered_later(h, "Forgot <@U7>")
    if not h.bot.store.shared:
        await h.slack.wait_for(lambda: SECRET.encode() not in database_bytes(h))
    assert await h.bot.store.db.scalar(sa.text("SELECT count(*) FROM pending_requests")) == 0
