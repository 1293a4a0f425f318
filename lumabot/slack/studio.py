"""lumabot's private studio in Slack's AI split view, on Bolt's `AsyncAssistant`.

A thread opened in the pane gets a greeting and suggested prompts (the person's presets and the
workspace's first); every message in it is a prompt (with an image attached, an edit of it),
made in the thread, with the thread's status line following the job (notifier.py) and its title
the first prompt; images made there can be shared to the channel the person is looking at
(`assistant_thread_context_changed`, kept in lumabot's database by `DatabaseThreadContexts`).
Replies in plain DM threads (no studio thread) fall through to the usual message listener."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from slack_bolt.context.assistant.thread_context import AssistantThreadContext
from slack_bolt.context.assistant.thread_context_store.async_store import AsyncAssistantThreadContextStore
from slack_bolt.listener_matcher.async_listener_matcher import AsyncCustomListenerMatcher
from slack_bolt.middleware.assistant.async_assistant import AsyncAssistant

from ..jobs.text import clip
from ..store import Store
from .blocks import confirm_blocks
from .payloads import parse_message

if TYPE_CHECKING:
    from .listeners import Lumabot

log = logging.getLogger(__name__)

GREETING = ("Hi! This is your private studio: describe an image and I will make it here, where only you see "
            "it. Flags work as everywhere (`--ar 16:9`, `--max`, `--n 4`, `--preset NAME`); attach a photo to "
            "edit it. When you like an image, *Share* posts it into the channel you are looking at.")
EXAMPLES = [
    {"title": "A lighthouse at dusk", "message": "a lighthouse at dusk, oil painting --ar 16:9"},
    {"title": "Four logo ideas", "message": "a minimalist fox logo, flat vector --n 4 --ar 1:1"},
    {"title": "A poster, best model", "message": "a retro travel poster of the Alps --max --ar 2:3"},
]
MAX_SUGGESTED = 4  # assistant.threads.setSuggestedPrompts takes at most four


class DatabaseThreadContexts(AsyncAssistantThreadContextStore):
    """Bolt's thread context store on lumabot's database (not message metadata, not memory)."""

    def __init__(self, store: Store):
        self.store = store

    async def save(self, *, channel_id: str, thread_ts: str, context: dict[str, str]) -> None:
        await self.store.studio.save(channel_id=channel_id, thread_ts=thread_ts, context=dict(context))

    async def find(self, *, channel_id: str, thread_ts: str) -> AssistantThreadContext | None:
        context = await self.store.studio.context(channel_id, thread_ts)
        return AssistantThreadContext(context) if context else None


def studio(lb: "Lumabot", store: Store) -> AsyncAssistant:
    """The split view's listeners."""
    assistant = AsyncAssistant(thread_context_store=DatabaseThreadContexts(store))

    @assistant.thread_started
    async def started(payload: dict[str, Any], body: dict[str, Any], say: Any, set_suggested_prompts: Any,
                      context: Any) -> None:
        thread = payload["assistant_thread"]
        team_id = lb.team(body)
        await store.studio.save(channel_id=thread["channel_id"], thread_ts=thread["thread_ts"],
                                context=dict(thread.get("context") or {}), team_id=team_id,
                                user_id=thread.get("user_id") or "")
        await say(GREETING)
        presets = await lb.intake.presets.usable(team_id, thread.get("user_id") or "")
        prompts = [{"title": f"Preset {p.name}", "message": f"a lighthouse at dusk --preset {p.name}"}
                   for p in presets] + EXAMPLES
        await set_suggested_prompts(prompts=prompts[:MAX_SUGGESTED], title="Try one of these:")

    async def in_a_studio_thread(body: dict[str, Any], context: Any) -> bool:
        """A studio thread (its context kept for the listener: one read per message)."""
        event = body.get("event") or {}
        context["studio_context"] = await store.studio.context(event.get("channel", ""), event.get("thread_ts", ""))
        return context["studio_context"] is not None

    # (Bolt joins a list of matchers; a plain async function would be taken as a sync one)
    studio_thread = AsyncCustomListenerMatcher(app_name="lumabot", func=in_a_studio_thread)

    @assistant.user_message(matchers=[studio_thread])  # type: ignore[arg-type]
    async def prompt(payload: dict[str, Any], body: dict[str, Any], client: Any, set_title: Any,
                     context: Any) -> None:
        msg = parse_message(payload, body, bot_user_id=context.get("bot_user_id"), team_id=lb.team(body))
        if msg is None:
            return
        where = context.get("studio_context") or {}
        reply = await lb.intake.in_time(lambda: lb.intake.on_studio_message(msg, share_to=where.get("channel_id")))
        if msg.text.strip() and await store.studio.title_once(msg.channel_id, msg.root):
            try:
                await set_title(clip(msg.text.strip(), 100))
            except Exception as exc:
                log.info("assistant.threads.setTitle failed: %s", exc)
        if reply is not None:  # (the thread is the person's own: no need for an ephemeral)
            await client.chat_postMessage(channel=msg.channel_id, thread_ts=msg.root, text=clip(reply.text),
                                          blocks=confirm_blocks(reply.confirm) if reply.confirm else None)

    return assistant
