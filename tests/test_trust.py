"""The trust boundary on real Slack, end to end through the fakes: what people type is shown
literally, the bot token goes only to Slack, Slack Connect and DMs, workspace policy errors,
acks before any Web API call, edited messages, limits that hold under bursts, database faults,
and images that wait without holding memory."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
import sqlite3

import pytest
from aiohttp import web
from PIL import Image

from lumabot.jobs.models import JobState
from lumabot.testing.fake_luma import Outcome
from lumabot.testing.fake_slack import (
    app_home_opened_event,
    app_mention_event,
    block_actions_payload,
    message_changed_event,
    message_event,
    message_shortcut_payload,
    reaction_event,
)

from .conftest import served

INJECTION = "<!channel> hi <!here> <@U2> <!subteam^S1|@design> <https://evil.example|docs.lumalabs.ai> & co"
MARKUP = ("<!channel>", "<!here>", "<@U2>", "<!subteam", "<https://evil", "|docs.lumalabs.ai>")


def png(size=(40, 30), color=(200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def everything_posted(h) -> str:
    """Every text lumabot put in front of people: messages (all versions, blocks included),
    ephemerals, response_url posts, views and file titles."""
    parts = []
    for m in h.slack.messages:
        for text, blocks in m.history:
            parts += [text or "", json.dumps(blocks or [])]
    parts += [e.text or "" for e in h.slack.ephemerals]
    parts += [json.dumps(r.body) for r in h.slack.responses]
    parts += [json.dumps(v.__dict__, default=str) for v in h.slack.views]
    parts += [f.initial_comment or "" for f in h.slack.files]  # titles and alt text are plain text
    return "\n".join(parts)


def assert_literal(h, markups=MARKUP):
    shown = everything_posted(h)
    for markup in markups:
        assert markup not in shown, markup


# -- 1. mention and link injection -------------------------------------------------------------

async def test_typed_mentions_and_links_are_shown_literally_and_sent_to_luma_as_typed(harness):
    h = harness
    job = await h.finished((await h.imagine(INJECTION)).id)
    assert job.state == JobState.DONE
    assert h.luma.creates[-1]["prompt"] == INJECTION
    assert "&lt;!channel&gt; hi" in h.status_text(job)
    (image,) = h.slack.files_in_thread("C1", job.status_ts)
    assert image.title == image.alt_txt == INJECTION  # plain-text fields: shown as typed
    await h.slack.post_event(h.url, app_home_opened_event("U1"))
    await h.slack.wait_for(lambda: h.slack.home_view("U1") is not None)
    assert "&lt;!here&gt;" in json.dumps(h.slack.home_view("U1"))
    assert_literal(h)


async def test_typed_markup_in_a_bad_flag_is_echoed_literally(harness):
    h = harness
    status, body = await h.command("a cat --ar <!channel>")
    assert status == 200
    text = json.loads(body)["text"]
    assert "&lt;!channel&gt;" in text and "<!channel>" not in text
    assert h.luma.creates == []


async def test_session_theme_prompts_and_recap_notify_nobody(harness):
    h = harness
    h.slack.set_user("U2", name="bob")
    status, body = await h.command("session start <!here> noir > color", command="/luma")
    assert status == 200 and not body
    banner = next(m for m in h.slack.bot_messages("C1") if "creative session" in (m.text or ""))
    assert "&lt;!here&gt; noir &gt; color" in banner.text
    await h.slack.post_event(h.url, message_event("a cat > a dog <!everyone>", user="U2"))
    job = await h.wait_job(lambda j: j.session_id is not None and j.settled)
    assert job.state == JobState.DONE
    await h.slack.post_event(h.url, reaction_event("star", user="U1", ts=job.actions_ts))
    status, _ = await h.command("session stop", command="/luma")
    await h.slack.wait_for(lambda: any("Creative session over" in (f.initial_comment or "")
                                       for f in h.slack.files))
    recap = next(f.initial_comment for f in h.slack.files if "Creative session over" in (f.initial_comment or ""))
    link = re.search(r"<(https://[^|<>]+)\|([^<>]*)>", recap)  # the link survives the `>`
    assert link and "/archives/C1/p" in link.group(1)
    assert link.group(2).startswith("a cat &gt; a dog &lt;!everyone&gt;")
    assert "by bob" in recap and "<@U2>" not in recap  # names, not mentions
    assert_literal(h, ("<!here>", "<!everyone>"))  # (<@U2> is the requester on their status)


# -- 2. the bot token goes only to Slack --------------------------------------------------------

async def test_file_urls_on_other_hosts_never_get_the_token(harness):
    h = harness
    seen: list[str | None] = []

    async def evil(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        return web.Response(body=png(), content_type="image/png")

    app = web.Application()
    app.router.add_get("/{name}", evil)
    async with served(app) as port:
        first = await h.finished((await h.imagine("a house")).id)
        f = h.slack.add_user_file(png(), name="x.png", mimetype="image/png")
        f["url_private_download"] = f["url_private"] = f"http://127.0.0.1:{port}/x.png"
        await h.slack.post_event(h.url, message_event("make it blue", thread_ts=first.status_ts, files=[f]))
        job = await h.wait_job(lambda j: j.params.type == "image_edit" and j.settled)
        assert job.state == JobState.FAILED and job.failure_code == "image_untrusted_host"
        assert "only downloads files from Slack" in h.thread_texts(first.status_ts)[-1]
        assert seen == []
        assert len(h.luma.creates) == 1


def test_token_hosts_are_slack_over_https_and_the_configured_api():
    from lumabot.slack.files import TokenHosts

    hosts = TokenHosts("http://127.0.0.1:4000/api/")
    assert hosts.allows("https://files.slack.com/files-pri/T1-F1/x.png")
    assert hosts.allows("https://acme.enterprise.slack.com/x")
    assert hosts.allows("http://127.0.0.1:4000/files-pri/x")
    for url in ("http://files.slack.com/x", "https://files.slack.com.evil.example/x",
                "https://evilslack.com/x", "http://127.0.0.1:4001/x", "https://127.0.0.1:4000/x",
                "ftp://files.slack.com/x", "not a url"):
        assert not hosts.allows(url), url
    assert not TokenHosts("https://slack.com/api/").allows("http://slack.com/x")


# -- 3. logs -----------------------------------------------------------------------------------

@pytest.mark.parametrize("body", [
    b"command=%2Fimagine&text=" + b"A" * 1_000_000 + b"%0AFAKE+LOG+LINE+lumabot%3A+admin+granted",
    b"payload=" + b"A" * 1_000_000 + b"\nFAKE LOG LINE lumabot: admin granted",
])
async def test_unsigned_requests_leave_one_short_line_without_the_body(harness, caplog, body):
    h = harness
    caplog.set_level(logging.DEBUG)
    status, _ = await h.slack.peer.post_raw(h.url, body, content_type="application/x-www-form-urlencoded",
                                            sign=False)
    assert status in (400, 401)
    lines = [r for r in caplog.records if "rejected" in r.getMessage()]
    assert len(lines) == 1
    assert len(lines[0].getMessage()) < 200
    assert all("AAAA" not in r.getMessage() and "FAKE LOG" not in r.getMessage() for r in caplog.records)


# -- 4. Slack Connect: limits count for the installing workspace ----------------------------

async def test_slack_connect_users_spend_the_installing_workspace_budget(start_bot):
    h = await start_bot(LUMABOT_DAILY_BUDGET_USD="0.05")
    status, body, *_ = await h.slack.post_command(h.url, "/imagine", "a boat", user_id="UEXT",
                                                  channel_id="C1", external_team="T0OTHER")
    assert status == 200 and not body
    job = await h.wait_job(lambda j: j.user_id == "UEXT")
    assert job.team_id == h.slack.team_id
    event = app_mention_event("a second boat", user="UEXT2")
    await h.slack.post_event(h.url, event, external_team="T0OTHER")
    await h.slack.wait_for(lambda: any("daily Luma budget" in (e.text or "") for e in h.slack.ephemerals))
    status, body = await h.command("a third boat")
    assert "daily Luma budget" in json.loads(body)["text"]
    await h.finished(job.id)
    assert [b["prompt"] for b in h.luma.creates] == ["a boat"]


# -- 5. workspace policy errors are final ------------------------------------------------------

async def test_thread_only_channel_means_nothing_generated_and_the_person_is_told(harness):
    h = harness
    h.slack.set_channel("C7", thread_only=True)
    status, body = await h.command("a lighthouse", channel_id="C7")
    assert status == 200
    await h.slack.wait_for(lambda: h.slack.responses)
    text = h.slack.responses[-1].text
    assert "only allows replies in threads" in text and "admin" in text
    assert h.luma.creates == []
    (job,) = await h.jobs()
    assert job.state == JobState.FAILED and job.failure_code == "slack_policy"
    assert h.slack.count_calls("chat.postMessage") == 1  # not retried


async def test_disabled_uploads_are_explained_once_and_logged_loudly(harness, caplog):
    h = harness
    h.slack.upload_restriction = "file_uploads_disabled"
    job = await h.finished((await h.imagine("a lighthouse")).id)
    assert job.state == JobState.FAILED
    assert "file uploads are turned off" in h.thread_texts(job.status_ts)[-1]
    assert h.slack.count_calls("files.getUploadURLExternal") == 1
    assert any(r.levelno >= logging.ERROR and "POLICY" in r.getMessage() for r in caplog.records)


# -- 6. DMs ------------------------------------------------------------------------------------

async def test_dm_messages_are_prompts_mentions_work_and_replies_edit(harness):
    h = harness
    h.slack.set_channel("D1", is_im=True)
    ev = await h.slack.user_posts(h.url, "a red kite", channel="D1")
    first = await h.wait_job(lambda j: j.channel_id == "D1" and j.settled)
    assert first.state == JobState.DONE and first.thread_ts == ev["ts"]
    await h.slack.user_posts(h.url, "a blue kite", channel="D1", mention_bot=True)
    second = await h.wait_job(lambda j: j.params.prompt == "a blue kite" and j.settled)
    assert second.state == JobState.DONE
    await h.slack.user_posts(h.url, "make it night", channel="D1", thread_ts=ev["ts"])
    edit = await h.wait_job(lambda j: j.params.type == "image_edit" and j.settled)
    assert h.luma.creates[-1]["source"] == {"generation_id": first.generation_id}
    assert edit.state == JobState.DONE and len(h.luma.creates) == 3


# -- 7. acks before any Web API call -----------------------------------------------------------

async def test_delete_is_acked_before_slack_answers_anything(harness):
    h = harness
    job = await h.finished((await h.imagine("a lighthouse")).id)
    held = h.slack.hold("users.info")
    payload = block_actions_payload("delete", value=job.id, user_id="U1", channel_id="C1",
                                    message_ts=job.actions_ts, thread_ts=job.root_ts)
    status, _ = await h.slack.post_interaction(h.url, payload)
    assert status == 200 and h.slack.held["users.info"] == 1  # acked while users.info hangs
    held.set()
    h.slack.release("users.info")
    await h.slack.wait_for(lambda: h.slack.message("C1", job.actions_ts).deleted)


async def test_expired_trigger_gets_an_explanation_not_an_error(harness):
    h = harness
    h.slack.trigger_ttl = -1  # Slack handed the trigger over too late
    msg = h.slack.add_user_message("C1", "look", files=[h.slack.add_user_file(png(), name="a.png",
                                                                                mimetype="image/png")])
    status, _ = await h.slack.post_interaction(h.url, message_shortcut_payload("edit_image", message=msg))
    assert status == 200
    await h.slack.wait_for(lambda: h.slack.responses)
    assert "took too long" in h.slack.responses[-1].text
    status, body = await h.command("")  # /imagine's form
    assert status == 200
    await h.slack.wait_for(lambda: len(h.slack.responses) == 2)


# -- 8. a message corrected after an error -----------------------------------------------------

async def test_mention_fixed_by_an_edit_is_processed_once(harness):
    h = harness
    event = app_mention_event("a castle --ar 5:4")
    await h.slack.post_event(h.url, event)
    await h.slack.post_event(h.url, message_event("a castle --ar 5:4", ts=event["ts"], mention_bot=True))
    await h.slack.wait_for(lambda: h.slack.ephemerals)
    assert "5:4" in h.slack.ephemerals[0].text and h.luma.creates == []
    original = message_event("a castle --ar 5:4", ts=event["ts"], mention_bot=True)
    fixed = message_changed_event(original, "a castle --ar 16:9", mention_bot=True)
    await h.slack.post_event(h.url, fixed)
    job = await h.wait_job(lambda j: j.settled)
    assert job.state == JobState.DONE and h.luma.creates[0]["aspect_ratio"] == "16:9"
    await h.slack.post_event(h.url, fixed)  # retried
    await h.slack.post_event(h.url, message_changed_event(original, "a castle --ar 16:9 again",
                                                          mention_bot=True))
    await h.finished((await h.imagine("a signal that the events before were handled")).id)
    assert [c["prompt"] for c in h.luma.creates][:1] == ["a castle"] and len(h.luma.creates) == 2
    assert len(h.slack.ephemerals) == 1


# -- 9. message sizes --------------------------------------------------------------------------

async def test_a_long_theme_makes_a_banner_within_slacks_limit(harness):
    h = harness
    status, body = await h.command("session start " + "very long theme " * 370, command="/luma")
    assert status == 200 and not body
    banner = next(m for m in h.slack.bot_messages("C1") if "creative session" in (m.text or ""))
    assert len(banner.text) <= 4000


async def test_help_and_form_say_the_form_takes_10_mb_a_file(harness):
    h = harness
    status, body = await h.command("help", command="/luma")
    assert "10 MB" in json.loads(body)["text"]
    await h.command("")
    await h.slack.wait_for(lambda: h.slack.views)
    assert "10 MB" in json.dumps(h.slack.views[-1].__dict__, default=str)


# -- 13. database faults -----------------------------------------------------------------------

SQLITE_FAULTS = pytest.mark.skipif(os.environ.get("LUMABOT_TEST_STORE") == "postgresql",
                                   reason="injects a SQLite fault (the PostgreSQL store maps its own "
                                          "faults to StoreUnavailable the same way)")


@SQLITE_FAULTS
async def test_a_locked_database_delays_but_never_discards_a_finished_image(harness, tmp_path):
    h = harness
    h.luma.script(Outcome(hold=True))
    job = await h.imagine("a lighthouse")
    await h.luma.wait_for(lambda: len(h.luma.generations) == 1)
    # Another process's lock, taken from a thread: waiting for it must not block the bot's loop.
    locker = sqlite3.connect(tmp_path / "lumabot.db", isolation_level=None, timeout=10,
                             check_same_thread=False)
    await asyncio.to_thread(locker.execute, "BEGIN EXCLUSIVE")
    try:
        h.luma.release_all()
        await h.slack.wait_for(lambda: h.bot.metrics.store_errors._value.get() >= 1, timeout=10)
        status, body = await h.command("a second lighthouse")
        assert status == 200 and "try again" in json.loads(body)["text"]
    finally:
        locker.execute("COMMIT")
        locker.close()
    done = await h.finished(job.id, timeout=10)
    assert done.state == JobState.DONE
    assert len([f for f in h.slack.files_in_thread("C1", done.status_ts) if f.shared]) == 1
    assert len(h.luma.creates) == 1


@SQLITE_FAULTS
async def test_a_database_refusing_writes_stalls_jobs_until_it_clears(harness):
    """As with a full disk: every write fails for a while; no job is lost or needs a restart."""
    h = harness
    h.luma.script(Outcome(hold=True))
    job = await h.imagine("a lighthouse")
    await h.wait_job(lambda j: j.id == job.id and j.state == JobState.GENERATING)
    db = h.bot.store.db.db  # SQLite's writer connection
    await db.execute("PRAGMA query_only = ON")  # every write: "attempt to write a readonly database"
    h.luma.release_all()
    await h.slack.wait_for(lambda: h.bot.metrics.store_errors._value.get() >= 2, timeout=10)
    assert (await h.bot.store.jobs.get(job.id)).state == JobState.GENERATING
    await db.execute("PRAGMA query_only = OFF")
    done = await h.finished(job.id, timeout=10)
    assert done.state == JobState.DONE
    assert len([f for f in h.slack.files_in_thread("C1", done.status_ts) if f.shared]) == 1


# -- 14. atomic admission ----------------------------------------------------------------------

async def _burst(h, n, **kw):
    results = await asyncio.gather(*(h.command(f"a cat number {i}", **kw) for i in range(n)))
    assert all(status == 200 for status, _ in results)
    return [json.loads(body)["text"] for _, body in results if body]


async def test_parallel_requests_never_pass_the_daily_image_limit(start_bot):
    h = await start_bot(LUMABOT_USER_DAILY_IMAGES="5", LUMABOT_MAX_QUEUED_PER_USER="100")
    refusals = await _burst(h, 30)
    assert len(refusals) == 25 and all("daily limit of 5" in t for t in refusals)
    assert len(await h.jobs()) == 5


async def test_parallel_requests_never_pass_the_daily_budget(start_bot):
    h = await start_bot(LUMABOT_DAILY_BUDGET_USD="0.2", LUMABOT_MAX_QUEUED_PER_USER="100")
    refusals = await _burst(h, 20)
    assert len(await h.jobs()) == 4  # 4 x $0.0404 <= $0.20 < 5 x $0.0404
    assert len(refusals) == 16


async def test_parallel_requests_never_pass_the_waiting_cap(start_bot):
    h = await start_bot(LUMABOT_MAX_QUEUED_PER_USER="3", LUMABOT_LUMA_CONCURRENCY="1")
    h.luma.script(Outcome(hold=True))
    first = await h.imagine("the first cat")
    await h.luma.wait_for(lambda: len(h.luma.generations) == 1)
    refusals = await _burst(h, 20)
    assert len(refusals) == 17 and all("waiting in line" in t for t in refusals)
    assert len(await h.jobs()) == 4
    h.luma.release_all()
    await h.finished(first.id)


# -- 15. inputs are prepared only when a job is submitted --------------------------------------

async def test_a_waiting_edit_downloads_its_image_only_when_its_turn_comes(start_bot):
    h = await start_bot(LUMABOT_LUMA_CONCURRENCY="1")
    h.luma.script(Outcome(hold=True))
    first = await h.imagine("a house")
    await h.luma.wait_for(lambda: len(h.luma.generations) == 1)
    f = h.slack.add_user_file(png(), name="photo.png", mimetype="image/png")
    await h.slack.post_event(h.url, app_mention_event("make it blue", files=[f]))
    edit = await h.wait_job(lambda j: j.params.type == "image_edit" and j.status_ts is not None)
    assert edit.state == JobState.QUEUED
    assert not any(d.file_id == f["id"] for d in h.slack.downloads)
    h.luma.release_all()
    done = await h.finished(edit.id)
    assert done.state == JobState.DONE and h.luma.creates[-1]["source"]["media_type"] == "image/png"
    assert (await h.finished(first.id)).state == JobState.DONE


# -- 12. an upload that took effect but answered an error ----------------------------------------

async def test_an_upload_that_answered_500_but_took_effect_is_not_reported_as_failed(harness):
    h = harness
    h.slack.share_delay = 0.5
    h.slack.fail_next("files.completeUploadExternal", status=500, after_effect=True)
    job = await h.finished((await h.imagine("a lighthouse")).id)
    assert job.state == JobState.DONE
    assert h.slack.count_calls("files.getUploadURLExternal") == 1
    assert len([f for f in h.slack.files_in_thread("C1", job.status_ts) if f.shared]) == 1
