"""The private studio in Slack's AI split view (issue #25), end to end through Bolt's
AsyncAssistant: a thread opened gets a greeting and suggested prompts (presets first); a prompt
there is made there (status line, title), nothing in any channel; Share posts it into the channel
the person is looking at, which follows them (kept in lumabot's database)."""

from __future__ import annotations

from lumabot.jobs.models import JobState

from .test_presets import preset
from .test_sharing import share


async def test_a_thread_opened_gets_a_greeting_and_suggested_prompts_presets_first(harness):
    h = harness
    await preset(h, "save noir --ar 2:3 film noir")
    thread = await h.slack.open_assistant_thread(h.url, looking_at="C1")
    await h.slack.wait_for(lambda: thread.prompts)
    (prompts,) = thread.prompts
    assert prompts[0] == {"title": "Preset noir", "message": "a lighthouse at dusk --preset noir"}
    assert len(prompts) == 4
    greeting = [m for m in h.slack.thread(thread.channel, thread.thread_ts) if getattr(m, "bot_id", None)]
    assert any("private studio" in (m.text or "") for m in greeting)
    assert await h.bot.store.studio.context(thread.channel, thread.thread_ts) == {
        "channel_id": "C1", "team_id": h.slack.team_id, "enterprise_id": None}


async def test_a_prompt_in_the_studio_is_made_there_and_shared_to_the_channel_in_view(harness):
    h = harness
    thread = await h.slack.open_assistant_thread(h.url, looking_at="C1")
    await h.slack.wait_for(lambda: thread.prompts)
    await h.slack.assistant_says(h.url, thread, "a paper boat on a pond --ar 16:9")
    job = await h.wait_job(lambda j: j.settled)
    assert job.state == JobState.DONE and job.channel_id == thread.channel and job.thread_ts == thread.thread_ts
    assert h.luma.creates[-1]["prompt"] == "a paper boat on a pond"
    files = h.slack.files_in_thread(thread.channel, thread.thread_ts)
    assert [f.content for f in files] == [h.luma.output_bytes(job.generation_id)]
    assert h.slack.top_level("C1") == []                                   # private so far
    assert thread.titles == ["a paper boat on a pond --ar 16:9"]
    assert thread.statuses[0].startswith("is ") and thread.statuses[-1] == ""   # cleared when it landed
    assert "is generating…" in thread.statuses
    # the person moves to #C2: the next image shares there
    await h.slack.assistant_looks_at(h.url, thread, "C2")
    await h.slack.wait_for(lambda: h.bot.store.studio.context(thread.channel, thread.thread_ts))
    assert (await h.bot.store.studio.context(thread.channel, thread.thread_ts))["channel_id"] == "C2"
    await h.slack.assistant_says(h.url, thread, "a paper crane")
    second = await h.wait_job(lambda j: j.settled and j.params.prompt == "a paper crane")
    assert thread.titles == ["a paper boat on a pond --ar 16:9"]           # the title is the first prompt
    assert job.origin.share_to == "C1" and second.origin.share_to == "C2"
    assert "Sharing it in <#C2>" in await share(h, second)
    await h.wait_job(lambda j: j.origin.via == "share" and j.settled)
    (post,) = h.slack.top_level("C2")
    assert "a paper crane" in post.text and len(h.luma.creates) == 2


async def test_replies_in_a_plain_dm_thread_still_edit_the_image(harness):
    """Bolt's assistant middleware sees every DM thread message; lumabot's own DM threads
    (no studio thread) still go to the usual flow: a reply edits the image."""
    h = harness
    await h.slack.user_posts(h.url, "a lantern", channel="DU1", user="U1")
    first = await h.finished((await h.wait_job(lambda j: j.channel_id == "DU1")).id)
    await h.slack.user_posts(h.url, "make it blue", channel="DU1", user="U1", thread_ts=first.root_ts)
    edit = await h.wait_job(lambda j: j.params.type == "image_edit" and j.settled)
    assert h.luma.creates[-1]["source"] == {"generation_id": first.generation_id}
    assert edit.thread_ts == first.root_ts


async def test_a_costly_request_in_the_studio_gets_its_preview_there(start_bot):
    h = await start_bot(LUMABOT_CONFIRM_ABOVE_USD="0.10")
    thread = await h.slack.open_assistant_thread(h.url, looking_at="C1")
    await h.slack.wait_for(lambda: thread.prompts)
    await h.slack.assistant_says(h.url, thread, "three owls --n 3")
    def preview():
        return [m for m in h.slack.thread(thread.channel, thread.thread_ts)
                if "Nothing has been sent or counted yet" in (getattr(m, "text", "") or "")]
    await h.slack.wait_for(preview)
    (shown,) = preview()
    assert [e["action_id"] for b in shown.blocks if b["type"] == "actions" for e in b["elements"]] == [
        "confirm_request", "drop_request"]
    assert await h.jobs() == [] and h.luma.creates == []
