"""Buttons under each image, the `/imagine` form, `/luma help` and App Home, end to end."""

from __future__ import annotations

import base64
import io
import json

import pytest
from PIL import Image

from lumabot.jobs.models import ASPECT_RATIOS, JobState
from lumabot.intake import ALREADY_SENT, ONLY_REQUESTER, ONLY_REQUESTER_CANCEL
from lumabot.testing.fake_luma import Outcome
from lumabot.testing.fake_slack import (
    app_home_opened_event,
    block_actions_payload,
    view_submission_payload,
)


def png(size=(40, 30), color=(20, 120, 220)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def select(value: str) -> dict:
    return {"type": "static_select", "selected_option": {"value": value, "text": {"type": "plain_text", "text": value}}}


async def delivered(h, text="a lighthouse at dusk --ar 16:9", **kw):
    return await h.finished((await h.imagine(text, **kw)).id)


def buttons(h, job) -> dict[str, dict]:
    msg = h.slack.message(job.channel_id, job.actions_ts)
    (actions,) = [b for b in msg.blocks if b["type"] == "actions"]
    return {e["action_id"]: e for e in actions["elements"]}


async def click(h, job, action_id, *, user_id="U1"):
    payload = block_actions_payload(
        action_id, value=job.id, user_id=user_id, channel_id=job.channel_id,
        message_ts=job.actions_ts, thread_ts=job.root_ts, response_url=h.slack.new_response_url())
    status, body, *_ = await h.slack.post_interaction(h.url, payload)
    assert status == 200
    return payload


async def test_delivered_image_carries_its_buttons(harness):
    h = harness
    job = await delivered(h)
    msg = h.slack.message("C1", job.actions_ts)
    assert msg.thread_ts == job.status_ts
    (image,) = h.slack.thread("C1", job.status_ts)   # one message: the image with its buttons
    assert image is msg and image.id == job.slack_file_id
    assert set(buttons(h, job)) == {"reroll", "vary", "edit", "max", "info", "delete"}
    assert h.slack.count_calls("chat.postMessage") == 1   # the status only


async def test_reroll_makes_a_new_image_in_the_same_thread(harness):
    h = harness
    job = await delivered(h)
    await click(h, job, "reroll", user_id="U2")
    again = await h.wait_job(lambda j: j.id != job.id and j.settled)
    assert again.state == JobState.DONE and again.thread_ts == job.status_ts and again.user_id == "U2"
    first, second = h.luma.creates
    assert {k: v for k, v in second.items() if k != "user_id"} == {k: v for k, v in first.items() if k != "user_id"}
    assert len([f for f in h.slack.files_in_thread("C1", job.status_ts)]) == 2


async def test_double_click_and_retried_action_start_one_job(harness):
    h = harness
    job = await delivered(h)
    payload = await click(h, job, "reroll")
    await h.slack.post_interaction(h.url, payload)  # the same action delivered again
    await click(h, job, "reroll")                   # a second click right after
    await h.wait_job(lambda j: j.id != job.id and j.settled)
    assert len(h.luma.creates) == 2
    assert len(await h.jobs()) == 2


async def test_max_button_renders_again_with_uni_1_max(harness):
    h = harness
    job = await delivered(h)
    await click(h, job, "max")
    again = await h.wait_job(lambda j: j.id != job.id and j.settled)
    assert h.luma.creates[-1]["model"] == "uni-1-max"
    assert h.luma.creates[-1]["prompt"] == "a lighthouse at dusk"
    assert "max" not in buttons(h, again)  # already the best model


async def test_edit_button_opens_form_and_edits_that_image(harness):
    h = harness
    job = await delivered(h)
    await click(h, job, "edit")
    await h.slack.wait_for(lambda: len(h.slack.views) == 1)
    view = h.slack.views[0].view
    assert view["callback_id"] == "edit_image_modal"
    values = {"instruction": {"instruction": "add a storm"}, "model": {"model": select("uni-1")}}
    await h.slack.post_interaction(h.url, view_submission_payload(
        "edit_image_modal", values, private_metadata=view["private_metadata"]))
    edit = await h.wait_job(lambda j: j.params.type == "image_edit" and j.settled)
    assert edit.thread_ts == job.status_ts
    assert h.luma.creates[-1]["source"] == {"generation_id": job.generation_id}


async def test_delete_by_the_requester_removes_image_and_buttons(harness):
    h = harness
    job = await delivered(h)
    (f,) = h.slack.files_in_thread("C1", job.status_ts)
    await click(h, job, "delete")
    await h.wait_job(lambda j: j.id == job.id and j.deleted)  # recorded after Slack's deletions
    assert h.slack.file(f.id).deleted and h.slack.message("C1", job.actions_ts).deleted
    assert h.slack.files_in_thread("C1", job.status_ts) == []


async def test_delete_by_a_stranger_is_refused(harness):
    h = harness
    job = await delivered(h)
    await click(h, job, "delete", user_id="U2")
    await h.slack.wait_for(lambda: len(h.slack.responses) >= 1)
    assert ONLY_REQUESTER in json.dumps([r.body if hasattr(r, "body") else r for r in h.slack.responses])
    assert len(h.slack.files_in_thread("C1", job.status_ts)) == 1
    assert not (await h.bot.store.jobs.get(job.id)).deleted


async def test_delete_by_a_workspace_admin_is_allowed(harness):
    h = harness
    h.slack.set_user("UADMIN", is_admin=True)
    job = await delivered(h)
    await click(h, job, "delete", user_id="UADMIN")
    await h.wait_job(lambda j: j.id == job.id and j.deleted)
    assert h.slack.message("C1", job.actions_ts).deleted


# -- the /imagine form -----------------------------------------------------------------------

async def open_form(h):
    status, body = await h.command("")
    assert status == 200 and not body
    await h.slack.wait_for(lambda: len(h.slack.views) == 1)
    view = h.slack.views[0].view
    assert view["callback_id"] == "imagine_modal"
    return view


async def submit_form(h, view, values):
    status, body, *_ = await h.slack.post_interaction(h.url, view_submission_payload(
        "imagine_modal", values, private_metadata=view["private_metadata"]))
    assert status == 200
    return json.loads(body) if body else None


async def test_form_happy_path_with_reference_images(harness):
    h = harness
    view = await open_form(h)
    ratio = next(b for b in view["blocks"] if b.get("block_id") == "aspect_ratio")
    labels = [o["text"]["text"] for o in ratio["element"]["options"]]
    assert [label.split(" ")[0] for label in labels] == list(ASPECT_RATIOS)
    assert "16:9 · landscape, widescreen" in labels
    refs = [h.slack.add_user_file(png(color=(i * 40, 10, 10)), name=f"r{i}.png", mimetype="image/png")
            for i in range(2)]
    answer = await submit_form(h, view, {
        "prompt": {"prompt": "a tiny robot\nwatering plants"},
        "aspect_ratio": {"aspect_ratio": select("9:16")},
        "model": {"model": select("uni-1-max")},
        "format": {"format": select("jpeg")},
        "refs": {"refs": {"type": "file_input", "files": refs}},
    })
    assert answer is None
    job = await h.wait_job(lambda j: j.settled)
    assert job.state == JobState.DONE and job.channel_id == "C1" and job.thread_ts is None
    (body,) = h.luma.creates
    assert body["aspect_ratio"] == "9:16" and body["model"] == "uni-1-max" and body["output_format"] == "jpeg"
    assert body["prompt"] == "a tiny robot watering plants"
    assert len(body["image_ref"]) == 2
    first_ref = Image.open(io.BytesIO(base64.b64decode(body["image_ref"][0]["data"])))
    assert first_ref.getpixel((0, 0)) == (0, 10, 10)


@pytest.mark.parametrize("values, field, words", [
    ({"prompt": {"prompt": "   "}}, "prompt", "Add a description"),
    ({"prompt": {"prompt": "x" * 6001}}, "prompt", "6,000"),
    ({"prompt": {"prompt": "a cat --sharp"}}, "prompt", "Unknown flag"),
    ({"prompt": {"prompt": "a hero --style manga"}, "aspect_ratio": {"aspect_ratio": select("16:9")}},
     "aspect_ratio", "portrait"),
])
async def test_form_errors_are_shown_on_the_field(harness, values, field, words):
    h = harness
    view = await open_form(h)
    answer = await submit_form(h, view, values)
    assert answer["response_action"] == "errors"
    assert list(answer["errors"]) == [field] and words in answer["errors"][field]
    assert h.luma.requests == []


async def test_form_refuses_non_images_and_too_many_references(harness):
    h = harness
    view = await open_form(h)
    pdf = h.slack.add_user_file(b"%PDF-1.4", name="spec.pdf", mimetype="application/pdf")
    answer = await submit_form(h, view, {"prompt": {"prompt": "a cat"},
                                         "refs": {"refs": {"type": "file_input", "files": [pdf]}}})
    assert answer["errors"] == {"refs": "spec.pdf is not an image."}
    many = [h.slack.add_user_file(png(), name=f"{i}.png", mimetype="image/png") for i in range(9)]
    answer = await submit_form(h, view, {"prompt": {"prompt": "a cat"},
                                         "refs": {"refs": {"type": "file_input", "files": many}}})
    assert "At most 8" in answer["errors"]["refs"]
    assert h.luma.requests == []


# -- help and App Home -----------------------------------------------------------------------

async def test_luma_help_lists_commands_flags_flows_and_limits(start_bot):
    h = await start_bot(LUMABOT_USER_DAILY_IMAGES="25", LUMABOT_DAILY_BUDGET_USD="12")
    status, body = await h.command("help", command="/luma")
    text = json.loads(body)["text"]
    for piece in ["/imagine", "/edit", "/luma usage", "/luma session start", "/luma session stop",
                  "--ar", "--max", "--model", "--format", "--style manga", *ASPECT_RATIOS,
                  "reply in a lumabot thread", "mention @lumabot", "Edit with Luma",
                  "Reroll", "25 images per person per day", "$12.00", "at most 5 images waiting"]:
        assert piece in text, piece


async def test_app_home_shows_recent_generations_usage_and_how_to(start_bot):
    h = await start_bot(LUMABOT_USER_DAILY_IMAGES="30", LUMABOT_MAX_QUEUED_PER_USER="30")
    done = await delivered(h, "a home picture")
    for i in range(24):
        await h.command(f"filler {i}")
    for j in await h.jobs():
        await h.finished(j.id, timeout=20)
    await h.slack.post_event(h.url, app_home_opened_event("U1"))
    await h.slack.wait_for(lambda: any(v.method == "views.publish" for v in h.slack.views))
    view = [v for v in h.slack.views if v.method == "views.publish"][-1]
    assert view.user_id == "U1"
    blocks = view.view["blocks"]
    assert len(blocks) <= 100
    text = json.dumps(blocks)
    assert "filler 23" in text and "a home picture" not in text  # the latest 20 only
    assert text.count("Done in") == 20
    assert "/archives/C1/p" in text  # a link to each thread
    assert "20 left for you" not in text and "5 left for you" in text  # 25 of 30 used today
    assert "/imagine" in text
    assert done.state == JobState.DONE


# -- Cancel, while a job waits -----------------------------------------------------------------

async def _second_waits(start_bot):
    """One generation holds the only Luma slot; a second job waits behind it."""
    h = await start_bot(LUMABOT_LUMA_CONCURRENCY="1")
    h.luma.script(Outcome(hold=True))
    first = await h.imagine("first in line", user_id="U1")
    await h.luma.wait_for(lambda: len(h.luma.generations) == 1)
    second = await h.imagine("second in line", user_id="U2")
    return h, first, second


async def click_cancel(h, job, *, user_id):
    payload = block_actions_payload(
        "cancel", value=job.id, user_id=user_id, channel_id=job.channel_id,
        message_ts=job.status_ts, response_url=h.slack.new_response_url())
    status, *_ = await h.slack.post_interaction(h.url, payload)
    assert status == 200


def _has_cancel_button(h, job) -> bool:
    blocks = h.slack.message(job.channel_id, job.status_ts).blocks or []
    return any(e.get("action_id") == "cancel" for b in blocks if b["type"] == "actions"
               for e in b["elements"])


async def test_cancel_while_waiting_leaves_the_line_and_spends_nothing(start_bot):
    h, first, second = await _second_waits(start_bot)
    assert _has_cancel_button(h, second) and not _has_cancel_button(h, first)  # first is at Luma
    await click_cancel(h, second, user_id="U2")
    await click_cancel(h, second, user_id="U2")  # a double click
    done = await h.finished(second.id)
    assert done.state == JobState.CANCELLED and done.cancelled_by == "U2"
    assert "Cancelled by <@U2>" in h.status_text(done) and not _has_cancel_button(h, done)
    assert (await h.bot.store.policy.usage("T0TEST", 0, user_id="U2")).requested == 0  # not counted
    h.luma.release_all()
    await h.finished(first.id)
    assert [b["prompt"] for b in h.luma.creates] == ["first in line"]  # nothing else at Luma
    assert h.slack.responses == []  # nothing to explain, not even for the double click


async def test_only_the_requester_or_an_admin_can_cancel(start_bot):
    h, first, second = await _second_waits(start_bot)
    await click_cancel(h, second, user_id="U3")
    await h.slack.wait_for(lambda: len(h.slack.responses) == 1)
    assert ONLY_REQUESTER_CANCEL in json.dumps([getattr(r, "body", r) for r in h.slack.responses])
    assert (await h.bot.store.jobs.get(second.id)).state == JobState.QUEUED
    h.slack.set_user("UADMIN", is_admin=True)
    await click_cancel(h, second, user_id="UADMIN")
    done = await h.finished(second.id)
    assert done.cancelled_by == "UADMIN" and "Cancelled by <@UADMIN>" in h.status_text(done)
    h.luma.release_all()


async def test_cancel_after_the_job_reached_luma_says_it_is_too_late(start_bot):
    h, first, second = await _second_waits(start_bot)
    await click_cancel(h, first, user_id="U1")  # a click that lost the race with the submission
    await h.slack.wait_for(lambda: len(h.slack.responses) == 1)
    assert ALREADY_SENT in json.dumps([getattr(r, "body", r) for r in h.slack.responses])
    h.luma.release_all()
    assert (await h.finished(first.id)).state == JobState.DONE
    assert (await h.finished(second.id)).state == JobState.DONE


async def test_admins_from_lumabot_admins_and_slack_with_slack_asked_once(start_bot):
    h = await start_bot(LUMABOT_ADMINS="UBOSS, UCHIEF")
    job = await delivered(h)
    await click(h, job, "delete", user_id="UCHIEF")  # not a Slack admin: LUMABOT_ADMINS says so
    await h.wait_job(lambda j: j.id == job.id and j.deleted)
    assert h.slack.count_calls("users.info") == 0
    h.slack.set_user("UADMIN", is_admin=True)
    for prompt in ("one", "two"):
        other = await delivered(h, prompt)
        await click(h, other, "delete", user_id="UADMIN")
        await h.wait_job(lambda j, other=other: j.id == other.id and j.deleted)
    assert h.slack.count_calls("users.info") == 1  # cached
