"""Text people typed, shown back to them: Slack renders lumabot's messages as mrkdwn, where
`<!channel>` pings a channel and `<url|label>` is a link. Everything a person typed is escaped
before it is shown, so it appears literally and notifies nobody. This module is the one place
in the core that knows mrkdwn: how a channel, a person or an amount is named. Pure functions."""

from __future__ import annotations

# Slack's own limit on a message's text (it truncates longer texts).
MESSAGE_LIMIT = 4000


def escape_mrkdwn(text: str) -> str:
    """`&`, `<` and `>` as Slack's entities: no mention, link or command can come out of it."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def shown(text: str, limit: int | None = None) -> str:
    """`text` escaped for mrkdwn, at most `limit` characters (an entity is never cut)."""
    out = escape_mrkdwn(text)
    if limit is None or len(out) <= limit:
        return out
    raw = text
    while len(out) > limit - 1:
        raw = raw[: max(0, len(raw) - (len(out) - limit + 1))]
        out = escape_mrkdwn(raw)
    return out + "…"


def clip(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """Lumabot's own text, at most `limit` characters."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def channel_ref(channel_id: str) -> str:
    """A channel, as lumabot's messages name it (Slack shows the channel's name)."""
    return f"<#{channel_id}>"


def user_ref(user_id: str) -> str:
    """A person, as lumabot's messages name them (Slack shows their name)."""
    return f"<@{user_id}>"


def money(v: float) -> str:
    return f"${v:,.2f}"
