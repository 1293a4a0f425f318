"""Installed with manifest.minimal.yml (no channels:history / groups:history; issue #26): what
needs them answers plainly, everything else works."""

from __future__ import annotations

import json

import pytest

from lumabot.check import REQUIRED_BOT_SCOPES, READ_CHANNEL_SCOPES
from lumabot.intake import NO_MESSAGES_FOR_SESSIONS
from lumabot.testing.fake_slack import FakeSlack, app_mention_event

MINIMAL = [s for s in REQUIRED_BOT_SCOPES if s not in READ_CHANNEL_SCOPES]


@pytest.fixture
async def slack():
    fake = FakeSlack(scopes=MINIMAL)
    await fake.start()
    yield fake
    await fake.stop()


async def test_sessions_say_what_they_need_and_the_rest_works(harness):
    h = harness
    status, body = await h.command("session start noir city", command="/luma")
    assert status == 200 and json.loads(body)["text"] == NO_MESSAGES_FOR_SESSIONS
    assert not h.slack.top_level("C1")  # no banner
    job = await h.finished((await h.imagine("a lighthouse")).id)  # /imagine works
    # a mention in the image's thread edits it (app_mention needs no channel history)
    await h.slack.post_event(h.url, app_mention_event("<@UBOT> make it night", user="U1", channel="C1",
                                                       thread_ts=job.status_ts))
    edit = await h.wait_job(lambda j: j.params.type == "image_edit" and j.settled)
    assert edit.params.source.generation_id == job.generation_id
    # in a DM (im:history is kept) a session is not what is asked, and messages are prompts
    await h.slack.user_posts(h.url, "a cat in a dm", channel="DU1", user="U1")
    await h.wait_job(lambda j: j.channel_id == "DU1")
