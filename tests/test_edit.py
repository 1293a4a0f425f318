"""Editing end to end: thread replies, attached images, mentions, `/edit`, the shortcut."""

from __future__ import annotations

import base64
import io
import json
import tracemalloc

from PIL import Image

from lumabot.jobs.failures import FAILURE_MESSAGES
from lumabot.jobs.models import JobState
from lumabot.intake import ASK_WHAT_TO_CHANGE, NO_IMAGE_IN_CHANNEL, NO_IMAGE_IN_MESSAGE
from lumabot.testing.fake_slack import (
    app_mention_event,
    message_event,
    message_shortcut_payload,
    view_submission_payload,
)


def png(size=(40, 30), color=(200, 30, 30), fmt="PNG", **save) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, fmt, **save)
    return buf.getvalue()


def decoded_source(body: dict) -> Image.Image:
    src = body["source"]
    return Image.open(io.BytesIO(base64.b64decode(src["data"])))


async def imagined(h, text="a lighthouse at dusk"):
    job = await h.imagine(text)
    return await h.finished(job.id)


async def reply(h, thread_ts, text="", *, user="U1", files=None, event_id=None, channel="C1", **kw):
    event = message_event(text, user=user, channel=channel, thread_ts=thread_ts, files=files, **kw)
    status, _ = await h.slack.post_event(h.url, event, event_id=event_id)
    assert status == 200
    return event


def edits(h):
    return [b for b in h.luma.creates if b["type"] == "image_edit"]


def shared_files(h, thread_ts, channel="C1"):
    return [f for f in h.slack.files_in_thread(channel, thread_ts) if f.shared]


async def test_text_reply_in_bot_thread_edits_by_generation_id(harness):
    h = harness
    first = await imagined(h)
    await reply(h, first.status_ts, "make it night --max")
    edit = await h.wait_job(lambda j: j.params.type == "image_edit" and j.settled)
    assert edit.state == JobState.DONE
    (body,) = edits(h)
    assert body["source"] == {"generation_id": first.generation_id}
    assert body["prompt"] == "make it night" and body["model"] == "uni-1-max"
    assert "aspect_ratio" not in body
    # The result and its own status reply are in the same thread.
    assert edit.thread_ts == first.status_ts
    status_reply = h.slack.message("C1", edit.status_ts)
    assert status_reply.thread_ts == first.status_ts and "Done in" in status_reply.text
    images = shared_files(h, first.status_ts)
    assert len(images) == 2 and images[1].content == h.luma.output_bytes(edit.generation_id)


async def test_chain_of_three_edits_each_applies_to_the_newest_image(harness):
    h = harness
    first = await imagined(h, "a small house")
    previous = first
    for i, instruction in enumerate(["add a garden", "make it winter", "paint it as a watercolor"], 1):
        await reply(h, first.status_ts, instruction)
        job = await h.wait_job(lambda j, n=instruction: j.params.prompt == n and j.settled)
        assert job.state == JobState.DONE
        assert edits(h)[-1]["source"] == {"generation_id": previous.generation_id}
        previous = job
    assert len(shared_files(h, first.status_ts)) == 4


async def test_reply_with_attached_images_edits_them_with_references(harness):
    h = harness
    first = await imagined(h)
    files = [h.slack.add_user_file(png(color=(10 * i, 100, 50)), name=f"p{i}.png", mimetype="image/png")
             for i in range(3)]
    await reply(h, first.status_ts, "put these together", files=files)
    edit = await h.wait_job(lambda j: j.params.type == "image_edit" and j.settled)
    assert edit.state == JobState.DONE
    (body,) = edits(h)
    assert body["source"]["media_type"] == "image/png"
    assert decoded_source(body).getpixel((0, 0)) == (0, 100, 50)
    assert len(body["image_ref"]) == 2 and all("data" in r for r in body["image_ref"])
    # The bot token went with every download; the upload landed in the thread.
    assert len(shared_files(h, first.status_ts)) == 2


async def test_image_without_text_asks_what_to_change_and_spends_nothing(harness):
    h = harness
    first = await imagined(h)
    f = h.slack.add_user_file(png(), name="mine.png", mimetype="image/png")
    event = message_event("", channel="C1", thread_ts=first.status_ts, files=[f])
    for retry in (None, 1):  # a retried event: asked once
        await h.slack.post_event(h.url, event, event_id="EvAsk", retry_num=retry)
    await h.slack.wait_for(lambda: any(ASK_WHAT_TO_CHANGE in t for t in h.thread_texts(first.status_ts)))
    assert sum(ASK_WHAT_TO_CHANGE in t for t in h.thread_texts(first.status_ts)) == 1
    assert edits(h) == []
    # The next text reply edits the image the person attached (the newest in the thread).
    await reply(h, first.status_ts, "make the background blue")
    await h.wait_job(lambda j: j.params.type == "image_edit" and j.settled)
    (body,) = edits(h)
    assert "data" in body["source"]


async def test_retried_message_event_starts_one_edit(harness):
    h = harness
    first = await imagined(h)
    event = message_event("make it night", channel="C1", thread_ts=first.status_ts)
    for retry in (None, 1, 2):
        await h.slack.post_event(h.url, event, event_id="EvRetry", retry_num=retry)
    await h.wait_job(lambda j: j.params.type == "image_edit" and j.settled)
    assert len(edits(h)) == 1


async def test_unrelated_threads_and_plain_messages_are_ignored(harness):
    h = harness
    first = await imagined(h)
    top = await reply(h, None, "just chatting, no bot here")
    await reply(h, top["ts"], "a reply in a thread lumabot has nothing to do with")
    f = h.slack.add_user_file(png(), name="cat.png", mimetype="image/png")
    await reply(h, None, "look at my cat", files=[f])
    # In lumabot's own thread, where a person's reply would edit: other bots' messages, edits
    # that are not a person correcting their text (unfurls), and deletions are ignored.
    await reply(h, first.status_ts, "bot chatter", bot_id="B999")
    unfurl = message_event("make it a watercolor", channel="C1", thread_ts=first.status_ts)
    await h.slack.post_event(h.url, {**message_event("", channel="C1"), "subtype": "message_changed",
                                     "message": unfurl})
    await h.slack.post_event(h.url, {**message_event("make it sepia", channel="C1",
                                                     thread_ts=first.status_ts),
                                     "subtype": "message_deleted"})
    # A person's reply after them is handled: once its edit is done, every earlier event was.
    await reply(h, first.status_ts, "make it night")
    await h.wait_job(lambda j: j.params.type == "image_edit" and j.settled)
    assert [b["prompt"] for b in edits(h)] == ["make it night"]
    assert len(h.luma.creates) == 2
    assert h.slack.count_calls("chat.postEphemeral") == 0


async def test_lumabot_own_messages_are_ignored(harness):
    h = harness
    first = await imagined(h)
    await reply(h, first.status_ts, "make it sepia", user=h.slack.bot_user_id, bot_id=h.slack.bot_id)
    await reply(h, first.status_ts, "make it night")  # handled after the bot's own message
    await h.wait_job(lambda j: j.params.type == "image_edit" and j.settled)
    assert [b["prompt"] for b in edits(h)] == ["make it night"]


async def test_mention_with_image_edits_it_in_that_messages_thread(harness):
    h = harness
    f = h.slack.add_user_file(png(size=(60, 20)), name="photo.png", mimetype="image/png")
    event = app_mention_event("<@UBOT> make this a watercolor", channel="C2", files=[f])
    await h.slack.post_event(h.url, event)
    # Slack also sends the message event for the same message: still one edit.
    await h.slack.post_event(h.url, message_event(event["text"], channel="C2", ts=event["ts"], files=[f]))
    edit = await h.wait_job(lambda j: j.settled)
    assert edit.state == JobState.DONE and edit.thread_ts == event["ts"]
    (body,) = edits(h)
    assert decoded_source(body).size == (60, 20)
    assert len(shared_files(h, event["ts"], channel="C2")) == 1


async def test_mention_in_bot_thread_edits_the_thread_image(harness):
    h = harness
    first = await imagined(h)
    await h.slack.post_event(h.url, app_mention_event("<@UBOT> add a moon", channel="C1",
                                                     thread_ts=first.status_ts))
    await h.wait_job(lambda j: j.params.type == "image_edit" and j.settled)
    assert edits(h)[0]["source"] == {"generation_id": first.generation_id}


async def test_edit_command_edits_latest_bot_image_into_its_thread(harness):
    h = harness
    await imagined(h, "first picture")
    second = await imagined(h, "second picture")
    status, body = await h.command("make it snow --max", command="/edit")
    assert status == 200 and not (body and json.loads(body).get("text"))
    edit = await h.wait_job(lambda j: j.params.type == "image_edit" and j.settled)
    assert edits(h)[0]["source"] == {"generation_id": second.generation_id}
    assert edit.thread_ts == second.status_ts
    assert len(shared_files(h, second.status_ts)) == 2


async def test_edit_command_edits_latest_image_a_user_shared(harness):
    h = harness
    await imagined(h)
    f = h.slack.add_user_file(png(size=(30, 90)), name="shared.png", mimetype="image/png")
    shared = await reply(h, None, "here is a sketch", files=[f])
    await h.command("ink it", command="/edit")
    edit = await h.wait_job(lambda j: j.params.type == "image_edit" and j.settled)
    assert edit.state == JobState.DONE and edit.thread_ts == shared["ts"]
    assert decoded_source(edits(h)[0]).size == (30, 90)
    assert len(shared_files(h, shared["ts"])) == 1


async def test_edit_command_without_any_image_explains(harness):
    status, body = await harness.command("make it night", command="/edit", channel_id="C7")
    reply_ = json.loads(body)
    assert reply_["response_type"] == "ephemeral" and reply_["text"] == NO_IMAGE_IN_CHANNEL
    assert harness.luma.requests == []


async def test_edit_command_refuses_aspect_ratio_and_empty_instruction(harness):
    h = harness
    await imagined(h)
    _, body = await h.command("make it wide --ar 16:9", command="/edit")
    assert "`--ar` does not apply to edits" in json.loads(body)["text"]
    _, body = await h.command("", command="/edit")
    assert "/edit <what to change>" in json.loads(body)["text"]
    assert edits(h) == []


# -- the shortcut ----------------------------------------------------------------------------

async def test_shortcut_opens_modal_and_submission_edits_into_the_thread(harness):
    h = harness
    f = h.slack.add_user_file(png(size=(50, 50)), name="x.png", mimetype="image/png")
    msg = message_event("my drawing", channel="C1", files=[f])
    await h.slack.post_event(h.url, msg)
    payload = message_shortcut_payload("edit_image", message=msg, channel_id="C1",
                                       response_url=h.slack.new_response_url())
    status, _ = await h.slack.post_interaction(h.url, payload)
    assert status == 200
    await h.slack.wait_for(lambda: len(h.slack.views) == 1)
    view = h.slack.views[0].view
    assert view["callback_id"] == "edit_image_modal"
    assert {b["block_id"] for b in view["blocks"] if b["type"] == "input"} == {"instruction", "model"}

    bad = view_submission_payload("edit_image_modal", {"instruction": {"instruction": "  "}},
                                  private_metadata=view["private_metadata"])
    status, body, *_ = await h.slack.post_interaction(h.url, bad)
    answer = json.loads(body)
    assert answer["response_action"] == "errors" and "What should change" in answer["errors"]["instruction"]

    values = {"instruction": {"instruction": "make it a stained glass window"},
              "model": {"model": {"type": "static_select",
                                  "selected_option": {"value": "uni-1-max", "text": {"type": "plain_text", "text": "uni-1-max"}}}}}
    ok = view_submission_payload("edit_image_modal", values, private_metadata=view["private_metadata"])
    status, body, *_ = await h.slack.post_interaction(h.url, ok)
    assert status == 200 and not body
    await h.slack.post_interaction(h.url, ok)  # a double submit: one edit
    edit = await h.wait_job(lambda j: j.settled)
    assert edit.state == JobState.DONE and edit.thread_ts == msg["ts"]
    (body_,) = edits(h)
    assert body_["model"] == "uni-1-max" and body_["prompt"] == "make it a stained glass window"
    assert len(shared_files(h, msg["ts"])) == 1


async def test_shortcut_on_a_lumabot_image_uses_its_generation(harness):
    h = harness
    first = await imagined(h)
    (f,) = shared_files(h, first.status_ts)
    file_obj = {"id": f.id, "name": f.filename, "mimetype": f.mimetype}
    msg = {"type": "message", "ts": "1700000999.000100", "thread_ts": first.status_ts,
           "user": h.slack.bot_user_id, "files": [file_obj]}
    await h.slack.post_interaction(h.url, message_shortcut_payload("edit_image", message=msg, channel_id="C1"))
    await h.slack.wait_for(lambda: len(h.slack.views) == 1)
    meta = json.loads(h.slack.views[0].view["private_metadata"])
    assert meta["source"] == {"generation_id": first.generation_id}
    assert meta["thread_ts"] == first.status_ts


async def test_shortcut_on_message_without_image_says_so_in_the_modal(harness):
    h = harness
    msg = message_event("no pictures here", channel="C1")
    await h.slack.post_interaction(h.url, message_shortcut_payload("edit_image", message=msg, channel_id="C1"))
    await h.slack.wait_for(lambda: len(h.slack.views) == 1)
    view = h.slack.views[0].view
    assert not view.get("submit")
    assert NO_IMAGE_IN_MESSAGE in json.dumps(view)
    assert h.luma.requests == []


# -- images from users -----------------------------------------------------------------------

async def _edit_with_file(h, f, text="make it brighter"):
    first = await imagined(h)
    await reply(h, first.status_ts, text, files=[f])
    job = await h.wait_job(lambda j: j.params.type == "image_edit" and j.settled, timeout=20)
    return first, job


async def test_private_file_without_access_asks_to_share_or_invite(harness):
    h = harness
    f = h.slack.add_user_file(png(), name="secret.png", mimetype="image/png")
    h.slack.fail_download_next(200)  # Slack answers its login page (HTML) instead of the file
    first, job = await _edit_with_file(h, f)
    assert job.state == JobState.FAILED and job.failure_code == "image_no_access"
    texts = h.thread_texts(first.status_ts)
    assert any(FAILURE_MESSAGES["image_no_access"] in t and "/invite @lumabot" in t for t in texts)
    assert edits(h) == []


async def test_oversized_file_is_refused_without_reading_it_whole(harness):
    h = harness
    size = 200 * 1024 * 1024
    f = h.slack.add_user_file(name="huge.png", mimetype="image/png", stream_size=size, hide_size=True)
    tracemalloc.start()
    try:
        first, job = await _edit_with_file(h, f)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert job.state == JobState.FAILED and job.failure_code == "image_too_big"
    assert peak < 120 * 1024 * 1024, f"peak {peak / 1e6:.0f} MB for a 200 MB body"
    downloads = [d for d in h.slack.downloads if d.file_id == f["id"]]
    assert len(downloads) == 1
    assert any(FAILURE_MESSAGES["image_too_big"] in t for t in h.thread_texts(first.status_ts))
    assert edits(h) == []


async def test_file_declared_too_big_is_refused_before_download(harness):
    h = harness
    f = h.slack.add_user_file(name="huge.tif", mimetype="image/tiff", stream_size=60 * 1024 * 1024)
    _, job = await _edit_with_file(h, f)
    assert job.failure_code == "image_too_big"
    assert not [d for d in h.slack.downloads if d.file_id == f["id"]]


async def test_non_image_file_is_refused_with_a_message(harness):
    h = harness
    f = h.slack.add_user_file(b"%PDF-1.4 not really an image", name="doc.png", mimetype="image/png")
    first, job = await _edit_with_file(h, f)
    assert job.state == JobState.FAILED and job.failure_code == "not_an_image"
    assert any("not an image" in t for t in h.thread_texts(first.status_ts))
    assert edits(h) == []


async def test_webp_input_is_converted_to_png(harness):
    h = harness
    f = h.slack.add_user_file(png(size=(64, 32), fmt="WEBP"), name="a.webp", mimetype="image/webp")
    _, job = await _edit_with_file(h, f)
    assert job.state == JobState.DONE
    (body,) = edits(h)
    assert body["source"]["media_type"] == "image/png"
    img = decoded_source(body)
    assert img.format == "PNG" and img.size == (64, 32)


async def test_rotated_jpeg_is_sent_upright(harness):
    h = harness
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    f = h.slack.add_user_file(png(size=(80, 40), fmt="JPEG", exif=exif.tobytes()), name="phone.jpg",
                              mimetype="image/jpeg")
    _, job = await _edit_with_file(h, f)
    assert job.state == JobState.DONE
    assert decoded_source(edits(h)[0]).size == (40, 80)


async def test_slack_connect_stub_is_resolved_with_files_info(harness):
    h = harness
    stub = h.slack.add_user_file(png(size=(20, 40)), name="ext.png", mimetype="image/png", mode="file_access")
    assert "url_private" not in stub
    _, job = await _edit_with_file(h, stub)
    assert job.state == JobState.DONE
    assert decoded_source(edits(h)[0]).size == (20, 40)
    assert any(m == "files.info" for m, _ in h.slack.calls)


async def test_user_typed_urls_never_get_the_token(harness):
    h = harness
    first = await imagined(h)
    await reply(h, first.status_ts, f"make it like {h.slack.base_url}/files-pri/T0TEST-F999/x.png")
    await h.wait_job(lambda j: j.params.type == "image_edit" and j.settled)
    assert all(d.file_id != "F999" for d in h.slack.downloads)
