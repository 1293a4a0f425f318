"""Drafts in private and sharing (issue #25): `/imagine --private` makes the image in the
person's DM with lumabot; *Share* posts it into a channel with nothing sent to Luma and nothing
counted, once; the channel's policy applies at share time; a shared image edits like any other."""

from __future__ import annotations

import json

from lumabot.jobs.models import JobState
from lumabot.testing.fake_slack import block_actions_payload

from .test_admin import admin, start


def share_blocks(h, job) -> list[dict]:
    return h.slack.message(job.channel_id, job.actions_ts).blocks


async def share(h, job, channel: str | None = None, *, user: str = "U1") -> str:
    """Click *Share* (to the channel it was asked in) or pick `channel`; the private answer."""
    if channel is None:
        (section,) = [b for b in share_blocks(h, job) if b.get("accessory")]
        button = section["accessory"]
        payload = block_actions_payload("share", value=button["value"], user_id=user, channel_id=job.channel_id,
                                        message_ts=job.actions_ts, response_url=h.slack.new_response_url())
    else:
        payload = block_actions_payload("share_pick", block_id=f"share_pick:{job.id}", action_type="conversations_select",
                                        selected_conversation=channel, user_id=user, channel_id=job.channel_id,
                                        message_ts=job.actions_ts, response_url=h.slack.new_response_url())
    seen = len(h.slack.responses)
    status, *_ = await h.slack.post_interaction(h.url, payload)
    assert status == 200
    await h.slack.wait_for(lambda: len(h.slack.responses) > seen)
    return " | ".join(r.text or "" for r in h.slack.responses[seen:])


async def private_image(h, text: str = "a fox in the snow --private", channel: str = "C1"):
    status, body = await h.command(text, channel_id=channel)
    assert status == 200 and "privately in your direct messages" in json.loads(body)["text"]
    job = await h.wait_job(lambda j: j.settled)
    assert job.state == JobState.DONE and job.channel_id.startswith("D") and job.origin.share_to == channel
    return job


async def test_private_then_shared_once_with_no_new_luma_request(harness):
    h = harness
    job = await private_image(h)
    assert h.slack.top_level("C1") == []                       # nothing in the channel yet
    assert len(h.slack.files_in_thread(job.channel_id, job.status_ts)) == 1
    assert "Sharing it in <#C1>" in await share(h, job)
    shared = await h.wait_job(lambda j: j.origin.via == "share" and j.settled)
    (post,) = h.slack.top_level("C1")
    assert "<@U1> shared an image" in post.text and "a fox in the snow" in post.text
    (image,) = h.slack.files_in_thread("C1", post.ts)
    assert image.content == h.luma.output_bytes(job.generation_id)
    assert shared.state == JobState.DONE and len(h.luma.creates) == 1
    assert "already shared in <#C1>" in await share(h, job)     # a second click posts nothing
    assert len(h.slack.top_level("C1")) == 1
    # nothing counted: one image made
    status, body = await h.command("usage", command="/luma")
    assert "today 1 images" in json.loads(body)["text"]
    # the shared image edits like any other: a reply in its thread
    await h.slack.user_posts(h.url, "make it night", user="U2", channel="C1", thread_ts=post.ts)
    edit = await h.wait_job(lambda j: j.params.type == "image_edit" and j.settled)
    assert h.luma.creates[-1]["source"] == {"generation_id": job.generation_id} and edit.thread_ts == post.ts


async def test_sharing_obeys_the_channel_policy_and_the_maker(start_bot):
    h = await start(start_bot)
    await admin(h, "channels only <#C1|one> <#C2|two>")
    job = await private_image(h)
    text = await share(h, job, "C3")
    assert "cannot share into <#C3>" in text and "Nothing was posted" in text
    assert "Only the person who made this image" in await share(h, job, "C2", user="U2")
    h.slack.set_channel("C2", member=False)                     # lumabot cannot post there
    await share(h, job, "C2")
    await h.wait_job(lambda j: j.origin.via == "share" and j.settled)
    await h.slack.wait_for(lambda: any("Sharing it in <#C2>" in (r.text or "") for r in h.slack.responses))
    await h.slack.wait_for(lambda: any("/invite @lumabot" in json.dumps(r.body) for r in h.slack.responses))
    assert h.slack.top_level("C2") == [] and h.slack.top_level("C3") == [] and len(h.luma.creates) == 1


async def test_an_image_made_in_the_dm_can_be_shared_to_a_channel_picked(harness):
    h = harness
    await h.slack.user_posts(h.url, "a lantern", channel="DU1", user="U1")
    job = await h.finished((await h.wait_job(lambda j: j.channel_id == "DU1")).id)
    pick = [b for b in share_blocks(h, job) if b.get("block_id") == f"share_pick:{job.id}"]
    assert pick and pick[0]["elements"][0]["type"] == "conversations_select"
    assert "Sharing it in <#C2>" in await share(h, job, "C2")
    await h.wait_job(lambda j: j.origin.via == "share" and j.settled)
    (post,) = h.slack.top_level("C2")
    assert len(h.slack.files_in_thread("C2", post.ts)) == 1 and len(h.luma.creates) == 1


async def test_sharing_into_a_read_only_channel_is_explained_privately(harness):
    h = harness
    job = await private_image(h)
    h.slack.set_channel("C4", read_only=True)   # only admins post there (a workspace setting)
    await share(h, job, "C4")
    shared = await h.wait_job(lambda j: j.origin.via == "share" and j.settled)
    assert shared.state == JobState.FAILED and shared.failure_code == "slack_policy"
    await h.slack.wait_for(lambda: any("this channel is read-only" in json.dumps(r.body) for r in h.slack.responses))
    assert h.slack.top_level("C4") == [] and len(h.luma.creates) == 1


async def test_sharing_into_a_channel_the_person_is_not_in_is_refused(harness):
    """Whether the person is in the channel is learnt without a read scope: an ephemeral to
    them there (Slack answers user_not_in_channel for a non-member)."""
    h = harness
    job = await private_image(h)
    h.slack.set_channel("C5", people=["U2", "U3"])
    text = await share(h, job, "C5")
    assert "You are not a member of <#C5>" in text and "Nothing was posted" in text
    assert h.slack.top_level("C5") == [] and not [j for j in await h.jobs() if j.origin.via == "share"]
    h.slack.set_channel("C5", people=["U1", "U2"])
    assert "Sharing it in <#C5>" in await share(h, job, "C5")
    await h.wait_job(lambda j: j.origin.via == "share" and j.settled)
    assert len(h.slack.top_level("C5")) == 1
    assert any(e.channel == "C5" and e.user == "U1" and "Sharing your image here" in (e.text or "")
               for e in h.slack.ephemerals)
