"""Presets and brand style kits (issue #24), judged by what Luma receives: a preset's flags,
style and reference images, in the documented order (typed > preset > channel default >
workspace default), in every entry point; who may save, use and set what."""

from __future__ import annotations

import base64
import io
import json

from PIL import Image

from lumabot.jobs.models import JobState
from lumabot.testing.fake_slack import app_mention_event, view_submission_payload

from .test_admin import ADMIN, admin, dms, start
from .test_batches import refused
from .test_interactive import click, png, select


async def preset(h, text: str, *, user: str = "U1", channel: str = "C1") -> str:
    status, body = await h.command(f"preset {text}", command="/luma", user_id=user, channel_id=channel)
    assert status == 200 and body, body
    return json.loads(body)["text"]


async def made(h, text: str, **kw) -> dict:
    """/imagine that must be accepted and made: what Luma received."""
    job = await h.finished((await h.imagine(text, **kw)).id)
    assert job.state == JobState.DONE
    return h.luma.creates[-1]


async def test_a_personal_preset_sets_flags_and_style_and_typed_flags_win(start_bot):
    h = await start(start_bot)
    said = await preset(h, "save noir --ar 2:3 --max film noir, rain-soaked streets")
    assert "Saved your preset `noir`: --ar 2:3 --max · style: film noir, rain-soaked streets" in said
    body = await made(h, "a detective --preset noir")
    assert body["aspect_ratio"] == "2:3" and body["model"] == "uni-1-max"
    assert body["prompt"] == "a detective. Style direction: film noir, rain-soaked streets"
    body = await made(h, "a cat --p noir --ar 1:1")
    assert body["aspect_ratio"] == "1:1" and body["model"] == "uni-1-max"
    # only its owner uses it
    assert "no preset `noir` you can use" in await refused(h, "a dog --preset noir", user_id="U2")
    assert "`noir`" in await preset(h, "list") and "No presets yet" in await preset(h, "list", user="U2")
    assert "Deleted your preset `noir`" in await preset(h, "delete noir")
    assert "no preset `noir` you can use" in await refused(h, "a detective --preset noir")


async def test_workspace_presets_are_saved_by_admins_and_used_by_everyone(start_bot):
    h = await start(start_bot)
    said = await preset(h, "save brand --ar 16:9 --workspace flat pastel illustration", user="U2")
    assert said.startswith("Only workspace admins") and "Nothing was saved" in said
    assert "No presets yet" in await preset(h, "list", user="U2")
    said = await preset(h, "save brand --ar 16:9 --workspace flat pastel illustration", user=ADMIN)
    assert "the workspace's preset `brand`" in said
    body = await made(h, "a teapot --preset brand", user_id="U2")
    assert body["aspect_ratio"] == "16:9" and body["prompt"].endswith("Style direction: flat pastel illustration")
    assert "*The workspace's presets:*" in await preset(h, "list", user="U2")


async def test_channel_and_workspace_defaults_apply_in_order_and_none_leaves_them_out(start_bot):
    h = await start(start_bot)
    await preset(h, "save wide --ar 16:9 --workspace", user=ADMIN)
    await preset(h, "save tall --ar 9:16 --format jpeg --workspace", user=ADMIN)
    await preset(h, "save square --ar 1:1", user="U2")
    assert "Only workspace admins" in await preset(h, "channel wide", user="U2")
    assert "no workspace preset `square`" in await preset(h, "channel square", user=ADMIN)
    assert "Done: every request in this channel" in await preset(h, "channel wide", user=ADMIN, channel="C1")
    assert "Done: every request in the workspace" in await preset(h, "default tall", user=ADMIN)
    c1 = await made(h, "a cup", user_id="U2")                       # the channel's default wins...
    assert c1["aspect_ratio"] == "16:9" and c1["output_format"] == "jpeg"  # ...flag by flag
    c2 = await made(h, "a cup", user_id="U2", channel_id="C2")     # the workspace's default
    assert c2["aspect_ratio"] == "9:16"
    named = await made(h, "a cup --preset square", user_id="U2")   # a named preset over both
    assert named["aspect_ratio"] == "1:1" and named["output_format"] == "jpeg"
    bare = await made(h, "a cup --preset none", user_id="U2")
    assert "aspect_ratio" not in bare and "output_format" not in bare
    # a mention and a reply that edits follow the same defaults
    await h.slack.post_event(h.url, app_mention_event("<@UBOT> a kettle", user="U2", channel="C1"))
    await h.luma.wait_for(lambda: h.luma.creates[-1]["prompt"] == "a kettle")
    assert h.luma.creates[-1]["aspect_ratio"] == "16:9"
    assert "default preset of <#C1>: wide" in await admin(h, "log")
    assert "Done: this channel has no default preset now" in await preset(h, "channel none", user=ADMIN)


async def test_a_preset_form_keeps_reference_images_that_reach_luma_and_count_in_the_cost(start_bot):
    h = await start(start_bot)
    refs = [h.slack.add_user_file(png(size=(1600, 1200), color=(i * 60, 20, 20)), name=f"kit{i}.png",
                                  mimetype="image/png", user=ADMIN) for i in range(2)]
    status, _ = await h.command("preset", command="/luma", user_id=ADMIN)
    assert status == 200
    await h.slack.wait_for(lambda: len(h.slack.views) == 1)
    view = h.slack.views[0].view
    assert view["callback_id"] == "preset_modal"
    values = {"name": {"name": "kit"}, "flags": {"flags": "--format png"}, "style": {"style": "brand colours"},
              "refs": {"refs": {"type": "file_input", "files": refs}}, "scope": {"scope": select("workspace")}}
    status, body, *_ = await h.slack.post_interaction(h.url, view_submission_payload(
        "preset_modal", values, private_metadata=view["private_metadata"], user_id=ADMIN))
    assert status == 200 and not body
    await h.slack.wait_for(lambda: any("Saved the workspace's preset `kit`" in t for t in dms(h, ADMIN)))
    assert "2 reference images" in dms(h, ADMIN)[-1]
    for f in refs:  # kept with the preset: the messages they came from may go
        h.slack.delete_user_file(f["id"])
    job = await h.finished((await h.imagine("a mug --preset kit", user_id="U2")).id)
    body = h.luma.creates[-1]
    assert [r.keys() for r in body["image_ref"]] == [{"data", "media_type"}] * 2
    assert all(base64.b64decode(r["data"])[:4] == b"\x89PNG" for r in body["image_ref"])
    sizes = [Image.open(io.BytesIO(base64.b64decode(r["data"]))).size for r in body["image_ref"]]
    assert sizes == [(1024, 768)] * 2  # kept at most 1024 px long
    assert body["output_format"] == "png" and body["prompt"] == "a mug. Style direction: brand colours"
    assert abs(job.cost_usd - (0.0404 + 0.003)) < 1e-9
    assert job.origin.preset == "kit" and job.origin.flags["output_format"] == "preset kit"
    assert h.slack.message("C1", job.status_ts).metadata["event_payload"]["preset"] == "kit"
    # Info says where each flag came from
    seen = len(h.slack.responses)
    await click(h, job, "info", user_id="U2")
    await h.slack.wait_for(lambda: any(r.body.get("blocks") for r in h.slack.responses[seen:]))
    info = json.dumps([r.body for r in h.slack.responses[seen:]])
    assert "*Format:* png (preset kit)" in info and "*References:* 2 images" in info


async def test_too_many_references_with_the_presets_are_refused_clearly(start_bot):
    h = await start(start_bot)
    refs = [h.slack.add_user_file(png(), name=f"{i}.png", mimetype="image/png", user="U1") for i in range(3)]
    status, _ = await h.command("preset", command="/luma", user_id="U1")
    await h.slack.wait_for(lambda: len(h.slack.views) == 1)
    view = h.slack.views[0].view
    await h.slack.post_interaction(h.url, view_submission_payload("preset_modal", {
        "name": {"name": "three"}, "refs": {"refs": {"type": "file_input", "files": refs}},
        "scope": {"scope": select("personal")}}, private_metadata=view["private_metadata"]))
    await h.slack.wait_for(lambda: any("Saved your preset `three`" in t for t in dms(h, "U1")))
    first = await made(h, "a cat")
    photos = [{"id": f["id"], "name": f["name"], "mimetype": "image/png",
               "url_private_download": f["url_private_download"]} for f in
              [h.slack.add_user_file(png(), name=f"p{i}.png", mimetype="image/png") for i in range(8)]]
    await h.slack.user_posts(h.url, "make it night --preset three", user="U1", channel="C1",
                             thread_ts=h.slack.top_level("C1")[-1].ts, files=photos)
    await h.slack.wait_for(lambda: any("Luma takes at most 8 on an edit" in (e.text or "") for e in h.slack.ephemerals))
    assert h.luma.creates == [first]


async def test_presets_in_sessions_edit_and_the_form(start_bot):
    h = await start(start_bot)
    await preset(h, "save noir --ar 2:3 film noir")
    await preset(h, "save wide --ar 16:9 --workspace", user=ADMIN)
    await preset(h, "channel wide", user=ADMIN)
    # /imagine's form offers the presets one may use
    await h.command("")
    await h.slack.wait_for(lambda: len(h.slack.views) == 1)
    view = h.slack.views[0].view
    options = next(b for b in view["blocks"] if b.get("block_id") == "preset")["element"]["options"]
    assert [o["value"] for o in options] == ["noir", "wide", "none"]
    await h.slack.post_interaction(h.url, view_submission_payload(
        "imagine_modal", {"prompt": {"prompt": "an owl"}, "preset": {"preset": select("noir")}},
        private_metadata=view["private_metadata"]))
    await h.luma.wait_for(lambda: h.luma.creates and h.luma.creates[-1]["prompt"].startswith("an owl"))
    assert h.luma.creates[-1]["aspect_ratio"] == "2:3"
    await h.wait_job(lambda j: j.settled and j.params.prompt.startswith("an owl"))
    # /edit: the preset's style goes with the instruction (an edit keeps the image's shape)
    status, body = await h.command("make it snow --preset noir", command="/edit")
    assert status == 200 and not body
    await h.luma.wait_for(lambda: h.luma.creates[-1]["type"] == "image_edit")
    assert h.luma.creates[-1]["prompt"] == "make it snow. Style direction: film noir"
    await h.wait_job(lambda j: j.settled and j.params.type == "image_edit")
    # a session started with a preset: its prompts use it, the theme still closes the prompt
    status, _ = await h.command("session start --preset noir moonlit", command="/luma", channel_id="C3")
    assert status == 200
    await h.slack.wait_for(lambda: h.slack.top_level("C3"))
    await h.slack.user_posts(h.url, "a garden", user="U1", channel="C3")
    await h.luma.wait_for(lambda: h.luma.creates[-1]["prompt"].startswith("a garden"))
    assert h.luma.creates[-1]["prompt"] == "a garden. Style direction: film noir. Style direction: moonlit"
    assert h.luma.creates[-1]["aspect_ratio"] == "2:3"
