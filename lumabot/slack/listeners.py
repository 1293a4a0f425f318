"""Bolt listeners: parse what Slack sent, hand it to the job engine, ack in milliseconds.

No business logic and no SQL here: validation lives in the job domain, persistence in the store,
everything after the ack in the engine.
"""

from __future__ import annotations

import asyncio
import logging

from slack_bolt.async_app import AsyncApp

from ..engine import Engine
from ..jobs.flags import PromptError
from ..jobs.requests import imagine_job, strip_mentions
from . import blocks

log = logging.getLogger(__name__)

# Events the manifest subscribes to that no feature handles yet: acked, nothing else.
QUIET_EVENTS = ("message", "reaction_added", "reaction_removed", "app_home_opened",
                "app_uninstalled", "tokens_revoked")


def register(app: AsyncApp, engine: Engine) -> None:
    background: set[asyncio.Task] = set()

    def later(coro) -> None:
        """Run Slack I/O after the ack (listeners process before responding)."""
        task = asyncio.create_task(coro)
        background.add(task)
        task.add_done_callback(background.discard)

    @app.command("/imagine")
    async def imagine(ack, command):
        text = (command.get("text") or "").strip()
        if not text:
            await ack(response_type="ephemeral", text=blocks.USAGE)
            return
        try:
            job = imagine_job(team_id=command["team_id"], user_id=command["user_id"],
                              channel_id=command["channel_id"], text=text,
                              response_url=command.get("response_url"))
        except PromptError as exc:
            await ack(response_type="ephemeral", text=str(exc))
            return
        await engine.submit(job)
        await ack()

    @app.command("/edit")
    async def edit(ack):
        await ack(response_type="ephemeral", text=blocks.EDIT_NOT_YET)

    @app.command("/luma")
    async def luma(ack):
        await ack(response_type="ephemeral", text=blocks.LUMA_HELP)

    @app.event("app_mention")
    async def mention(event, body, client):
        event_id = body.get("event_id")
        channel, user = event.get("channel"), event.get("user")
        thread_ts = event.get("thread_ts") or event.get("ts")
        text = strip_mentions(event.get("text", ""))

        def tell(message: str) -> None:
            later(_ephemeral(client, channel, user, message, thread_ts))

        if event.get("files"):
            if event_id and await engine.store.claim_key(f"event:{event_id}"):
                tell(blocks.EDIT_NOT_YET)
            return
        if not text:
            if event_id and await engine.store.claim_key(f"event:{event_id}"):
                tell(blocks.USAGE)
            return
        try:
            job = imagine_job(team_id=body.get("team_id") or event.get("team", ""), user_id=user,
                              channel_id=channel, text=text, thread_ts=thread_ts)
        except PromptError as exc:
            if event_id and await engine.store.claim_key(f"event:{event_id}"):
                tell(str(exc))
            return
        await engine.submit(job, dedupe_key=f"event:{event_id}" if event_id else None)

    for name in QUIET_EVENTS:
        app.event(name)(_ignore)


async def _ignore() -> None:
    return None


async def _ephemeral(client, channel: str, user: str, text: str, thread_ts: str | None) -> None:
    try:
        await client.chat_postEphemeral(channel=channel, user=user, text=text, thread_ts=thread_ts)
    except Exception as exc:  # an ephemeral is best effort
        log.warning("ephemeral message failed: %s", exc)
