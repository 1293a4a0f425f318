"""The Slack scopes lumabot asks for."""

from __future__ import annotations

# The bot scopes of manifest.yml (oauth_config.scopes.bot). manifest.yml is not shipped with the
# installed package and pyyaml is not a runtime dependency, so the list lives here too;
# tests/test_check.py asserts that the two stay equal.
REQUIRED_BOT_SCOPES: list[str] = [
    "commands",
    "chat:write",
    "files:read",
    "files:write",
    "reactions:read",
    "app_mentions:read",
    "channels:history",
    "groups:history",
    "im:history",
    "mpim:history",
    "im:write",
    "users:read",
    "assistant:write",
]

# Scopes manifest.minimal.yml leaves out: without them lumabot works, minus what they are for.
READ_CHANNEL_SCOPES = ("channels:history", "groups:history")
# Slack's AI split view (the private studio): without it, the same flows work in lumabot's DM.
STUDIO_SCOPES = ("assistant:write",)
