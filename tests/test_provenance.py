"""Vary and Info under each image (issue #24): a close variation is an edit of the image itself
against the clicker's limits; Info tells the clicker, privately, how the image was made."""

from __future__ import annotations

import json

from lumabot.jobs.flags import VARY
from lumabot.jobs.models import JobState

from .test_interactive import buttons, click, delivered


def info(h, after: int) -> str:
    """The text of the Info answer posted after the first `after` responses."""
    answers = [r for r in h.slack.responses[after:] if r.body.get("blocks")]
    assert answers, [r.body for r in h.slack.responses]
    return json.dumps(answers[-1].body["blocks"])


async def test_vary_edits_the_image_itself_into_its_thread_against_the_clickers_limits(start_bot):
    h = await start_bot(LUMABOT_USER_DAILY_IMAGES="1")
    job = await delivered(h, "a quiet harbour --max --format jpeg")
    await click(h, job, "vary")                       # U1 has used their one image today
    await h.slack.wait_for(lambda: any("daily limit" in (r.text or "") for r in h.slack.responses))
    await click(h, job, "vary", user_id="U2")
    varied = await h.wait_job(lambda j: j.user_id == "U2" and j.settled)
    assert varied.state == JobState.DONE and varied.thread_ts == job.status_ts
    body = h.luma.creates[-1]
    assert body["type"] == "image_edit" and body["source"] == {"generation_id": job.generation_id}
    assert body["model"] == "uni-1-max" and body["output_format"] == "jpeg"
    assert body["prompt"].startswith(VARY) and "a quiet harbour" in body["prompt"]
    assert "image" not in body.get("image_ref", [])
    assert len(h.luma.creates) == 2 and len(h.slack.files_in_thread("C1", job.status_ts)) == 2


async def test_info_shows_how_an_image_was_made_privately(harness):
    h = harness
    job = await delivered(h, "a fox in snow --ar 16:9")
    seen = len(h.slack.responses)
    await click(h, job, "info", user_id="U2")
    await h.slack.wait_for(lambda: any(r.body.get("blocks") for r in h.slack.responses[seen:]))
    text = info(h, seen)
    assert h.slack.responses[-1].body["response_type"] == "ephemeral"
    assert "a fox in snow" in text and "with `/imagine`" in text
    assert "*Aspect ratio:* 16:9 (typed)" in text and "*Model:* uni-1 (default)" in text
    assert "*Estimated cost:* $0.04" in text and f"`{job.generation_id}`" in text and "*Took:*" in text


async def test_info_of_an_edit_and_of_a_variation_links_the_image_they_were_made_from(harness):
    h = harness
    first = await delivered(h, "a red barn")
    (image,) = h.slack.files_in_thread("C1", first.status_ts)
    await h.slack.user_posts(h.url, "make it night --format png", user="U1", channel="C1",
                             thread_ts=first.status_ts)
    edit = await h.wait_job(lambda j: j.params.type == "image_edit" and j.settled)
    seen = len(h.slack.responses)
    await click(h, edit, "info")
    await h.slack.wait_for(lambda: any(r.body.get("blocks") for r in h.slack.responses[seen:]))
    text = info(h, seen)
    link = f"/archives/C1/p{image.share_ts.replace('.', '')}"
    assert link in text and "(an edit)" in text and "a reply in the image's thread" in text
    assert "*Format:* png (typed)" in text

    await click(h, first, "vary")
    varied = await h.wait_job(lambda j: j.origin.via == "vary" and j.settled)
    assert set(buttons(h, varied)) >= {"vary", "info"}
    # the image's provenance, on its status message once it shows the image
    meta = h.slack.message("C1", varied.status_ts).metadata["event_payload"]
    assert meta == {"job_id": varied.id, "kind": "status", "generation_id": varied.generation_id,
                    "parent_job_id": first.id, "made_with": "vary"}
    seen = len(h.slack.responses)
    await click(h, varied, "info")
    await h.slack.wait_for(lambda: any(r.body.get("blocks") for r in h.slack.responses[seen:]))
    assert link in info(h, seen) and "(a variation)" in info(h, seen)
