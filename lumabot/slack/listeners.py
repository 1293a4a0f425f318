"""Bolt listeners: parse what Slack sent, hand it to the studio, ack in milliseconds.

No business logic and no SQL here: what a message means is decided in `studio.py`, validation in
the job domain, persistence in the store, everything after the ack in the job engine. Listeners
run before the ack (process_before_response), so a job is recorded durably before Slack hears
back; replies to people are sent after the ack.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re

from slack_bolt.async_app import AsyncApp

from ..inputs import slack_file
from ..jobs.flags import PromptError
from ..studio import NO_IMAGE_IN_MESSAGE, Message, Reply, ShortcutTarget, Studio
from . import blocks

log = logging.getLogger(__name__)

# Events the manifest subscribes to that no feature handles yet: acked, nothing else.
QUIET_EVENTS = ("app_uninstalled", "tokens_revoked")
# Message subtypes that are people posting; edits, deletions, joins... are ignored.
PEOPLE_SUBTYPES = (None, "file_share", "thread_broadcast")


def parse_message(event: dict, body: dict) -> Message | None:
    """A person's message from a message or app_mention event; None for bots and edits."""
    if event.get("subtype") not in PEOPLE_SUBTYPES or event.get("bot_id") or not event.get("user"):
        return None
    return Message(
        team_id=body.get("team_id") or event.get("team") or "",
        channel_id=event["channel"], user_id=event["user"], ts=event["ts"],
        text=event.get("text") or "", thread_ts=event.get("thread_ts"),
        files=[slack_file(f) for f in event.get("files") or [] if f.get("id")],
    )


def register(app: AsyncApp, studio: Studio) -> None:
    background: set[asyncio.Task] = set()

    def later(coro) -> None:
        """Run Slack I/O after the ack."""
        task = asyncio.create_task(coro)
        background.add(task)
        task.add_done_callback(background.discard)

    @app.command("/imagine")
    async def imagine(ack, command, client):
        text = (command.get("text") or "").strip()
        if not text:
            await ack()
            meta = json.dumps({"channel_id": command["channel_id"], "response_url": command.get("response_url")})
            await client.views_open(trigger_id=command["trigger_id"], view=blocks.imagine_modal(meta))
            return
        try:
            await studio.imagine(team_id=command["team_id"], user_id=command["user_id"],
                                 channel_id=command["channel_id"], text=text,
                                 response_url=command.get("response_url"))
        except PromptError as exc:
            await ack(response_type="ephemeral", text=str(exc))
            return
        await ack()

    @app.command("/edit")
    async def edit(ack, command):
        answer = await studio.edit_command(
            team_id=command["team_id"], user_id=command["user_id"], channel_id=command["channel_id"],
            text=command.get("text") or "", response_url=command.get("response_url"))
        if answer:
            await ack(response_type="ephemeral", text=answer)
        else:
            await ack()

    @app.command("/luma")
    async def luma(ack, command):
        words = (command.get("text") or "").split()
        verb = words[0].lower() if words else ""
        if verb == "usage":
            text = await studio.usage(command["team_id"], command["user_id"])
        elif verb == "session":
            text = await studio.sessions.command(team_id=command["team_id"], user_id=command["user_id"],
                                                 channel_id=command["channel_id"], args=words[1:])
        else:
            text = blocks.full_help(studio.limits_text())
        if text:
            await ack(response_type="ephemeral", text=text)
        else:
            await ack()

    @app.view(blocks.IMAGINE_MODAL_ID)
    async def imagine_submitted(ack, body, view):
        values = view["state"]["values"]

        def chosen(block: str) -> str | None:
            option = values.get(block, {}).get(block, {}).get("selected_option") or {}
            return option.get("value")

        meta = json.loads(view.get("private_metadata") or "{}")
        try:
            await studio.imagine_from_form(
                team_id=body["team"]["id"], user_id=body["user"]["id"], channel_id=meta["channel_id"],
                prompt=values.get("prompt", {}).get("prompt", {}).get("value") or "",
                aspect_ratio=chosen("aspect_ratio"), model=chosen("model"), output_format=chosen("format"),
                refs=values.get("refs", {}).get("refs", {}).get("files") or [],
                response_url=meta.get("response_url"), dedupe_key=f"view:{view['id']}")
        except PromptError as exc:
            await ack(response_action="errors", errors={exc.field: str(exc)})
            return
        await ack()

    @app.action(re.compile(f"^({'|'.join(blocks.RESULT_ACTIONS)})$"))
    async def result_button(ack, body, action, client, respond):
        await ack()
        kind, job_id, user_id = action["action_id"], action.get("value") or "", body["user"]["id"]
        team_id = (body.get("team") or {}).get("id") or body["user"].get("team_id", "")
        answer: str | None = None
        if kind == "edit":
            target = await studio.result_target(job_id)
            if target is None:
                answer = "That image can no longer be edited."
            else:
                await client.views_open(trigger_id=body["trigger_id"],
                                        view=blocks.edit_modal(target.model_dump_json(exclude_none=True)))
        elif kind == "delete":
            answer = await studio.delete(job_id, user_id=user_id,
                                         is_admin=await _is_admin(client, user_id))
        else:
            answer = await studio.rerun(job_id, team_id=team_id, user_id=user_id, max_model=kind == "max",
                                        action_key=f"action:{kind}:{job_id}:{user_id}")
        if answer:
            later(respond(text=answer, response_type="ephemeral", replace_original=False))

    @app.event("app_home_opened")
    async def home(event, body, client):
        if event.get("tab", "home") != "home":
            return
        jobs, links, usage = await studio.home(body.get("team_id", ""), event["user"])
        later(client.views_publish(user_id=event["user"], view=blocks.home_view(jobs, links, usage)))

    @app.event("app_mention")
    async def mention(event, body, client):
        msg = parse_message(event, body)
        if msg is not None:
            reply = await studio.on_mention(msg)
            if reply:
                later(_say(client, msg, reply))

    @app.event("message")
    async def message(event, body, client):
        msg = parse_message(event, body)
        if msg is not None:
            reply = await studio.on_message(msg)
            if reply:
                later(_say(client, msg, reply))

    @app.shortcut("edit_image")
    async def edit_shortcut(ack, shortcut, client):
        await ack()
        target = await studio.shortcut_target(shortcut["channel"]["id"], shortcut.get("message") or {},
                                              response_url=shortcut.get("response_url"))
        view = blocks.edit_modal(target.model_dump_json(exclude_none=True)) if target else blocks.no_image_modal(NO_IMAGE_IN_MESSAGE)
        await client.views_open(trigger_id=shortcut["trigger_id"], view=view)

    @app.view(blocks.EDIT_MODAL_ID)
    async def edit_submitted(ack, body, view):
        values = view["state"]["values"]
        text = (values.get("instruction", {}).get("instruction", {}).get("value") or "").strip()
        selected = values.get("model", {}).get("model", {}).get("selected_option") or {}
        target = ShortcutTarget.model_validate(json.loads(view["private_metadata"]))
        try:
            await studio.edit_from_shortcut(
                team_id=body["team"]["id"], user_id=body["user"]["id"], target=target, text=text,
                model=selected.get("value"), dedupe_key=f"view:{view['id']}")
        except PromptError as exc:
            await ack(response_action="errors", errors={"instruction": str(exc)})
            return
        await ack()

    @app.event("reaction_added")
    async def reaction_added(event):
        await _vote(event, on=True)

    @app.event("reaction_removed")
    async def reaction_removed(event):
        await _vote(event, on=False)

    async def _vote(event: dict, *, on: bool) -> None:
        item = event.get("item") or {}
        if item.get("type") == "message" and event.get("user"):
            await studio.sessions.vote(channel_id=item["channel"], ts=item["ts"], user_id=event["user"],
                                       reaction=event.get("reaction", ""), on=on)

    for name in QUIET_EVENTS:
        app.event(name)(_ignore)


async def _ignore() -> None:
    return None


async def _is_admin(client, user_id: str) -> bool:
    """A workspace admin or owner (users.info); False when Slack cannot say."""
    try:
        user = (await client.users_info(user=user_id))["user"]
    except Exception as exc:
        log.warning("users.info failed: %s", exc)
        return False
    return bool(user.get("is_admin") or user.get("is_owner") or user.get("is_primary_owner"))


async def _say(client, msg: Message, reply: Reply) -> None:
    try:
        if reply.where == "thread":
            await client.chat_postMessage(channel=msg.channel_id, thread_ts=reply.thread_ts, text=reply.text)
        else:
            await client.chat_postEphemeral(channel=msg.channel_id, user=msg.user_id, text=reply.text,
                                            thread_ts=reply.thread_ts)
    except Exception as exc:  # a reply is best effort
        log.warning("reply failed: %s", exc, extra={"channel": msg.channel_id})
