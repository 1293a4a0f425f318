"""The pages a person sees after "Add to Slack" (Bolt's OAuth flow calls these): which workspace
lumabot was added to and how to start, or, when nothing was installed, why in plain words and a
link to start again."""

from __future__ import annotations

import html

from slack_bolt.oauth.async_callback_options import AsyncCallbackOptions, AsyncFailureArgs, AsyncSuccessArgs
from slack_bolt.response import BoltResponse

from ..config import INSTALL_PATH

# Bolt's failure reasons -> what happened, for the person who tried to install.
WHY = {
    "access_denied": "The installation was cancelled on Slack's page.",
    "invalid_browser": ("This page was opened in another browser than the one that started the installation "
                        "(or the installation link was used already)."),
    "invalid_state": "This installation link has expired or was used already.",
    "missing_code": "Slack did not confirm the installation.",
    "invalid_code": "Slack did not confirm the installation (its approval expired or was used already).",
    "storage_error": "lumabot could not save the installation: its database did not answer.",
}


def _page(title: str, body: str) -> str:
    return (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            "<style>body{font-family:system-ui,sans-serif;max-width:36em;margin:3em auto;padding:0 1em}"
            "</style></head>"
            f"<body><h1>{html.escape(title)}</h1>{body}</body></html>")


async def success(args: AsyncSuccessArgs) -> BoltResponse:
    installation = args.installation
    team = installation.team_name or installation.enterprise_name or "your workspace"
    where = installation.team_id or installation.enterprise_id or ""
    link = f"https://app.slack.com/client/{html.escape(where)}" if where else "https://app.slack.com/"
    body = (f"<p>lumabot is installed in <b>{html.escape(team)}</b>.</p>"
            f"<p><a href=\"{link}\">Open Slack</a> and type <code>/imagine a lighthouse at dusk</code> "
            "in a channel, or <code>/luma help</code> to see what it does.</p>")
    return BoltResponse(status=200, body=_page("lumabot is installed", body),
                        headers={"Content-Type": "text/html; charset=utf-8"})


async def failure(args: AsyncFailureArgs) -> BoltResponse:
    why = WHY.get(args.reason, "Slack did not complete the installation.")
    body = (f"<p>{html.escape(why)} Nothing was installed.</p>"
            f"<p><a href=\"{INSTALL_PATH}\">Start again</a></p>"
            f"<p><small>(reason: {html.escape(args.reason)})</small></p>")
    return BoltResponse(status=args.suggested_status_code, body=_page("lumabot was not installed", body),
                        headers={"Content-Type": "text/html; charset=utf-8"})


CALLBACKS = AsyncCallbackOptions(success=success, failure=failure)
