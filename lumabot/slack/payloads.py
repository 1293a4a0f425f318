"""Slack payloads as the core takes them: people's messages, file objects, and the workspace
that installed lumabot. Typed text is decoded here (text.py); nothing else reads raw payloads."""

from __future__ import annotations

from ..intake import Message
from ..jobs.models import SlackFile
from .text import mentions, typed_text

# Message subtypes that are people posting; joins, bot messages, deletions... are ignored.
PEOPLE_SUBTYPES = (None, "file_share", "thread_broadcast")


def slack_file(obj: dict) -> SlackFile:
    """A SlackFile from a file object of an event, a shortcut or form payload, or files.info."""
    stub = obj.get("mode") == "file_access" or obj.get("file_access") == "check_file_info"
    return SlackFile(
        id=obj["id"], name=obj.get("name"), mimetype=obj.get("mimetype"),
        url=obj.get("url_private_download") or obj.get("url_private"),
        size=obj.get("size"), stub=stub,
    )


def installing_team(body: dict, fallback: str) -> str:
    """The workspace that installed lumabot, whose limits and budgets apply. In Slack Connect
    channels the payload's `team_id`, `team.id` and `user.team_id` can name the other
    organisation; `authorizations[0].team_id` (events) and `view.app_installed_team_id`
    (views) name the installation. Other payloads carry no such field: the bot token's own
    workspace (auth.test) is the installation then."""
    auths = body.get("authorizations") or []
    if auths and auths[0].get("team_id"):
        return str(auths[0]["team_id"])
    view = body.get("view") or {}
    if isinstance(view, dict) and view.get("app_installed_team_id"):
        return str(view["app_installed_team_id"])
    return fallback or body.get("team_id") or (body.get("team") or {}).get("id") or ""


def parse_message(event: dict, body: dict, *, bot_user_id: str | None, team_id: str,
                  edited: bool = False) -> Message | None:
    """A person's message from a message or app_mention event; None for bots, joins and
    deletions. A `message_changed` event gives the corrected message (`edited`)."""
    if event.get("subtype") == "message_changed" and not edited:
        inner = dict(event.get("message") or {})
        if not inner.get("edited"):
            return None  # an unfurl or a new reply count: not the person correcting their text
        inner.setdefault("channel", event.get("channel"))
        inner.setdefault("channel_type", event.get("channel_type"))
        return parse_message(inner, body, bot_user_id=bot_user_id, team_id=team_id, edited=True)
    if event.get("subtype") not in PEOPLE_SUBTYPES or event.get("bot_id") or not event.get("user"):
        return None
    if not event.get("channel") or not event.get("ts"):
        return None
    raw = event.get("text") or ""
    channel = event["channel"]
    return Message(
        team_id=team_id, channel_id=channel, user_id=event["user"], ts=event["ts"],
        text=typed_text(raw), thread_ts=event.get("thread_ts"),
        files=[slack_file(f) for f in event.get("files") or [] if f.get("id")],
        mentions_bot=mentions(raw, bot_user_id),
        is_dm=event.get("channel_type") == "im" or channel.startswith("D"),
        edited=edited,
    )
