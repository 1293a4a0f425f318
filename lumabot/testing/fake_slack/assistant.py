"""Slack's AI split view (Agents & AI Apps) in the fake: the assistant.threads.* methods and the
events a person's actions in the pane send, shaped as Slack documents them
(docs.slack.dev: assistant_thread_started, assistant_thread_context_changed, message.im)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .payloads import message_event
from .records import _Ctx, _s, _SlackError, next_ts

MAX_PROMPTS = 4


@dataclass
class AssistantThread:
    """A thread a person opened in the split view, and what lumabot did to it."""

    channel: str
    thread_ts: str
    user: str
    statuses: list[str] = field(default_factory=list)
    prompts: list[list[dict]] = field(default_factory=list)
    titles: list[str] = field(default_factory=list)


class AssistantMethods:
    """assistant.threads.setStatus / setSuggestedPrompts / setTitle."""

    def _assistant_thread(self, p: dict) -> AssistantThread:
        if "assistant:write" not in self.scopes:
            raise _SlackError("missing_scope", needed="assistant:write", provided=",".join(self.scopes))
        channel, ts = _s(p, "channel_id"), _s(p, "thread_ts")
        if not channel or not ts:
            raise _SlackError("invalid_arguments", detail="channel_id and thread_ts are required")
        thread = self.assistant_threads.get((channel, ts))
        if thread is None:
            raise _SlackError("invalid_thread" if channel.startswith("D") else "channel_not_found")
        return thread

    def _assistant_set_status(self, p: dict, ctx: _Ctx) -> dict:
        thread = self._assistant_thread(p)
        status = p.get("status")
        if not isinstance(status, str):
            raise _SlackError("invalid_arguments", detail="status is required (empty clears it)")
        thread.statuses.append(status)
        return {}

    def _assistant_set_suggested_prompts(self, p: dict, ctx: _Ctx) -> dict:
        thread = self._assistant_thread(p)
        prompts = p.get("prompts")
        if isinstance(prompts, str):
            prompts = json.loads(prompts)
        if not isinstance(prompts, list) or not prompts or len(prompts) > MAX_PROMPTS or not all(
                isinstance(x, dict) and isinstance(x.get("title"), str) and isinstance(x.get("message"), str)
                for x in prompts):
            raise _SlackError("invalid_arguments", detail=f"1 to {MAX_PROMPTS} prompts, each a title and a message")
        thread.prompts.append(prompts)
        return {}

    def _assistant_set_title(self, p: dict, ctx: _Ctx) -> dict:
        thread = self._assistant_thread(p)
        title = _s(p, "title")
        if not title:
            raise _SlackError("invalid_arguments", detail="title is required")
        thread.titles.append(title)
        return {}

    # -- what a person does in the pane ------------------------------------------------------------
    def _assistant_context(self, channel: str | None) -> dict[str, Any]:
        return {"channel_id": channel, "team_id": self.team_id, "enterprise_id": None} if channel else {}

    async def open_assistant_thread(self, app_url: str, *, user: str = "U1", looking_at: str | None = "C1",
                                    **kw: Any) -> AssistantThread:
        """A person opens lumabot's split view (while reading `looking_at`): Slack makes a thread
        in their DM with the app and sends assistant_thread_started."""
        dm = self._dm_for_user(user).id
        root = self.add_user_message(dm, "", user=self.bot_user_id, ts=next_ts())
        root.bot_id = "BBOT"
        thread = AssistantThread(channel=dm, thread_ts=root.ts, user=user)
        self.assistant_threads[(dm, root.ts)] = thread
        await self.post_event(app_url, {
            "type": "assistant_thread_started",
            "assistant_thread": {"user_id": user, "context": self._assistant_context(looking_at),
                                 "channel_id": dm, "thread_ts": root.ts},
            "event_ts": next_ts()}, **kw)
        return thread

    async def assistant_looks_at(self, app_url: str, thread: AssistantThread, channel: str, **kw: Any) -> None:
        """The person moves to another channel with the pane open."""
        await self.post_event(app_url, {
            "type": "assistant_thread_context_changed",
            "assistant_thread": {"user_id": thread.user, "context": self._assistant_context(channel),
                                 "channel_id": thread.channel, "thread_ts": thread.thread_ts},
            "event_ts": next_ts()}, **kw)

    async def assistant_says(self, app_url: str, thread: AssistantThread, text: str, *,
                             files: list[dict] | None = None, **kw: Any) -> dict:
        """The person writes in the pane: a message.im event in the thread, with the
        `assistant_thread` action token Slack adds."""
        ev = message_event(text, user=thread.user, channel=thread.channel, thread_ts=thread.thread_ts,
                           channel_type="im", files=files, parent_user_id=self.bot_user_id)
        ev["assistant_thread"] = {"action_token": f"{next_ts()}.{thread.thread_ts}"}
        await self.post_event(app_url, ev, **kw)
        return ev
