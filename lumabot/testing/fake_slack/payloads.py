"""Payload builders: what Slack sends the bot (slash commands, events, interactions), from text as people type it."""

from __future__ import annotations

import base64
import json
import secrets
import time
import uuid
from typing import Any

from .records import _channel_type, Message, _new_id, new_trigger_id, next_ts


# ----------------------------------------------------------------------------------------------
# payload builders
# ----------------------------------------------------------------------------------------------


def _from_external_team(payload: dict, team: str) -> dict:
    payload = json.loads(json.dumps(payload))
    installed = (payload.get("team") or {}).get("id")
    payload["team"] = {**(payload.get("team") or {}), "id": team}
    if isinstance(payload.get("user"), dict):
        payload["user"]["team_id"] = team
    if isinstance(payload.get("view"), dict):
        payload["view"]["team_id"] = team
        payload["view"]["app_installed_team_id"] = installed
    return payload


def slack_escape(typed: str) -> str:
    """Text as a person typed it, encoded as Slack sends it: `&`, `<`, `>` as entities."""
    return typed.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _user_obj(user_id: str, user_name: str, team_id: str) -> dict:
    return {"id": user_id, "username": user_name, "name": user_name, "team_id": team_id}


def _message_to_dict(message: Any) -> dict | None:
    if message is None:
        return None
    if isinstance(message, Message):
        return message.to_dict()
    return dict(message)


def slash_command_payload(
    command: str,
    text: str = "",
    *,
    user_id: str = "U1",
    user_name: str = "alice",
    channel_id: str = "C1",
    channel_name: str = "general",
    team_id: str = "T0TEST",
    team_domain: str = "fake",
    response_url: str | None = None,
    trigger_id: str | None = None,
    api_app_id: str = "A0TEST",
    token: str = "verification-token",
    enterprise_id: str | None = None,
    enterprise_install: bool = False,
    encoded: bool = False,
) -> dict[str, str]:
    """Form fields of a slash command as Slack sends them (an empty response_url is filled in by
    `SlackPeer` / `send_envelope`). `text` is what the person typed (escaped here as Slack
    does), or Slack's encoding already with `encoded=True`."""
    if not command.startswith("/"):
        command = "/" + command
    if not encoded:
        text = slack_escape(text)
    d = {
        "token": token,
        "team_id": team_id,
        "team_domain": team_domain,
        "channel_id": channel_id,
        "channel_name": channel_name,
        "user_id": user_id,
        "user_name": user_name,
        "command": command,
        "text": text,
        "api_app_id": api_app_id,
        "is_enterprise_install": "true" if enterprise_install else "false",
        "response_url": response_url or "",
        "trigger_id": trigger_id or new_trigger_id(),
    }
    if enterprise_id:
        d["enterprise_id"] = enterprise_id
    return d


def event_callback(
    event: dict,
    *,
    event_id: str | None = None,
    team_id: str = "T0TEST",
    api_app_id: str = "A0TEST",
    bot_user_id: str = "UBOT",
    event_time: int | None = None,
    token: str = "verification-token",
    enterprise_id: str | None = None,
    enterprise_install: bool = False,
    is_ext_shared_channel: bool = False,
    installed_team_id: str | None = None,
) -> dict:
    """The full Events API envelope around `event`. In a Slack Connect channel `team_id` can
    be the other organisation's: `installed_team_id` is then the installing workspace, which
    only `authorizations` names. Installed org-wide on Enterprise Grid (`enterprise_install`),
    the authorization names the organisation and no workspace."""
    return {
        "token": token,
        "team_id": team_id,
        "context_team_id": team_id,
        "context_enterprise_id": enterprise_id,
        "api_app_id": api_app_id,
        "event": event,
        "type": "event_callback",
        "event_id": event_id or f"Ev{secrets.token_hex(5).upper()}",
        "event_time": int(time.time()) if event_time is None else event_time,
        "authorizations": [
            {
                "enterprise_id": enterprise_id,
                "team_id": None if enterprise_install else installed_team_id or team_id,
                "user_id": bot_user_id,
                "is_bot": True,
                "is_enterprise_install": enterprise_install,
            }
        ],
        "is_ext_shared_channel": is_ext_shared_channel,
        "event_context": "4-" + base64.urlsafe_b64encode(secrets.token_bytes(24)).decode().rstrip("="),
    }


def _rich_text(text: str) -> list[dict]:
    return [
        {
            "type": "rich_text",
            "block_id": secrets.token_hex(3),
            "elements": [{"type": "rich_text_section", "elements": [{"type": "text", "text": text}]}],
        }
    ]


def message_event(
    text: str = "",
    *,
    user: str = "U1",
    channel: str = "C1",
    ts: str | None = None,
    thread_ts: str | None = None,
    channel_type: str | None = None,
    files: list[dict] | None = None,
    team: str = "T0TEST",
    client_msg_id: str | None = None,
    subtype: str | None = None,
    bot_id: str | None = None,
    parent_user_id: str | None = None,
    blocks: list | None = None,
    mention_bot: bool = False,
    bot_user_id: str = "UBOT",
    encoded: bool = False,
) -> dict:
    """A ``message`` event as delivered by message.channels / .groups / .im. With `files` the
    subtype is ``file_share``. `text` is what the person typed (escaped here as Slack does);
    `mention_bot` puts a real mention of the bot in front."""
    ts = ts or next_ts()
    if not encoded:
        text = slack_escape(text)
    if mention_bot:
        text = f"<@{bot_user_id}> {text}".rstrip()
    ev: dict[str, Any] = {"type": "message"}
    if files and subtype is None:
        subtype = "file_share"
    if subtype:
        ev["subtype"] = subtype
    ev.update(
        {
            "text": text,
            "user": user,
            "ts": ts,
            "team": team,
            "channel": channel,
            "event_ts": ts,
            "channel_type": channel_type or _channel_type(channel),
            "blocks": blocks if blocks is not None else _rich_text(text),
        }
    )
    if bot_id:
        ev["bot_id"] = bot_id
    else:
        ev["client_msg_id"] = client_msg_id or str(uuid.uuid4())
    if files:
        ev["files"] = files
        ev["upload"] = False
        ev["display_as_bot"] = False
    if thread_ts and thread_ts != ts:
        ev["thread_ts"] = thread_ts
        ev["parent_user_id"] = parent_user_id or user
    return ev


def app_mention_event(
    text: str = "",
    *,
    user: str = "U1",
    channel: str = "C1",
    ts: str | None = None,
    thread_ts: str | None = None,
    files: list[dict] | None = None,
    team: str = "T0TEST",
    bot_user_id: str = "UBOT",
    client_msg_id: str | None = None,
    encoded: bool = False,
) -> dict:
    """An ``app_mention`` event: the real mention ``<@bot_user_id>`` in front of what the person
    typed (escaped as Slack does; a leading ``<@bot_user_id>`` in `text` stands for the
    mention). Slack never sends this event for a DM."""
    mention = f"<@{bot_user_id}>"
    if not encoded:
        text = slack_escape(text.removeprefix(mention).strip())
    if mention not in text:
        text = f"{mention} {text}".rstrip()
    ts = ts or next_ts()
    ev: dict[str, Any] = {
        "type": "app_mention",
        "client_msg_id": client_msg_id or str(uuid.uuid4()),
        "text": text,
        "user": user,
        "ts": ts,
        "team": team,
        "channel": channel,
        "event_ts": ts,
        "blocks": _rich_text(text),
    }
    if files:
        ev["files"] = files
    if thread_ts and thread_ts != ts:
        ev["thread_ts"] = thread_ts
        ev["parent_user_id"] = user
    return ev


def message_changed_event(original: dict, text: str, *, encoded: bool = False,
                          mention_bot: bool = False, bot_user_id: str = "UBOT") -> dict:
    """The ``message`` event (subtype ``message_changed``) Slack sends when the person edits
    `original` (a message event) to `text` (as typed). Slack sends no new app_mention."""
    new_text = text if encoded else slack_escape(text)
    if mention_bot:
        new_text = f"<@{bot_user_id}> {new_text}".rstrip()
    now = next_ts()
    previous = {k: v for k, v in original.items() if k not in ("channel", "event_ts", "channel_type")}
    message = {**previous, "text": new_text, "blocks": _rich_text(new_text),
               "edited": {"user": original.get("user"), "ts": now}}
    message.pop("subtype", None)
    return {
        "type": "message",
        "subtype": "message_changed",
        "message": message,
        "previous_message": previous,
        "channel": original.get("channel"),
        "hidden": True,
        "ts": now,
        "event_ts": now,
        "channel_type": original.get("channel_type") or _channel_type(original.get("channel") or "C1"),
    }


def reaction_event(
    reaction: str,
    *,
    user: str = "U1",
    channel: str = "C1",
    ts: str,
    added: bool = True,
    item_user: str = "UBOT",
) -> dict:
    """A ``reaction_added`` / ``reaction_removed`` event on the message at `ts`."""
    return {
        "type": "reaction_added" if added else "reaction_removed",
        "user": user,
        "reaction": reaction,
        "item_user": item_user,
        "item": {"type": "message", "channel": channel, "ts": ts},
        "event_ts": next_ts(),
    }


def app_home_opened_event(user: str = "U1", *, tab: str = "home", channel: str | None = None, view: dict | None = None) -> dict:
    ev: dict[str, Any] = {
        "type": "app_home_opened",
        "user": user,
        "channel": channel or ("D" + user[1:]),
        "tab": tab,
        "event_ts": next_ts(),
    }
    if view is not None:
        ev["view"] = view
    return ev


def app_uninstalled_event() -> dict:
    return {"type": "app_uninstalled", "event_ts": next_ts()}


def tokens_revoked_event(bot_user_ids: list[str] | None = None, oauth_user_ids: list[str] | None = None) -> dict:
    return {
        "type": "tokens_revoked",
        "tokens": {"oauth": oauth_user_ids or [], "bot": bot_user_ids or ["UBOT"]},
        "event_ts": next_ts(),
    }


def url_verification_payload(challenge: str | None = None, token: str = "verification-token") -> dict:
    return {"token": token, "challenge": challenge or secrets.token_urlsafe(24), "type": "url_verification"}


def block_actions_payload(
    action_id: str,
    *,
    value: str | None = None,
    block_id: str | None = None,
    action_type: str = "button",
    text: str = "Button",
    selected_option: dict | None = None,
    selected_conversation: str | None = None,
    user_id: str = "U1",
    user_name: str = "alice",
    team_id: str = "T0TEST",
    team_domain: str = "fake",
    channel_id: str | None = None,
    channel_name: str = "general",
    message: Any = None,
    message_ts: str | None = None,
    thread_ts: str | None = None,
    is_ephemeral: bool = False,
    view: dict | None = None,
    response_url: str | None = None,
    trigger_id: str | None = None,
    api_app_id: str = "A0TEST",
    state: dict | None = None,
    token: str = "verification-token",
) -> dict:
    """A ``block_actions`` payload: a button (or select) on a message, or in a view when `view` is
    given. `message` may be a `Message` or a dict."""
    if isinstance(message, Message):
        channel_id = channel_id or message.channel
        message_ts = message_ts or message.ts
        thread_ts = thread_ts or message.thread_ts
    channel_id = channel_id or "C1"
    action: dict[str, Any] = {
        "action_id": action_id,
        "block_id": block_id or secrets.token_hex(3),
        "type": action_type,
        "action_ts": next_ts(),
    }
    if action_type == "button":
        action["text"] = {"type": "plain_text", "text": text, "emoji": True}
        if value is not None:
            action["value"] = value
    elif action_type == "conversations_select":
        action["selected_conversation"] = selected_conversation or value
    elif selected_option is not None:
        action["selected_option"] = selected_option
    elif value is not None:
        action["selected_option"] = {"text": {"type": "plain_text", "text": value}, "value": value}
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": _user_obj(user_id, user_name, team_id),
        "api_app_id": api_app_id,
        "token": token,
        "trigger_id": trigger_id or new_trigger_id(),
        "team": {"id": team_id, "domain": team_domain},
        "enterprise": None,
        "is_enterprise_install": False,
        "state": state or {"values": {}},
        "actions": [action],
    }
    if view is not None:
        payload["container"] = {"type": "view", "view_id": view.get("id")}
        payload["view"] = view
    else:
        msg = _message_to_dict(message) or {
            "type": "message",
            "user": "UBOT",
            "ts": message_ts or next_ts(),
            "bot_id": "BBOT",
            "text": "",
        }
        mts = message_ts or msg.get("ts")
        container: dict[str, Any] = {
            "type": "message",
            "message_ts": mts,
            "channel_id": channel_id,
            "is_ephemeral": is_ephemeral,
        }
        if thread_ts:
            container["thread_ts"] = thread_ts
        payload["container"] = container
        payload["channel"] = {"id": channel_id, "name": channel_name}
        if not is_ephemeral:
            payload["message"] = msg
        payload["response_url"] = response_url or ""
    return payload


def view_submission_payload(
    callback_id: str,
    values: dict | None = None,
    *,
    user_id: str = "U1",
    user_name: str = "alice",
    team_id: str = "T0TEST",
    team_domain: str = "fake",
    view_id: str | None = None,
    private_metadata: str = "",
    blocks: list | None = None,
    title: str = "Lumabot",
    trigger_id: str | None = None,
    api_app_id: str = "A0TEST",
    response_urls: list | None = None,
    hash: str | None = None,
    external_id: str = "",
    token: str = "verification-token",
) -> dict:
    """A ``view_submission`` payload. `values` is Slack's ``state.values`` shape, or the short
    form ``{block_id: {action_id: "text"}}`` (turned into plain_text_input values)."""
    state: dict[str, dict] = {}
    for bid, actions in (values or {}).items():
        state[bid] = {}
        for aid, v in actions.items():
            state[bid][aid] = v if isinstance(v, dict) and "type" in v else {"type": "plain_text_input", "value": v}
    vid = view_id or _new_id("V")
    view = {
        "id": vid,
        "team_id": team_id,
        "type": "modal",
        "blocks": blocks or [],
        "private_metadata": private_metadata,
        "callback_id": callback_id,
        "state": {"values": state},
        "hash": hash or f"{int(time.time())}.{secrets.token_hex(4)}",
        "title": {"type": "plain_text", "text": title, "emoji": True},
        "clear_on_close": False,
        "notify_on_close": False,
        "close": {"type": "plain_text", "text": "Cancel", "emoji": True},
        "submit": {"type": "plain_text", "text": "Submit", "emoji": True},
        "previous_view_id": None,
        "root_view_id": vid,
        "app_id": api_app_id,
        "external_id": external_id,
        "app_installed_team_id": team_id,
        "bot_id": "BBOT",
    }
    return {
        "type": "view_submission",
        "team": {"id": team_id, "domain": team_domain},
        "user": _user_obj(user_id, user_name, team_id),
        "api_app_id": api_app_id,
        "token": token,
        "trigger_id": trigger_id or new_trigger_id(),
        "view": view,
        "response_urls": response_urls or [],
        "is_enterprise_install": False,
        "enterprise": None,
    }


def message_shortcut_payload(
    callback_id: str,
    *,
    message: Any = None,
    message_ts: str | None = None,
    channel_id: str | None = None,
    channel_name: str = "general",
    user_id: str = "U1",
    user_name: str = "alice",
    team_id: str = "T0TEST",
    team_domain: str = "fake",
    response_url: str | None = None,
    trigger_id: str | None = None,
    api_app_id: str = "A0TEST",
    token: str = "verification-token",
) -> dict:
    """A message shortcut (``message_action``) payload. `message` may be a `Message` or a dict."""
    if isinstance(message, Message):
        channel_id = channel_id or message.channel
    msg = _message_to_dict(message) or {"type": "message", "user": user_id, "ts": message_ts or next_ts(), "text": ""}
    return {
        "type": "message_action",
        "token": token,
        "action_ts": next_ts(),
        "team": {"id": team_id, "domain": team_domain},
        "user": _user_obj(user_id, user_name, team_id),
        "channel": {"id": channel_id or "C1", "name": channel_name},
        "is_enterprise_install": False,
        "enterprise": None,
        "api_app_id": api_app_id,
        "callback_id": callback_id,
        "trigger_id": trigger_id or new_trigger_id(),
        "response_url": response_url or "",
        "message_ts": message_ts or msg.get("ts"),
        "message": msg,
    }
