"""Several images per request (issue #24): `--n`, permutations, `--web`, all-or-nothing
admission, one status message per request; judged by what Luma received and what Slack shows."""

from __future__ import annotations

import json

from lumabot.jobs.models import JobState
from lumabot.testing.fake_luma import Outcome
from lumabot.testing.fake_slack import app_mention_event, block_actions_payload, view_submission_payload

from .test_admin import admin, start
from .test_interactive import select


async def refused(h, text: str, **kw) -> str:
    """A request refused at once: the private answer; nothing reached Luma."""
    status, body = await h.command(text, **kw)
    assert status == 200 and body, body
    return json.loads(body)["text"]


async def batch_done(h, size: int, timeout: float = 10.0) -> list:
    """The jobs of the one batch, once each is finished and told."""
    await h.wait_job(lambda j: j.batch_size == size and j.settled, timeout)
    jobs = [j for j in await h.jobs() if j.batch_size == size]
    for j in jobs:
        await h.finished(j.id, timeout)
    return sorted([await h.bot.store.jobs.get(j.id) for j in jobs], key=lambda j: j.batch_index)


async def test_n_makes_that_many_images_in_one_thread_under_one_status_message(harness):
    h = harness
    status, body = await h.command("a lighthouse at dusk --n 3 --ar 16:9")
    assert status == 200 and not (body and json.loads(body).get("text"))
    jobs = await batch_done(h, 3)
    assert [c["prompt"] for c in h.luma.creates] == ["a lighthouse at dusk"] * 3
    assert {c["aspect_ratio"] for c in h.luma.creates} == {"16:9"}
    (root,) = h.slack.top_level("C1")                          # one status message for the request
    assert {j.status_ts for j in jobs} == {root.ts} and {j.batch_id for j in jobs} == {jobs[0].id}
    files = h.slack.files_in_thread("C1", root.ts)
    assert sorted(f.content for f in files) == sorted(h.luma.output_bytes(j.generation_id) for j in jobs)
    # each image has its own buttons, for its own job
    buttons = [m for m in h.slack.thread("C1", root.ts) if getattr(m, "blocks", None)
               and any(b.get("block_id") == "result" for b in m.blocks)]
    assert sorted(b.blocks[0]["elements"][0]["value"] for b in buttons) == sorted(j.id for j in jobs)
    # progress while under way, then every image together on the status message
    texts = [text for text, _ in h.slack.message("C1", root.ts).history]
    assert "3 images queued" in texts[0] and any("of 3 done" in t for t in texts), texts
    assert len(texts) <= 3 + 3, texts  # only when what it shows changes: queued, under way, 0-2 done, all
    final = h.slack.message("C1", root.ts)
    assert "All 3 images done" in final.text
    shown = [b["slack_file"]["id"] for b in final.blocks if b["type"] == "image"]
    assert sorted(shown) == sorted(f.id for f in files)
    assert all(j.state == JobState.DONE for j in jobs)
    # and their provenance in its metadata: each image's job and Luma generation
    meta = final.metadata["event_payload"]
    assert meta["job_id"] == jobs[0].id and meta["kind"] == "status" and meta["batch_id"] == jobs[0].id
    assert sorted(map(tuple, (i.values() for i in meta["images"]))) == sorted((j.id, j.generation_id) for j in jobs)


async def test_permutations_make_one_image_per_combination(harness):
    h = harness
    await h.command(r"a {red, blue} kite over \{the\} sea --ar {1:1, 16:9}")
    await batch_done(h, 4)
    made = sorted((c["prompt"], c["aspect_ratio"]) for c in h.luma.creates)
    assert made == sorted([("a red kite over {the} sea", "1:1"), ("a red kite over {the} sea", "16:9"),
                           ("a blue kite over {the} sea", "1:1"), ("a blue kite over {the} sea", "16:9")])
    (root,) = h.slack.top_level("C1")
    assert "{red, blue}" in root.text  # the request as typed


async def test_too_many_images_are_refused_whole_with_the_count(harness):
    h = harness
    text = await refused(h, "a {red, blue, green} kite --n 2")
    assert "would make 6 images (3 combinations × 2 each)" in text and "at most 4" in text
    text = await refused(h, "a kite --n 5")
    assert "would make 5 images" in text
    text = await refused(h, "a kite --n 0")
    assert "is not a number of images" in text
    text = await refused(h, "a {red, blue kite")
    assert "never closed" in text
    await h.finished((await h.imagine("one kite")).id)  # the refused ones made nothing
    assert [c["prompt"] for c in h.luma.creates] == ["one kite"] and len(await h.jobs()) == 1


async def test_a_batch_over_the_daily_limit_is_refused_whole_and_says_how_many_fit(start_bot):
    h = await start_bot(LUMABOT_USER_DAILY_IMAGES="3")
    await h.finished((await h.imagine("the first one")).id)
    text = await refused(h, "three more --n 3")
    assert "daily limit of 3 images" in text and "This request makes 3 images" in text
    assert "2 would fit now" in text and "Nothing was started" in text
    assert [c["prompt"] for c in h.luma.creates] == ["the first one"]
    await h.command("two more --n 2")
    await batch_done(h, 2)
    assert len(h.luma.creates) == 3


async def test_a_batch_over_the_budget_is_refused_whole(start_bot):
    h = await start_bot(LUMABOT_DAILY_BUDGET_USD="0.10")
    text = await refused(h, "pricey --n 3")        # 3 × $0.0404 = $0.12
    assert "daily Luma budget of $0.10" in text and "this request would cost about $0.12" in text
    assert "2 would fit now" in text
    assert h.luma.creates == [] and await h.jobs() == []


async def test_an_admin_sets_the_images_per_request(start_bot):
    h = await start(start_bot)
    assert "Only workspace admins" in await admin(h, "batch 2", user="U1")
    assert "Done: at most 2 images per request" in await admin(h, "batch 2")
    assert "at most 2 here" in await refused(h, "a kite --n 3")
    assert "1-10" in await admin(h, "batch 11")
    await h.command("a kite --n 2")
    await batch_done(h, 2)
    assert len(h.luma.creates) == 2


async def test_cancel_on_the_status_cancels_the_images_still_waiting(start_bot):
    h = await start_bot(LUMABOT_LUMA_CONCURRENCY="1")
    h.luma.script(Outcome(hold=True))
    await h.command("a slow trio --n 3")
    await h.luma.wait_for(lambda: len(h.luma.creates) == 1)
    lead = await h.wait_job(lambda j: j.batch_index == 0 and j.status_ts)
    await h.slack.wait_for(lambda: h.slack.message("C1", lead.status_ts).blocks[-1].get("block_id") == "waiting")
    cancel = h.slack.message("C1", lead.status_ts).blocks[-1]["elements"][0]
    assert cancel["value"] == lead.id
    await h.slack.post_interaction(h.url, block_actions_payload(
        "cancel", value=lead.id, user_id="U1", channel_id="C1", message_ts=lead.status_ts,
        response_url=h.slack.new_response_url()))
    await h.wait_job(lambda j: j.batch_index == 2 and j.settled)
    h.luma.release_all()
    jobs = await batch_done(h, 3)
    assert [j.state for j in jobs] == [JobState.DONE, JobState.CANCELLED, JobState.CANCELLED]
    assert len(h.luma.creates) == 1
    await h.slack.wait_for(lambda: "1 of 3 done" in h.slack.message("C1", lead.status_ts).text)
    assert "2 cancelled" in h.slack.message("C1", lead.status_ts).text


async def test_web_search_reaches_luma_unless_an_admin_turned_it_off(start_bot):
    h = await start(start_bot)
    job = await h.finished((await h.imagine("today's skyline --web")).id)
    assert h.luma.creates[0]["web_search"] is True and job.params.prompt == "today's skyline"
    await h.finished((await h.imagine("no web")).id)
    assert "web_search" not in h.luma.creates[1]
    assert "Done: web search (`--web`) off" in await admin(h, "web off")
    assert "Web search is turned off" in await refused(h, "today's skyline --web")
    assert len(h.luma.creates) == 2


async def test_a_reply_with_n_makes_several_edits_of_the_image(harness):
    h = harness
    first = await h.finished((await h.imagine("a red barn")).id)
    await h.slack.user_posts(h.url, "make it night --n 2", user="U1", channel="C1", thread_ts=first.status_ts)
    edits = await batch_done(h, 2)
    assert [c["type"] for c in h.luma.creates[1:]] == ["image_edit", "image_edit"]
    assert all(c["source"] == {"generation_id": first.generation_id} for c in h.luma.creates[1:])
    assert {e.thread_ts for e in edits} == {first.status_ts}
    assert len(h.slack.files_in_thread("C1", first.status_ts)) == 3  # the original and both edits


async def test_a_mention_with_n_makes_the_batch_in_its_thread(harness):
    h = harness
    await h.slack.post_event(h.url, app_mention_event("<@UBOT> a fox --n 2", user="U1", channel="C1",
                                                      ts="1700000000.000100"))
    jobs = await batch_done(h, 2)
    assert {j.thread_ts for j in jobs} == {"1700000000.000100"}
    assert len(h.slack.files_in_thread("C1", "1700000000.000100")) == 2
    assert len(h.luma.creates) == 2


async def test_the_form_makes_the_number_of_images_chosen(harness):
    h = harness
    status, _ = await h.command("")
    assert status == 200
    await h.slack.wait_for(lambda: len(h.slack.views) == 1)
    view = h.slack.views[0].view
    n_block = next(b for b in view["blocks"] if b.get("block_id") == "n")
    assert [o["value"] for o in n_block["element"]["options"]] == ["1", "2", "3", "4"]
    values = {"prompt": {"prompt": "two owls"}, "n": {"n": select("2")}}
    await h.slack.post_interaction(h.url, view_submission_payload(
        "imagine_modal", values, private_metadata=view["private_metadata"]))
    await batch_done(h, 2)
    assert [c["prompt"] for c in h.luma.creates] == ["two owls", "two owls"]


async def test_when_the_status_cannot_be_posted_the_person_is_told_once(harness):
    h = harness
    h.slack.set_channel("C9", member=False)
    status, _ = await h.command("a secret trio --n 3", channel_id="C9")
    assert status == 200
    await h.wait_job(lambda j: j.batch_index == 2 and j.settled)
    jobs = await batch_done(h, 3)
    assert all(j.state == JobState.FAILED and j.failure_code == "not_in_channel" for j in jobs)
    assert len(h.slack.responses) == 1 and h.luma.requests == []
