"""Creative sessions end to end."""

from __future__ import annotations

import asyncio
import io
import json
import time

from PIL import Image

from lumabot.jobs.contact_sheet import cell_box, grid
from lumabot.jobs.models import JobState
from lumabot.store import open_store
from lumabot.testing.fake_luma import color_for_prompt
from lumabot.testing.fake_slack import message_event, reaction_event


def png(size=(48, 64), color=(250, 200, 0)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


async def post(h, text="", *, user="U1", channel="C1", **kw):
    event = message_event(text, user=user, channel=channel, **kw)
    status, _ = await h.slack.post_event(h.url, event)
    assert status == 200
    return event


async def start(h, text="", *, user="U1"):
    status, body = await h.command(f"session start {text}".strip(), command="/luma", user_id=user)
    assert status == 200
    return json.loads(body)["text"] if body else None


async def settled_session_jobs(h, n, timeout=10.0):
    until = time.monotonic() + timeout
    while True:
        jobs = [j for j in await h.jobs() if j.session_id]
        if len(jobs) >= n and all(j.settled for j in jobs):
            return jobs
        assert time.monotonic() < until, [(j.params.prompt, j.state) for j in jobs]
        await asyncio.sleep(0.02)


def banner(h):
    return [m for m in h.slack.bot_messages("C1") if "creative session" in (m.text or "")][0]


def sheet_file(h):
    sheets = [f for f in h.slack.files if f.shared and f.filename == "creative-session-contact-sheet.png"]
    return sheets


async def test_start_banner_and_second_start_refused(harness):
    h = harness
    assert await start(h, "--ar 2:3 --max noir city at night", user="U1") is None
    b = banner(h)
    assert b.thread_ts is None
    for piece in ["<@U1>", "--ar 2:3 --max", "noir city at night", "every message", "/luma session stop",
                  "60 minutes", "100 images", ":star:"]:
        assert piece in b.text, piece
    answer = await start(h, "another one", user="U2")
    assert "already running" in answer and "<@U1>" in answer and "/archives/C1/p" in answer
    assert len([m for m in h.slack.bot_messages("C1") if "creative session" in (m.text or "")]) == 1


async def test_bad_session_flags_are_refused(harness):
    answer = await start(harness, "--style manga --ar 16:9 comics")
    assert "portrait" in answer
    assert await harness.bot.store.sessions.running("T0TEST", "C1") is None


async def test_messages_become_prompts_with_session_defaults_and_theme(harness):
    h = harness
    await start(h, "--ar 2:3 --max watercolor")
    m1 = await post(h, "a fox in the snow", user="U1")
    m2 = await post(h, "a heron at dawn --ar 1:1", user="U2")
    await post(h, "bot noise", user="UB", bot_id="B9")                       # ignored
    await h.slack.post_event(h.url, {**message_event("x"), "subtype": "message_changed"})  # ignored
    jobs = await settled_session_jobs(h, 2)
    assert all(j.state == JobState.DONE for j in jobs)
    by_prompt = {b["prompt"]: b for b in h.luma.creates}
    fox = by_prompt["a fox in the snow. Style direction: watercolor"]
    heron = by_prompt["a heron at dawn. Style direction: watercolor"]
    assert fox["aspect_ratio"] == "2:3" and fox["model"] == "uni-1-max"
    assert heron["aspect_ratio"] == "1:1" and heron["model"] == "uni-1-max"  # the message's flag wins
    # Each result lands in its message's thread.
    for m in (m1, m2):
        assert len(h.slack.files_in_thread("C1", m["ts"])) == 1
    assert len(h.luma.creates) == 2


async def test_image_message_and_thread_reply_edit(harness):
    h = harness
    await start(h, "--max")
    f = h.slack.add_user_file(png(), name="sketch.png", mimetype="image/png")
    msg = await post(h, "ink this sketch", files=[f])
    (edit,) = await settled_session_jobs(h, 1)
    assert edit.params.type == "image_edit" and edit.thread_ts == msg["ts"]
    assert "data" in h.luma.creates[0]["source"] and h.luma.creates[0]["model"] == "uni-1-max"
    await post(h, "now add color", thread_ts=msg["ts"], user="U2")
    jobs = await settled_session_jobs(h, 2)
    second = [j for j in jobs if j.id != edit.id][0]
    assert h.luma.creates[1]["source"] == {"generation_id": edit.generation_id}
    assert second.thread_ts == msg["ts"] and second.session_id == edit.session_id


async def test_votes_status_stop_recap_and_contact_sheet(start_bot):
    h = await start_bot()
    await start(h, "--ar 3:2 postcards", user="U1")
    prompts = [("a red barn", "U1"), ("a blue lake", "U2"), ("a green hill", "U3"), ("a gold sunset", "U2")]
    for text, user in prompts:
        await post(h, text, user=user)
    jobs = sorted(await settled_session_jobs(h, 4), key=lambda j: j.created_at)

    def share_ts(job):
        (f,) = h.slack.files_in_thread("C1", job.thread_ts)
        return f.share_ts

    # Votes: stars on the images (the image message itself, or its buttons message).
    votes = [(jobs[1], "U1"), (jobs[1], "U3"), (jobs[1], "U4"), (jobs[2], "U1"), (jobs[2], "U2"),
             (jobs[0], "U2"), (jobs[3], "U9")]
    for job, user in votes:
        await h.slack.post_event(h.url, reaction_event("star", user=user, ts=share_ts(job)))
    await h.slack.post_event(h.url, reaction_event("star", user="U9", ts=jobs[3].actions_ts, added=False))
    await h.slack.post_event(h.url, reaction_event("star", user="U9", ts=share_ts(jobs[3]), added=False))
    await h.slack.post_event(h.url, reaction_event("thumbsup", user="U5", ts=share_ts(jobs[3])))
    assert await h.bot.store.sessions.votes(jobs[0].session_id) == {jobs[1].id: 3, jobs[2].id: 2, jobs[0].id: 1}

    status, body = await h.command("session", command="/luma", user_id="U2")
    text = json.loads(body)["text"]
    assert "started by <@U1>" in text and "4 images so far" in text and "3 people" in text
    assert "$0.16" in text  # 4 x $0.0404

    status, body = await h.command("session stop", command="/luma", user_id="U3")
    assert status == 200 and not body
    await h.slack.wait_for(lambda: len(sheet_file(h)) == 1)
    (sheet,) = sheet_file(h)
    recap = sheet.initial_comment
    assert "stopped by <@U3>" in recap and "4 images" in recap and "3 people" in recap
    lines = recap.splitlines()
    top = [line for line in lines if line[:2] in ("1.", "2.", "3.")]
    assert "a blue lake" in top[0] and "(3 votes)" in top[0] and "/archives/C1/p" in top[0]
    assert "a green hill" in top[1] and "(2 votes)" in top[1]
    assert "a red barn" in top[2] and "(1 vote)" in top[2]
    assert sheet.thread_ts is None  # in the channel, with the recap

    # The contact sheet holds every image, in order.
    img = Image.open(io.BytesIO(sheet.content)).convert("RGB")
    cols, rows = grid(len(jobs))
    assert (cols, rows) == (2, 2)
    for i, job in enumerate(jobs):
        left, top_, right, bottom = cell_box(i, cols)
        centre = img.getpixel(((left + right) // 2, (top_ + bottom) // 2))
        expected = color_for_prompt(h.luma.generations[job.generation_id].body["prompt"])
        assert all(abs(a - b) <= 8 for a, b in zip(centre, expected)), (i, centre, expected)
    assert "is over" in h.slack.message("C1", banner(h).ts).text
    assert await h.bot.store.sessions.running("T0TEST", "C1") is None

    # After the session, plain messages are plain messages again (a job would be recorded
    # before the ack, so once the post is answered, none is).
    await post(h, "just chatting")
    assert len(await h.jobs()) == 4 and len(h.luma.creates) == 4


async def test_session_ends_when_idle(start_bot):
    h = await start_bot(LUMABOT_SESSION_IDLE_MINUTES="0.005")  # 0.3 s
    await start(h, "sketches")
    await h.slack.wait_for(lambda: any("Creative session over" in (m.text or "")
                                       for m in h.slack.bot_messages("C1")), timeout=5)
    recap = [m for m in h.slack.bot_messages("C1") if "Creative session over" in (m.text or "")][0]
    assert "no prompt for 0.005 minutes" in recap.text and "0 images" in recap.text


async def test_session_ends_at_the_image_cap(start_bot):
    h = await start_bot(LUMABOT_SESSION_MAX_IMAGES="2")
    await start(h, "tiny session")
    await post(h, "first", user="U1")
    await post(h, "second", user="U2")
    await h.slack.wait_for(lambda: len(sheet_file(h)) == 1, timeout=10)
    assert "it reached 2 images" in sheet_file(h)[0].initial_comment
    await post(h, "third", user="U3")  # handled (and refused) before the ack
    assert len(await h.jobs()) == 2 and len(h.luma.creates) == 2


async def test_session_survives_a_restart_and_idle_end_is_applied_on_start(start_bot, slack, tmp_path):
    h = await start_bot()
    await start(h, "--max restart proof")
    await post(h, "before the restart", user="U1")
    await settled_session_jobs(h, 1)
    await h.bot.stop()

    h2 = await start_bot()
    await post(h2, "after the restart", user="U2")
    jobs = await settled_session_jobs(h2, 2)
    assert len({j.session_id for j in jobs}) == 1
    assert h2.luma.creates[-1]["model"] == "uni-1-max"
    f = [f for f in slack.files if f.shared][0]
    await slack.post_event(h2.url, reaction_event("star", user="U3", ts=f.share_ts))
    await h2.bot.stop()

    # Down longer than the idle limit (its last prompt an hour ago, the limit 60 minutes): the
    # session is ended, with its recap, at start.
    store = open_store(h2.bot.settings.database_url)
    await store.open()
    session = await store.sessions.running("T0TEST", "C1")
    await store.sessions.touch(session.id, time.time() - 3601)
    await store.close()
    h3 = await start_bot()
    await slack.wait_for(lambda: len(sheet_file(h3)) == 1, timeout=5)
    recap = sheet_file(h3)[0].initial_comment
    assert "no prompt for" in recap and "2 images" in recap and "2 people" in recap
    assert "before the restart" in recap and "(1 vote)" in recap


async def test_an_image_is_in_the_contact_sheet_however_soon_the_session_stops(start_bot):
    """The thumbnail is kept before the job is recorded done: a stop that sees the image done
    (it counts it in the recap) always finds its thumbnail for the contact sheet."""
    h = await start_bot()
    store = h.bot.store.sessions
    keep, entered, release = store.save_thumbnail, asyncio.Event(), asyncio.Event()

    async def held_thumbnail(job_id, data):
        entered.set()
        await release.wait()
        await keep(job_id, data)

    store.save_thumbnail = held_thumbnail
    await start(h, "postcards")
    await post(h, "a red barn", user="U1")
    await asyncio.wait_for(entered.wait(), 10)
    (job,) = [j for j in await h.jobs() if j.session_id]
    assert job.state != JobState.DONE   # not done while its thumbnail is still being written
    release.set()
    (job,) = await settled_session_jobs(h, 1)
    assert job.state == JobState.DONE and list(await store.thumbnails([job.id])) == [job.id]


async def test_a_contact_sheet_reserved_but_never_sent_is_posted_once_at_the_next_try(start_bot, slack):
    """The recap's file id is recorded before its bytes go; when they never arrived (the upload
    failed, or the process stopped in between), the next try reserves another file and the
    channel gets exactly one contact sheet."""
    h = await start_bot()
    await start(h, "postcards")
    await post(h, "a red barn", user="U1")
    await settled_session_jobs(h, 1)
    slack.fail_upload_next(500, count=100)   # every try of the sheet's bytes fails, for now
    status, body = await h.command("session stop", command="/luma", user_id="U1")
    assert status == 200 and not body

    async def ended_with_a_reserved_sheet():
        found = [s for s in await h.bot.store.sessions.unfinished() if s.ended_at and s.recap_file_id]
        return found[0] if found else None

    session = await slack.wait_for(ended_with_a_reserved_sheet, message="no sheet reserved")
    assert not session.recap_posted and sheet_file(h) == []
    await h.bot.stop()

    slack._upload_faults.clear()
    h2 = await start_bot()   # the recap is tried again at start
    await slack.wait_for(lambda: len(sheet_file(h2)) == 1, timeout=5)
    async def posted():
        found = await h2.bot.store.sessions.get(session.id)
        return found if found is not None and found.recap_posted else None

    again = await slack.wait_for(posted, message="recap not recorded as posted")
    (sheet,) = sheet_file(h2)
    assert again.recap_file_id == sheet.id != session.recap_file_id   # a new file, once


async def test_a_batch_that_would_pass_the_sessions_cap_is_refused_whole(start_bot):
    h = await start_bot(LUMABOT_SESSION_MAX_IMAGES="3")
    await start(h, "small session --n 2")                  # every prompt makes two
    event = await post(h, "first pair", user="U1")
    await settled_session_jobs(h, 2)
    await post(h, "one too many", user="U2")                # two more would make four of three
    await h.slack.wait_for(lambda: any("takes 1 more image" in (e.text or "") for e in h.slack.ephemerals))
    assert len(h.luma.creates) == 2 and event["ts"]
    await post(h, "a single --n 1", user="U2")
    await settled_session_jobs(h, 3)
