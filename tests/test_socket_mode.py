"""Socket Mode against a local fake websocket: hello, envelopes, acks."""

from __future__ import annotations

import pytest


from lumabot.app import LumaBot
from lumabot.config import load_settings
from lumabot.jobs.models import JobState
from lumabot.testing.fake_slack import app_mention_event, event_callback, slash_command_payload

from .conftest import bot_env
from lumabot.testing.store import job_ids


@pytest.fixture
async def socket_bot(tmp_path, slack, luma):
    """lumabot in Socket Mode, connected to the fake Slack's websocket."""
    env = bot_env(tmp_path, slack, luma, SLACK_APP_TOKEN=slack.app_token)
    env.pop("SLACK_SIGNING_SECRET")
    bot = LumaBot(load_settings(_env_file=None, **env))
    await bot.start()
    await bot.connect_socket_mode()
    try:
        await slack.wait_socket_connected()
        yield bot
    finally:
        await bot.stop()


async def test_socket_mode_imagine_end_to_end(socket_bot, slack, luma):
    bot = socket_bot
    payload = slash_command_payload("/imagine", "a kite over the dunes --ar 3:1",
                                    team_id=slack.team_id, response_url=slack.new_response_url())
    ack = await slack.send_envelope("slash_commands", payload)
    assert "envelope_id" in ack
    assert not (ack.get("payload") or {}).get("text")

    bad = slash_command_payload("/imagine", "a kite --ar 4:3", team_id=slack.team_id,
                                response_url=slack.new_response_url())
    ack = await slack.send_envelope("slash_commands", bad)
    assert "not an aspect ratio" in ack["payload"]["text"]

    await slack.wait_for(lambda: len([f for f in slack.files if f.shared]) == 1)
    (f,) = [f for f in slack.files if f.shared]
    assert f.content == luma.output_bytes(next(iter(luma.generations)))
    assert luma.creates[0]["aspect_ratio"] == "3:1"
    assert len(await job_ids(bot.store)) == 1
    await slack.wait_for(lambda: "Done in" in slack.top_level("C1")[0].text)

    # Events arrive as envelopes too, and a retried one is acked but not run twice.
    event = app_mention_event("<@UBOT> a red balloon", user="U2", channel="C1")
    for attempt in range(2):
        ack = await slack.send_envelope("events_api", event_callback(event, event_id="EvS1",
                                        team_id=slack.team_id), retry_attempt=attempt)
        assert ack["envelope_id"]
    await slack.wait_for(lambda: len([f for f in slack.files if f.shared]) == 2)
    assert len(luma.creates) == 2
    states = [(await bot.store.jobs.get(i)).state for i in await job_ids(bot.store)]
    assert len(states) == 2 and states.count(JobState.DONE) >= 1


async def test_odd_frames_are_acked_with_one_short_line_and_no_traceback(socket_bot, slack, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    await slack.send_raw_frame("{not json")
    await slack.send_raw_frame('{"type": "events_api"}')          # no envelope id, no payload
    for odd in ([1, 2], None, "text", {"type": "block_actions", "actions": []},
                {"type": "view_submission", "view": "x"}, {"type": "event_callback", "event": []}):
        ack = await slack.send_envelope("interactive", odd)       # acked all the same
        assert ack["envelope_id"] and not (ack.get("payload") or {}).get("text")
    payload = slash_command_payload("/imagine", "still fine", team_id=slack.team_id,
                                    response_url=slack.new_response_url())
    await slack.send_envelope("slash_commands", payload)
    await slack.wait_for(lambda: [f for f in slack.files if f.shared])
    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    assert all(len(r.getMessage()) < 300 for r in caplog.records if r.levelno >= logging.WARNING)
