"""Input lumabot cannot use gets a short answer, never a 500 or a traceback (issue #21, points
2 and 10): unsigned bodies are refused before anything is parsed; signed payloads with missing
or odd fields get a one-line warning and the acknowledgement Slack expects."""

from __future__ import annotations

import json
import logging
from urllib.parse import urlencode

import pytest

from lumabot.testing.fake_slack import block_actions_payload, view_submission_payload

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


def deep(n: int) -> str:
    return "[" * n + "]" * n


UNSIGNED = [
    (b"[1,2,3]", JSON), (b"null", JSON), (b"1", JSON), (b'"text"', JSON),
    (deep(5000).encode(), JSON), (b"payload=[1]", FORM), (b"payload=null", FORM),
    (b"\xff\xfe\x00garbage", JSON), (b"", JSON),
]


def tracebacks(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]


@pytest.mark.parametrize("body,content_type", UNSIGNED)
async def test_unsigned_bodies_are_refused_before_parsing(harness, caplog, body, content_type):
    h = harness
    caplog.set_level(logging.DEBUG)
    status, text = await h.slack.peer.post_raw(h.url, body, content_type=content_type, sign=False)
    assert status == 401 and len(text) < 100
    assert tracebacks(caplog) == []
    lines = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 1 and len(lines[0].getMessage()) < 200


def _form(payload) -> bytes:
    return urlencode({"payload": json.dumps(payload)}).encode()


def _signed_bodies(h) -> list[tuple[str, bytes, str]]:
    action = block_actions_payload("reroll", value="nope", user_id="U1", channel_id="C1",
                                   message_ts="1.1", response_url=h.slack.new_response_url())
    no_user = {k: v for k, v in action.items() if k != "user"}
    view = view_submission_payload("imagine_modal", {"prompt": {"prompt": "a cat"}}, private_metadata="{")
    event = {"type": "event_callback", "team_id": h.slack.team_id, "api_app_id": h.slack.app_id,
             "event_id": "Ev1", "event_time": 1, "authorizations": [
                 {"team_id": h.slack.team_id, "user_id": h.slack.bot_user_id, "is_bot": True}]}
    return [
        ("json list", b"[1,2,3]", JSON),
        ("json null", b"null", JSON),
        ("payload list", b"payload=%5B1%5D", FORM),
        ("deep nesting", deep(900).encode(), JSON),
        ("action without user", _form(no_user), FORM),
        ("action without actions", _form({**action, "actions": []}), FORM),
        ("action as a string", _form({**action, "actions": "reroll"}), FORM),
        ("view with bad metadata", _form(view), FORM),
        ("view without state", _form({**view, "view": {**view["view"], "state": None}}), FORM),
        ("view as a string", _form({**view, "view": "x"}), FORM),
        ("shortcut without trigger", _form({"type": "message_action", "callback_id": "edit_image",
                                            "team": {"id": h.slack.team_id}, "user": {"id": "U1"},
                                            "channel": {"id": "C1"}, "message": {"ts": "1.1"}}), FORM),
        ("message without channel", json.dumps({**event, "event": {
            "type": "message", "user": "U1", "text": "hi", "ts": "1.1"}}).encode(), JSON),
        ("message without user", json.dumps({**event, "event_id": "Ev2", "event": {
            "type": "message", "channel": "C1", "text": "hi", "ts": "1.2", "channel_type": "channel"}}).encode(), JSON),
        ("files as a string", json.dumps({**event, "event_id": "Ev3", "event": {
            "type": "message", "user": "U1", "channel": "C1", "text": "make it red", "ts": "1.3",
            "files": "F1", "channel_type": "channel"}}).encode(), JSON),
        ("mention as a list", json.dumps({**event, "event_id": "Ev4", "event": ["app_mention"]}).encode(), JSON),
        ("reaction without item", json.dumps({**event, "event_id": "Ev5", "event": {
            "type": "reaction_added", "user": "U1", "reaction": "star"}}).encode(), JSON),
        ("command without user", urlencode({"command": "/imagine", "text": "a cat", "team_id": h.slack.team_id,
                                            "channel_id": "C1"}).encode(), FORM),
        ("command without channel", urlencode({"command": "/edit", "text": "x", "team_id": h.slack.team_id,
                                               "user_id": "U1"}).encode(), FORM),
    ]


async def test_signed_but_malformed_payloads_get_an_ack_and_one_short_line(harness, caplog):
    h = harness
    caplog.set_level(logging.DEBUG)
    for name, body, content_type in _signed_bodies(h):
        caplog.clear()
        status, text = await h.slack.peer.post_raw(h.url, body, content_type=content_type)
        assert status in (200, 400), (name, status, text)
        assert len(text) < 300, name
        assert tracebacks(caplog) == [], (name, [r.getMessage() for r in tracebacks(caplog)])
    # the app still works, and nothing was started by the payloads above
    assert await h.jobs() == []
    await h.finished((await h.imagine("still fine")).id)
