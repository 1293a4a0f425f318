"""The cost preview (issue #24): a request estimated above LUMABOT_CONFIRM_ABOVE_USD is held,
nothing sent or counted, until its person clicks *Make it*; it is admitted then, under the
limits in force then; a double click makes it once; *Cancel* drops it."""

from __future__ import annotations

import json

from lumabot.intake import PREVIEW_GONE
from lumabot.testing.fake_slack import app_mention_event, block_actions_payload, view_submission_payload

from .test_admin import admin, start
from .test_batches import batch_done
from .test_interactive import select


async def preview(h, text: str, **kw) -> dict:
    """A request that gets a cost preview: its ack; nothing recorded, nothing sent."""
    status, body = await h.command(text, **kw)
    assert status == 200 and body, body
    ack = json.loads(body)
    assert ack["response_type"] == "ephemeral" and "Nothing has been sent or counted yet" in ack["text"]
    assert await h.jobs() == [] and h.luma.creates == []
    return ack


def button(blocks: list[dict], action_id: str) -> dict:
    (actions,) = [b for b in blocks if b["type"] == "actions"]
    return next(e for e in actions["elements"] if e["action_id"] == action_id)


async def click(h, element: dict, user_id: str = "U1") -> None:
    payload = block_actions_payload(element["action_id"], value=element["value"], user_id=user_id, channel_id="C1",
                                    response_url=h.slack.new_response_url())
    status, *_ = await h.slack.post_interaction(h.url, payload)
    assert status == 200


async def answered(h, text: str) -> dict:
    await h.slack.wait_for(lambda: any(text in (r.text or "") for r in h.slack.responses))
    return next(r.body for r in h.slack.responses if text in (r.text or ""))


async def test_a_costly_request_waits_for_make_it_and_a_double_click_makes_it_once(start_bot):
    h = await start_bot(LUMABOT_CONFIRM_ABOVE_USD="0.30")
    ack = await preview(h, "a castle --max --n 4")          # 4 × $0.10
    assert "4 images" in ack["text"] and "$0.40" in ack["text"] and "more than $0.30" in ack["text"]
    make = button(ack["blocks"], "confirm_request")
    await click(h, make)
    await click(h, make)
    assert (await answered(h, "Making it"))["replace_original"] is True
    jobs = await batch_done(h, 4)
    assert len(jobs) == 4 and len(h.luma.creates) == 4
    assert all(c["model"] == "uni-1-max" for c in h.luma.creates)
    await h.finished((await h.imagine("a cheap one")).id)   # below the threshold: made at once
    assert len(h.luma.creates) == 5


async def test_cancel_drops_the_request_and_a_later_make_it_finds_nothing(start_bot):
    h = await start_bot(LUMABOT_CONFIRM_ABOVE_USD="0.10")
    ack = await preview(h, "a castle --n 3")
    await click(h, button(ack["blocks"], "drop_request"))
    await answered(h, "Cancelled: nothing was made or counted.")
    await click(h, button(ack["blocks"], "confirm_request"))
    await answered(h, PREVIEW_GONE)
    assert await h.jobs() == [] and h.luma.creates == []


async def test_only_the_person_who_asked_can_make_it(start_bot):
    h = await start_bot(LUMABOT_CONFIRM_ABOVE_USD="0.10")
    ack = await preview(h, "a castle --n 3")
    await click(h, button(ack["blocks"], "confirm_request"), user_id="U2")
    await answered(h, PREVIEW_GONE)
    await click(h, button(ack["blocks"], "confirm_request"))
    await batch_done(h, 3)


async def test_a_confirmation_is_admitted_under_the_limits_in_force_then(start_bot):
    h = await start(start_bot, LUMABOT_CONFIRM_ABOVE_USD="0.10")
    ack = await preview(h, "a castle --n 3")
    assert "Done" in await admin(h, "budget day 0.10")
    await click(h, button(ack["blocks"], "confirm_request"))
    refusal = await answered(h, "daily Luma budget of $0.10")
    assert "This request makes 3 images" in refusal["text"]
    assert await h.jobs() == [] and h.luma.creates == []


async def test_a_mention_gets_its_preview_privately_with_the_buttons(start_bot):
    h = await start_bot(LUMABOT_CONFIRM_ABOVE_USD="0.10")
    await h.slack.post_event(h.url, app_mention_event("<@UBOT> a fox --n 3", user="U1", channel="C1"))
    await h.slack.wait_for(lambda: h.slack.ephemerals)
    (shown,) = h.slack.ephemerals
    assert shown.user == "U1" and "Nothing has been sent or counted yet" in shown.text
    await click(h, button(shown.blocks, "confirm_request"))
    jobs = await batch_done(h, 3)
    assert {j.origin.via for j in jobs} == {"mention"} and len(h.luma.creates) == 3


async def test_the_form_becomes_its_preview_and_submitting_it_makes_the_request(start_bot):
    h = await start_bot(LUMABOT_CONFIRM_ABOVE_USD="0.10")
    await h.command("")
    await h.slack.wait_for(lambda: len(h.slack.views) == 1)
    view = h.slack.views[0].view
    status, body, *_ = await h.slack.post_interaction(h.url, view_submission_payload(
        "imagine_modal", {"prompt": {"prompt": "three owls"}, "n": {"n": select("3")}},
        private_metadata=view["private_metadata"]))
    answer = json.loads(body)
    assert status == 200 and answer["response_action"] == "update"
    confirm = answer["view"]
    assert confirm["submit"]["text"] == "Make it" and "$0.12" in json.dumps(confirm["blocks"])
    assert await h.jobs() == []
    status, body, *_ = await h.slack.post_interaction(h.url, view_submission_payload(
        confirm["callback_id"], {}, private_metadata=confirm["private_metadata"]))
    assert status == 200 and not body
    await batch_done(h, 3)
    assert [c["prompt"] for c in h.luma.creates] == ["three owls"] * 3
