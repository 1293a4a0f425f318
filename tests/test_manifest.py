"""The Slack app manifest validates against Slack's schema and declares what lumabot uses."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from lumabot.check import REQUIRED_BOT_SCOPES

yaml = pytest.importorskip("yaml")
jsonschema = pytest.importorskip("jsonschema")

REPO_ROOT = Path(__file__).resolve().parents[1]
MANIFEST_PATH = REPO_ROOT / "manifest.yml"
# Slack's published app-manifest JSON schema, kept with the test data (a copy of the one in the
# shared workspace), so that a plain clone validates the manifest.
SCHEMA_PATH = REPO_ROOT / "tests" / "data" / "slack-manifest.schema.json"

COMMANDS = {"/imagine", "/edit", "/luma"}
BOT_SCOPES = set(REQUIRED_BOT_SCOPES)  # lumabot check's list: one list of scopes
BOT_EVENTS = {
    "app_home_opened",
    "app_mention",
    "message.channels",
    "message.groups",
    "message.im",
    "message.mpim",
    "reaction_added",
    "reaction_removed",
    "app_uninstalled",
    "tokens_revoked",
    "assistant_thread_started",
    "assistant_thread_context_changed",
}
# Scope Slack requires before it will deliver each bot event (None: no scope needed).
EVENT_SCOPES = {
    "app_home_opened": None,
    "app_mention": "app_mentions:read",
    "message.channels": "channels:history",
    "message.groups": "groups:history",
    "message.im": "im:history",
    "message.mpim": "mpim:history",
    "reaction_added": "reactions:read",
    "reaction_removed": "reactions:read",
    "app_uninstalled": None,
    "tokens_revoked": None,
    "assistant_thread_started": "assistant:write",
    "assistant_thread_context_changed": "assistant:write",
}


@pytest.fixture(scope="module")
def manifest() -> dict:
    assert MANIFEST_PATH.is_file(), f"missing {MANIFEST_PATH}"
    data = yaml.safe_load(MANIFEST_PATH.read_text(encoding="utf-8"))
    assert isinstance(data, dict), "manifest.yml must be a YAML mapping"
    return data


@pytest.fixture(scope="module")
def schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def test_manifest_validates_against_slack_schema(manifest: dict, schema: dict) -> None:
    jsonschema.Draft7Validator.check_schema(schema)
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(manifest), key=lambda e: list(e.absolute_path))
    report = "\n".join(
        f"- {'/'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}"
        for e in errors
    )
    assert not errors, f"manifest.yml has {len(errors)} schema error(s):\n{report}"


def test_display_information(manifest: dict) -> None:
    info = manifest["display_information"]
    assert info["name"] == "lumabot"
    assert info["description"].strip()
    # Slack rejects long descriptions under 175 characters.
    assert 175 <= len(info["long_description"]) <= 4000
    # The schema spells this constraint "regex", which JSON Schema ignores: check it here.
    assert re.fullmatch(r"#[0-9a-fA-F]{3}([0-9a-fA-F]{3})?", info["background_color"])


def test_bot_user_and_app_home(manifest: dict) -> None:
    features = manifest["features"]
    assert features["bot_user"] == {"display_name": "lumabot", "always_online": True}
    assert features["app_home"] == {
        "home_tab_enabled": True,
        "messages_tab_enabled": True,
        "messages_tab_read_only_enabled": False,
    }


def test_slash_commands(manifest: dict) -> None:
    commands = {c["command"]: c for c in manifest["features"]["slash_commands"]}
    assert set(commands) == COMMANDS
    for name, command in commands.items():
        assert command["description"].strip(), name
        assert command.get("usage_hint", "").strip(), name
        # /luma admin names channels and people: with escaping on, Slack sends their ids
        assert command.get("should_escape") is (name == "/luma"), name
    assert commands["/imagine"]["description"] == "Generate an image with Luma"
    assert "--ar" in commands["/imagine"]["usage_hint"]
    assert "--max" in commands["/edit"]["usage_hint"]
    for word in ("help", "session", "usage"):
        assert word in commands["/luma"]["usage_hint"]


def test_message_shortcut(manifest: dict) -> None:
    shortcuts = manifest["features"]["shortcuts"]
    edit = [s for s in shortcuts if s["callback_id"] == "edit_image"]
    assert len(edit) == 1
    assert edit[0]["type"] == "message"
    assert edit[0]["name"] == "Edit with Luma"
    assert edit[0]["description"].strip()


def test_bot_scopes(manifest: dict) -> None:
    scopes = manifest["oauth_config"]["scopes"]["bot"]
    assert len(scopes) == len(set(scopes)), "duplicate bot scopes"
    missing = BOT_SCOPES - set(scopes)
    assert not missing, f"missing bot scopes: {sorted(missing)}"


def test_oauth_redirect_url(manifest: dict) -> None:
    """OAuth mode: Slack sends people back to lumabot's /slack/oauth_redirect (over https)."""
    from lumabot.config import OAUTH_REDIRECT_PATH

    (url,) = manifest["oauth_config"]["redirect_urls"]
    assert url.startswith("https://") and url.endswith(OAUTH_REDIRECT_PATH)


def test_bot_events_and_their_scopes(manifest: dict) -> None:
    events = set(manifest["settings"]["event_subscriptions"]["bot_events"])
    missing = BOT_EVENTS - events
    assert not missing, f"missing bot events: {sorted(missing)}"
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    for event in events:
        assert event in EVENT_SCOPES, f"unexpected bot event {event!r}: add it to EVENT_SCOPES"
        needed = EVENT_SCOPES[event]
        assert needed is None or needed in scopes, f"{event} needs scope {needed}"


def test_settings_socket_mode_by_default(manifest: dict) -> None:
    settings = manifest["settings"]
    assert settings["interactivity"]["is_enabled"] is True
    assert settings["socket_mode_enabled"] is True
    assert settings["org_deploy_enabled"] is False
    assert settings["token_rotation_enabled"] is False
    # Socket Mode default: no request URLs anywhere (README explains adding them for HTTP mode).
    assert "request_url" not in settings["event_subscriptions"]
    assert "request_url" not in settings["interactivity"]
    for command in manifest["features"]["slash_commands"]:
        assert "url" not in command, command["command"]


MINIMAL_PATH = REPO_ROOT / "manifest.minimal.yml"
READ_CHANNELS = {"channels:history", "groups:history"}


def test_the_minimal_manifest_is_the_full_one_without_reading_channels(manifest: dict, schema: dict) -> None:
    """manifest.minimal.yml (issue #26): valid, and the same app less the scopes (and the events
    they bring) that read every message of the channels lumabot is in."""
    minimal = yaml.safe_load(MINIMAL_PATH.read_text(encoding="utf-8"))
    errors = list(jsonschema.Draft7Validator(schema).iter_errors(minimal))
    assert not errors, [e.message for e in errors]
    scopes = set(minimal["oauth_config"]["scopes"]["bot"])
    assert scopes == BOT_SCOPES - READ_CHANNELS
    events = set(minimal["settings"]["event_subscriptions"]["bot_events"])
    assert events == BOT_EVENTS - {"message.channels", "message.groups"}
    for event in events:
        assert EVENT_SCOPES[event] is None or EVENT_SCOPES[event] in scopes
    strip = ("oauth_config", "settings")
    assert {k: v for k, v in minimal.items() if k not in strip} == {k: v for k, v in manifest.items() if k not in strip}
