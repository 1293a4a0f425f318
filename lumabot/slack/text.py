"""Slack's encoding of what people type, decoded.

Slack sends message and slash-command text with `&`, `<` and `>` escaped as entities, and real
mentions and links as markup: `<@U123>`, `<#C123|design>`, `<!here>`, `<!subteam^S1|@team>`,
`<https://x.example|x.example>`. `typed_text` gives back the text as the person typed it:
entities decoded, links as their label, channel and group mentions as names, person mentions
dropped (a prompt gains nothing from a user id). The result is plain text, never markup: it
goes to Luma as it is and is escaped (`jobs/text.py`) wherever lumabot shows it.
"""

from __future__ import annotations

import re

_MARKUP = re.compile(r"<([^<>]*)>")


def _decode_markup(m: re.Match[str]) -> str:
    target, _, label = m.group(1).partition("|")
    if target.startswith("@"):              # a person: <@U123> or <@U123|name>
        return f"@{label}" if label else ""
    if target.startswith("#"):              # a channel: <#C123|name>
        return f"#{label}" if label else "#channel"
    if target.startswith("!"):              # <!here>, <!subteam^S1|@team>, <!date^…|fallback>
        return label or "@" + target[1:].split("^", 1)[0]
    return label or target                  # a link: <https://x|label> or <https://x>


def typed_text(text: str | None) -> str:
    """What the person typed, from Slack's encoded text."""
    text = _MARKUP.sub(_decode_markup, text or "")
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def command_words(text: str | None) -> list[str]:
    """A slash command's arguments: a channel picked from Slack's suggestions as `#C123`, a
    person as `@U123` (ids, which names are not), everything else as typed."""
    def keep_ids(m: re.Match[str]) -> str:
        target = m.group(1).partition("|")[0]
        return target if target[:1] in ("#", "@") else _decode_markup(m)

    text = _MARKUP.sub(keep_ids, text or "")
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&").split()


def mentions(text: str | None, user_id: str | None) -> bool:
    """Does Slack's encoded text mention this user (the bot)?"""
    return bool(user_id) and f"<@{user_id}" in (text or "")
