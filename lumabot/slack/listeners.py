"""Bolt listeners: parse what Slack sent (payloads.py), hand it to intake, ack in milliseconds.

No business logic and no SQL here: what a request means is decided in `intake.py`, validation in
the job domain, persistence in the store, everything after the ack in the runner. Listeners
run before the ack (process_before_response), so a job is recorded durably before Slack hears
back; every Web API call (replies, modals, deletions) runs after the ack, so Slack's 3 seconds
hold however slow its Web API is.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any, Awaitable, Callable

from slack_bolt.async_app import AsyncApp
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError

from ..admin import AdminCommands
from ..intake import NO_IMAGE_IN_MESSAGE, TRY_AGAIN, Intake, Message, Reply, ShortcutTarget
from ..jobs.flags import PromptError
from ..jobs.text import clip
from ..store import StoreUnavailable
from . import blocks
from .admins import Admins
from .ingress import payload_kind
from .notifier import SlackNotifier
from .payloads import installing_team, parse_message, slack_file
from .text import command_words, typed_text

log = logging.getLogger(__name__)

# Events the manifest subscribes to that no feature handles yet: acked, nothing else.
QUIET_EVENTS = ("app_uninstalled", "tokens_revoked")
TRIGGER_EXPIRED = ("Slack took too long to hand lumabot this request, so the form could not open "
                   "(Slack allows 3 seconds). Please try again.")


def register(app: AsyncApp, intake: Intake, slack: SlackNotifier, admins: Admins,
             admin: AdminCommands) -> None:
    """Attach every listener to `app`: requests go to `intake` (and `/luma admin` to `admin`);
    `slack` says who lumabot is in Slack (bot user, workspace, links)."""
    background: set[asyncio.Task] = set()

    def later(coro: Awaitable[Any]) -> None:
        """Run Slack I/O after the ack."""
        task = asyncio.ensure_future(coro)
        background.add(task)
        task.add_done_callback(background.discard)
        task.add_done_callback(_log_failure)

    def team(body: dict) -> str:
        return installing_team(body, slack.team_id or "")

    async def answer(ack, text: str | None) -> None:
        if text:
            await ack(response_type="ephemeral", text=clip(text))
        else:
            await ack()

    async def open_modal(client, trigger_id: str, view: dict, respond) -> None:
        """views.open; an expired trigger (Slack was slow to deliver) gets an explanation."""
        try:
            await client.views_open(trigger_id=trigger_id, view=view)
        except SlackApiError as exc:
            error = exc.response.get("error")
            log.warning("views.open failed: %s", error)
            if error in ("expired_trigger_id", "invalid_trigger_id", "exchanged_trigger_id"):
                await respond(text=TRIGGER_EXPIRED, response_type="ephemeral", replace_original=False)

    @app.command("/imagine")
    async def imagine(ack, command, body, client, respond):
        text = typed_text(command.get("text")).strip()
        try:
            if text:
                await intake.in_time(lambda: intake.imagine(
                    team_id=team(body), user_id=command["user_id"], channel_id=command["channel_id"],
                    text=text, response_url=command.get("response_url")))
            else:  # the form, where lumabot works
                await intake.in_time(lambda: intake.check_place(team(body), command["channel_id"]))
        except PromptError as exc:
            await answer(ack, str(exc))
            return
        except StoreUnavailable:
            await answer(ack, TRY_AGAIN)
            return
        await ack()
        if not text:
            meta = json.dumps({"channel_id": command["channel_id"], "response_url": command.get("response_url")})
            later(open_modal(client, command["trigger_id"], blocks.imagine_modal(meta), respond))

    @app.command("/edit")
    async def edit(ack, command, body):
        text: str | None
        try:
            text = await intake.in_time(lambda: intake.edit_command(
                team_id=team(body), user_id=command["user_id"], channel_id=command["channel_id"],
                text=typed_text(command.get("text")), response_url=command.get("response_url")))
        except PromptError as exc:
            text = str(exc)
        except StoreUnavailable:
            text = TRY_AGAIN
        await answer(ack, text)

    @app.command("/luma")
    async def luma(ack, command, body, respond):
        words = typed_text(command.get("text")).split()
        verb = words[0].lower() if words else ""
        text: str | None

        async def answer_of() -> str | None:
            if verb == "admin":
                reply = await admin.run(team(body), command["user_id"], command_words(command.get("text"))[1:])
                if reply.later is not None:
                    later(_answer_later(reply.later, respond))
                return reply.text
            if verb == "usage":
                return await intake.usage(team(body), command["user_id"])
            if verb == "session":
                answer_ = await intake.session_command(team_id=team(body), user_id=command["user_id"],
                                                       channel_id=command["channel_id"], args=words[1:])
                return blocks.session_answer(answer_, slack.team_url) if answer_ is not None else None
            return blocks.full_help(await intake.limits_text(team(body)))

        try:
            text = await intake.in_time(answer_of)
        except PromptError as exc:
            text = str(exc)
        except StoreUnavailable:
            text = TRY_AGAIN
        await answer(ack, text)

    async def _answer_later(work: Callable[[], Awaitable[str]], respond) -> None:
        """Admin work that outlasts the ack (a sweep, an export); its outcome, privately."""
        try:
            text = await work()
        except StoreUnavailable:
            text = TRY_AGAIN
        await respond(text=clip(text), response_type="ephemeral", replace_original=False)

    @app.view(blocks.IMAGINE_MODAL_ID)
    async def imagine_submitted(ack, body, view):
        values = view["state"]["values"]

        def chosen(block: str) -> str | None:
            option = values.get(block, {}).get(block, {}).get("selected_option") or {}
            return option.get("value")

        meta = json.loads(view.get("private_metadata") or "{}")
        try:
            await intake.in_time(lambda: intake.imagine_from_form(
                team_id=team(body), user_id=body["user"]["id"], channel_id=meta["channel_id"],
                prompt=values.get("prompt", {}).get("prompt", {}).get("value") or "",
                aspect_ratio=chosen("aspect_ratio"), model=chosen("model"), output_format=chosen("format"),
                refs=[slack_file(f) for f in values.get("refs", {}).get("refs", {}).get("files") or []
                      if f.get("id")],
                response_url=meta.get("response_url"), dedupe_key=f"view:{view['id']}"))
        except PromptError as exc:
            await ack(response_action="errors", errors={exc.field: str(exc)})
            return
        except StoreUnavailable:
            await ack(response_action="errors", errors={"prompt": TRY_AGAIN})
            return
        await ack()

    @app.action(re.compile(f"^({'|'.join(blocks.RESULT_ACTIONS)})$"))
    async def result_button(ack, body, action, client, respond):
        await ack()
        kind, job_id, user_id = action["action_id"], action.get("value") or "", body["user"]["id"]

        async def tell(text: str | None) -> None:
            if text:
                await respond(text=text, response_type="ephemeral", replace_original=False)

        if kind == "edit":
            later(_edit_button(client, respond, job_id, body["trigger_id"]))
        elif kind == "delete":
            later(_delete_button(client, tell, job_id, user_id))
        else:
            try:
                text = await intake.in_time(lambda: intake.rerun(
                    job_id, team_id=team(body), user_id=user_id, max_model=kind == "max",
                    action_key=f"action:{kind}:{job_id}:{user_id}"))
            except StoreUnavailable:
                text = TRY_AGAIN
            later(tell(text))

    @app.action(blocks.CANCEL_ACTION)
    async def cancel_button(ack, body, action, client, respond):
        await ack()
        user_id = body["user"]["id"]

        async def cancel() -> None:
            try:
                text = await intake.cancel(action.get("value") or "", user_id=user_id,
                                           is_admin=await admins.is_admin(user_id))
            except StoreUnavailable:
                text = TRY_AGAIN
            if text:
                await respond(text=text, response_type="ephemeral", replace_original=False)
        later(cancel())

    async def _edit_button(client, respond, job_id: str, trigger_id: str) -> None:
        target = await intake.result_target(job_id)
        if target is None:
            await respond(text="That image can no longer be edited.", response_type="ephemeral",
                          replace_original=False)
            return
        await open_modal(client, trigger_id, blocks.edit_modal(target.model_dump_json(exclude_none=True)),
                         respond)

    async def _delete_button(client, tell: Callable[[str | None], Awaitable[None]], job_id: str,
                             user_id: str) -> None:
        await tell(await intake.delete(job_id, user_id=user_id, is_admin=await admins.is_admin(user_id)))

    @app.event("app_home_opened")
    async def home(event, body, client):
        if event.get("tab", "home") != "home":
            return
        later(_publish_home(client, team(body), event["user"]))

    async def _publish_home(client, team_id: str, user_id: str) -> None:
        """App Home: the person's images and limits; for admins, the admin section too."""
        jobs, usage = await intake.home(team_id, user_id)
        links = {j.id: link for j in jobs
                 if (link := blocks.permalink(slack.team_url, j.channel_id, j.status_ts, j.thread_ts))}
        section = await admin.reports.home_section(team_id) if await admins.is_admin(user_id) else None
        await client.views_publish(user_id=user_id, view=blocks.home_view(jobs, links, usage, admin=section))

    async def on_message_event(event: dict, body: dict, client, *, mention: bool) -> None:
        msg = parse_message(event, body, bot_user_id=slack.bot_user_id, team_id=team(body))
        if msg is None:
            return
        try:
            reply = await intake.in_time(lambda: intake.on_mention(msg) if mention else intake.on_message(msg))
        except StoreUnavailable:
            reply = Reply(TRY_AGAIN, thread_ts=msg.thread_ts)
        if reply:
            later(_say(client, msg, reply))

    @app.event("app_mention")
    async def mention(event, body, client):
        await on_message_event(event, body, client, mention=True)

    @app.event("message")
    async def message(event, body, client):
        await on_message_event(event, body, client, mention=False)

    @app.shortcut("edit_image")
    async def edit_shortcut(ack, shortcut, body, client, respond):
        await ack()
        message = shortcut.get("message") or {}
        try:
            target = await intake.in_time(lambda: intake.shortcut_target(
                team(body), shortcut["channel"]["id"], message.get("thread_ts") or message.get("ts") or "",
                [slack_file(f) for f in message.get("files") or [] if f.get("id")],
                response_url=shortcut.get("response_url")))
        except PromptError as exc:  # lumabot is not enabled in that channel
            later(open_modal(client, shortcut["trigger_id"], blocks.no_image_modal(str(exc)), respond))
            return
        view = blocks.edit_modal(target.model_dump_json(exclude_none=True)) if target else blocks.no_image_modal(NO_IMAGE_IN_MESSAGE)
        later(open_modal(client, shortcut["trigger_id"], view, respond))

    @app.view(blocks.EDIT_MODAL_ID)
    async def edit_submitted(ack, body, view):
        values = view["state"]["values"]
        text = (values.get("instruction", {}).get("instruction", {}).get("value") or "").strip()
        selected = values.get("model", {}).get("model", {}).get("selected_option") or {}
        target = ShortcutTarget.model_validate(json.loads(view["private_metadata"]))
        try:
            await intake.in_time(lambda: intake.edit_from_shortcut(
                team_id=team(body), user_id=body["user"]["id"], target=target, text=text,
                model=selected.get("value"), dedupe_key=f"view:{view['id']}"))
        except PromptError as exc:
            await ack(response_action="errors", errors={"instruction": str(exc)})
            return
        except StoreUnavailable:
            await ack(response_action="errors", errors={"instruction": TRY_AGAIN})
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
            await intake.in_time(lambda: intake.sessions.vote(
                channel_id=item["channel"], ts=item["ts"], user_id=event["user"],
                reaction=event.get("reaction", ""), on=on))

    for name in QUIET_EVENTS:
        app.event(name)(_ignore)

    app.error(_on_error)


async def _on_error(error: Exception, request: Any) -> BoltResponse:
    """What every listener shares when it fails: one short warning line (no traceback, no
    payload), and the acknowledgement Slack expects, so Slack does not retry a request lumabot
    cannot use. A slash command whose database is unavailable is told to try again. (It
    takes the request, not `body`: Bolt builds the other arguments from the payload, and that
    can be what failed.)"""
    body = getattr(request, "body", None)
    kind = payload_kind(body)
    if isinstance(error, StoreUnavailable):
        log.warning("database unavailable while handling a %s: %s", kind, clip(str(error), 120))
        if isinstance(body, dict) and body.get("command"):
            return BoltResponse(status=200, body=json.dumps({"response_type": "ephemeral", "text": TRY_AGAIN}),
                                headers={"content-type": "application/json"})
    else:
        log.warning("could not handle a %s: %s: %s", kind, type(error).__name__, clip(str(error), 120))
    return BoltResponse(status=200, body="")


def _log_failure(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("work after the ack failed: %s", task.exception())


async def _ignore() -> None:
    return None


async def _say(client, msg: Message, reply: Reply) -> None:
    text = clip(reply.text)
    try:
        if reply.where == "thread":
            await client.chat_postMessage(channel=msg.channel_id, thread_ts=reply.thread_ts, text=text)
        else:
            await client.chat_postEphemeral(channel=msg.channel_id, user=msg.user_id, text=text,
                                            thread_ts=reply.thread_ts)
    except Exception as exc:  # a reply is best effort
        log.warning("reply failed: %s", exc, extra={"channel": msg.channel_id})
