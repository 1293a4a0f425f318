"""Bolt listeners: parse what Slack sent (payloads.py), hand it to intake, ack in milliseconds.

Every listener is a function of its own, registered from one table (`LISTENERS`: what Slack
sends -> which function). What they share lives in one place each:

- their dependencies come in Bolt's context (`context["lumabot"]`, set by one middleware);
- work that must be done before the ack is bounded by the ack budget (`Intake.in_time`);
- Slack Web API calls run after the ack (`later`), so Slack's 3 seconds hold however slow its
  Web API is; a database that fails there is told to the person the same way;
- what goes wrong is answered by one error handler (`on_error`): bad input (PromptError) and a
  database that cannot record the request (StoreUnavailable) get the answer each kind of
  request expects (an ephemeral text, errors on a form's field, a reply in the thread), and
  anything else one short log line and the acknowledgement Slack expects.

No business logic and no SQL here: what a request means is decided in `intake.py`, validation in
the job domain, persistence in the store, everything after the ack in the runner. Listeners
run before the ack (process_before_response), so a job is recorded durably before Slack hears
back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from slack_bolt.async_app import AsyncApp
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError

from ..admin import AdminCommands
from ..admin.commands import LUMA_KEY_FORM
from ..intake import NO_IMAGE_IN_MESSAGE, TRY_AGAIN, Intake, Message, Reply, ShortcutTarget
from ..jobs.admission import NeedsConfirmation
from ..jobs.flags import PromptError
from ..jobs.text import clip, escape_mrkdwn
from ..presets import PresetForm, describe
from ..store import StoreUnavailable
from . import blocks
from .admins import Admins
from .ingress import payload_kind
from .notifier import SlackNotifier
from .payloads import installing_team, parse_message, slack_file
from .studio import studio
from .text import command_words, typed_text

log = logging.getLogger(__name__)

TRIGGER_EXPIRED = ("Slack took too long to hand lumabot this request, so the form could not open "
                   "(Slack allows 3 seconds). Please try again.")


@dataclass
class Lumabot:
    """What the listeners work with (Bolt's `context["lumabot"]`)."""

    intake: Intake
    slack: SlackNotifier   # Slack for jobs and sessions: links into each workspace
    admins: Admins
    admin: AdminCommands
    home_team: Callable[[], str] = lambda: ""   # single-token mode: the token's workspace
    # lumabot was uninstalled from a workspace (its team id, enterprise id, org-wide?, the event)
    uninstalled: Callable[[str, str | None, bool, dict[str, Any]], Awaitable[None]] | None = None
    # OAuth mode: a request from a workspace (team id, Enterprise Grid organisation)
    seen: Callable[[str, str | None], Awaitable[None]] | None = None
    # Answers name the workspace they are about (OAuth mode: a person may be in several)
    names_workspace: bool = False

    async def workspace_name(self, team_id: str) -> str | None:
        return await self.slack.team_name(team_id) if self.names_workspace else None

    def team(self, body: dict[str, Any]) -> str:
        """The workspace that installed lumabot (its limits apply, whoever asks)."""
        return installing_team(body, self.home_team())


# -- work after the ack ------------------------------------------------------------------------
_background: set[asyncio.Task[Any]] = set()


def later(work: Awaitable[Any], respond: Any = None) -> None:
    """Run Slack I/O (or work that outlasts the ack) after the ack. With `respond`, a database
    that cannot do it is told to the person, privately."""
    async def run() -> None:
        try:
            await work
        except StoreUnavailable:
            if respond is None:
                raise
            await tell(respond, TRY_AGAIN)

    task = asyncio.ensure_future(run())
    _background.add(task)
    task.add_done_callback(_background.discard)
    task.add_done_callback(_log_failure)


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("work after the ack failed: %s", task.exception())


async def tell(respond: Any, text: str | None) -> None:
    """A private answer through the request's response_url."""
    if text:
        await respond(text=clip(text), response_type="ephemeral", replace_original=False)


async def answer(ack: Any, text: str | None) -> None:
    """The ack, with a private answer when there is one."""
    if text:
        await ack(response_type="ephemeral", text=clip(text))
    else:
        await ack()


async def open_modal(client: Any, trigger_id: str, view: dict[str, Any], respond: Any) -> None:
    """views.open; an expired trigger (Slack was slow to deliver) gets an explanation."""
    try:
        await client.views_open(trigger_id=trigger_id, view=view)
    except SlackApiError as exc:
        error = exc.response.get("error")
        log.warning("views.open failed: %s", error)
        if error in ("expired_trigger_id", "invalid_trigger_id", "exchanged_trigger_id"):
            await tell(respond, TRIGGER_EXPIRED)


# -- slash commands ------------------------------------------------------------------------------
async def imagine(ack: Any, command: dict[str, Any], body: dict[str, Any], client: Any, respond: Any,
                  context: Any) -> None:
    lb: Lumabot = context["lumabot"]
    text = typed_text(command.get("text")).strip()
    if text:
        await answer(ack, await lb.intake.in_time(lambda: lb.intake.imagine(
            team_id=lb.team(body), user_id=command["user_id"], channel_id=command["channel_id"],
            text=text, response_url=command.get("response_url"))))
        return
    rules = await lb.intake.in_time(lambda: lb.intake.check_place(lb.team(body), command["channel_id"]))
    await ack()  # the form, where lumabot works
    meta = json.dumps({"channel_id": command["channel_id"], "response_url": command.get("response_url")})

    async def form() -> None:
        presets = [p.name for p in await lb.intake.presets.usable(lb.team(body), command["user_id"])]
        await open_modal(client, command["trigger_id"],
                         blocks.imagine_modal(meta, per_request=rules.per_request, presets=presets), respond)
    later(form(), respond)


async def edit(ack: Any, command: dict[str, Any], body: dict[str, Any], context: Any) -> None:
    lb: Lumabot = context["lumabot"]
    await answer(ack, await lb.intake.in_time(lambda: lb.intake.edit_command(
        team_id=lb.team(body), user_id=command["user_id"], channel_id=command["channel_id"],
        text=typed_text(command.get("text")), response_url=command.get("response_url"))))


async def luma(ack: Any, command: dict[str, Any], body: dict[str, Any], client: Any, respond: Any,
               context: Any) -> None:
    """`/luma admin|usage|session|preset|help`."""
    lb: Lumabot = context["lumabot"]
    words = typed_text(command.get("text")).split()
    verb = words[0].lower() if words else ""
    if verb == "preset" and len(words) == 1:  # the preset form
        await ack()
        meta = json.dumps({"channel_id": command["channel_id"]})
        later(open_modal(client, command["trigger_id"], blocks.preset_modal(meta), respond))
        return

    async def answer_of() -> str | None:
        if verb == "preset":
            return await lb.intake.presets.command(team_id=lb.team(body), user_id=command["user_id"],
                                            channel_id=command["channel_id"], args=words[1:])
        if verb == "admin":
            reply = await lb.admin.run(lb.team(body), command["user_id"], command_words(command.get("text"))[1:])
            if reply.form == LUMA_KEY_FORM:  # a private form: the key is never typed into a channel
                later(open_modal(client, command["trigger_id"], blocks.luma_key_modal(reply.text), respond), respond)
                return None
            if reply.later is not None:
                work = reply.later
                later(_answer_later(work, respond), respond)
            return reply.text
        if verb == "usage":
            text = await lb.intake.usage(lb.team(body), command["user_id"])
            name = await lb.workspace_name(lb.team(body))
            return f"In *{escape_mrkdwn(name)}*:\n{text}" if name else text
        if verb == "session":
            answer_ = await lb.intake.session_command(team_id=lb.team(body), user_id=command["user_id"],
                                                      channel_id=command["channel_id"], args=words[1:])
            return (blocks.session_answer(answer_, await lb.slack.team_url(lb.team(body)))
                    if answer_ is not None else None)
        return blocks.full_help(await lb.intake.limits_text(lb.team(body)))

    await answer(ack, await lb.intake.in_time(answer_of))


async def _answer_later(work: Callable[[], Awaitable[str]], respond: Any) -> None:
    """Admin work that outlasts the ack (a sweep, an export); its outcome, privately."""
    await tell(respond, await work())


# -- forms ---------------------------------------------------------------------------------------
async def imagine_submitted(ack: Any, body: dict[str, Any], view: dict[str, Any], context: Any) -> None:
    lb: Lumabot = context["lumabot"]
    values = view["state"]["values"]

    def chosen(block: str) -> str | None:
        option = values.get(block, {}).get(block, {}).get("selected_option") or {}
        return option.get("value")

    meta = json.loads(view.get("private_metadata") or "{}")
    await lb.intake.in_time(lambda: lb.intake.imagine_from_form(
        team_id=lb.team(body), user_id=body["user"]["id"], channel_id=meta["channel_id"],
        prompt=values.get("prompt", {}).get("prompt", {}).get("value") or "",
        aspect_ratio=chosen("aspect_ratio"), model=chosen("model"), output_format=chosen("format"),
        refs=[slack_file(f) for f in values.get("refs", {}).get("refs", {}).get("files") or [] if f.get("id")],
        response_url=meta.get("response_url"), dedupe_key=f"view:{view['id']}",
        n=int(chosen("n") or 1), preset=chosen("preset")))
    await ack()


async def preset_submitted(ack: Any, body: dict[str, Any], view: dict[str, Any], context: Any) -> None:
    """The preset form: checked before the ack (errors on their fields); its reference images
    are downloaded after it, and the person told in their DM with lumabot."""
    lb: Lumabot = context["lumabot"]
    values = view["state"]["values"]

    def text(block: str) -> str:
        return values.get(block, {}).get(block, {}).get("value") or ""

    scope = (values.get("scope", {}).get("scope", {}).get("selected_option") or {}).get("value")
    form = PresetForm(name=text("name"), flags=text("flags"), style=text("style"), workspace=scope == "workspace",
                      refs=[slack_file(f) for f in values.get("refs", {}).get("refs", {}).get("files") or []
                            if f.get("id")])
    team_id, user_id = lb.team(body), body["user"]["id"]
    await lb.intake.in_time(lambda: lb.intake.presets.check(team_id, user_id, form))
    await ack()

    async def save() -> None:
        try:
            told = await lb.intake.presets.save(team_id, user_id, form)
        except PromptError as exc:
            told = str(exc)
        await lb.slack.send_dm(team_id, user_id, told)
    later(save())


async def edit_submitted(ack: Any, body: dict[str, Any], view: dict[str, Any], context: Any) -> None:
    lb: Lumabot = context["lumabot"]
    values = view["state"]["values"]
    text = (values.get("instruction", {}).get("instruction", {}).get("value") or "").strip()
    selected = values.get("model", {}).get("model", {}).get("selected_option") or {}
    target = ShortcutTarget.model_validate(json.loads(view["private_metadata"]))
    await lb.intake.in_time(lambda: lb.intake.edit_from_shortcut(
        team_id=lb.team(body), user_id=body["user"]["id"], target=target, text=text,
        model=selected.get("value"), dedupe_key=f"view:{view['id']}"))
    await ack()


async def luma_key_submitted(ack: Any, body: dict[str, Any], view: dict[str, Any], context: Any) -> None:
    """The workspace's own Luma key: checked with Luma and saved before the ack (a refusal is
    shown on the field); the admin is told in their DM with lumabot."""
    lb: Lumabot = context["lumabot"]
    key = view["state"]["values"].get("key", {}).get("key", {}).get("value") or ""
    team_id, user_id = lb.team(body), body["user"]["id"]
    told = await lb.intake.in_time(lambda: lb.admin.set_luma_key(team_id, user_id, key))
    await ack()
    later(lb.slack.send_dm(team_id, user_id, told))


# -- buttons -------------------------------------------------------------------------------------
async def result_button(ack: Any, body: dict[str, Any], action: dict[str, Any], client: Any, respond: Any,
                        context: Any) -> None:
    """Reroll, Vary, Edit, uni-1-max, Info and Delete under an image."""
    lb: Lumabot = context["lumabot"]
    await ack()
    kind, job_id, user_id = action["action_id"], action.get("value") or "", body["user"]["id"]
    if kind == "edit":
        later(_edit_button(lb, client, respond, lb.team(body), job_id, body["trigger_id"]), respond)
    elif kind == "info":
        later(_info_button(lb, respond, lb.team(body), job_id), respond)
    elif kind == "delete":
        later(_delete_button(lb, respond, job_id, lb.team(body), user_id), respond)
    else:
        how: Any = kind
        try:
            text = await lb.intake.in_time(lambda: lb.intake.rerun(
                job_id, team_id=lb.team(body), user_id=user_id, how=how,
                action_key=f"action:{kind}:{job_id}:{user_id}"))
        except NeedsConfirmation as preview:
            later(respond(text=clip(str(preview)), blocks=blocks.confirm_blocks(preview),
                          response_type="ephemeral", replace_original=False))
            return
        later(tell(respond, text))


async def _edit_button(lb: Lumabot, client: Any, respond: Any, team_id: str, job_id: str, trigger_id: str) -> None:
    target = await lb.intake.result_target(team_id, job_id)
    if target is None:
        await tell(respond, "That image can no longer be edited.")
        return
    await open_modal(client, trigger_id, blocks.edit_modal(target.model_dump_json(exclude_none=True)), respond)


async def _info_button(lb: Lumabot, respond: Any, team_id: str, job_id: str) -> None:
    """How the image was made, to the clicker only."""
    info = await lb.intake.provenance(team_id, job_id)
    if info is None:
        await tell(respond, "That image is no longer known to lumabot.")
        return
    job, parent = info
    team_url = await lb.slack.team_url(team_id)
    parent_link = None
    if job.origin.parent_job_id or job.origin.parent_ts:
        ts = job.origin.parent_ts or (parent.actions_ts or parent.status_ts if parent else None)
        parent_link = blocks.permalink(team_url, job.channel_id, ts, job.root_ts)
    await respond(response_type="ephemeral", replace_original=False, text=blocks.provenance_text(job),
                  blocks=blocks.provenance_blocks(job, parent_link=parent_link))


async def _delete_button(lb: Lumabot, respond: Any, job_id: str, team_id: str, user_id: str) -> None:
    await tell(respond, await lb.intake.delete(job_id, team_id=team_id, user_id=user_id,
                                               is_admin=await lb.admins.is_admin(team_id, user_id)))


async def share_button(ack: Any, body: dict[str, Any], action: dict[str, Any], respond: Any, context: Any) -> None:
    """*Share* (to the channel it was asked in) or a channel picked, under an image made in private."""
    lb: Lumabot = context["lumabot"]
    await ack()
    if action["action_id"] == blocks.SHARE_ACTION:
        job_id, _, channel_id = (action.get("value") or "").partition(":")
    else:
        job_id, channel_id = (action.get("block_id") or "").partition(":")[2], action.get("selected_conversation") or ""
    if not job_id or not channel_id:
        return
    text = await lb.intake.in_time(lambda: lb.intake.share(
        job_id, team_id=lb.team(body), user_id=body["user"]["id"], channel_id=channel_id,
        response_url=body.get("response_url")))
    later(tell(respond, text))


async def confirm_button(ack: Any, body: dict[str, Any], action: dict[str, Any], respond: Any, context: Any) -> None:
    """*Make it* / *Cancel* under a cost preview: the preview is replaced by what happened."""
    lb: Lumabot = context["lumabot"]
    await ack()
    team_id, user_id, request_id = lb.team(body), body["user"]["id"], action.get("value") or ""
    if action["action_id"] == blocks.DROP_ACTION:
        text: str | None = await lb.intake.in_time(lambda: lb.intake.cancel_held(
            request_id, team_id=team_id, user_id=user_id))
    else:
        try:
            text = await lb.intake.in_time(lambda: lb.intake.confirm(
                request_id, team_id=team_id, user_id=user_id, action_key=f"action:confirm:{request_id}:{user_id}"))
        except PromptError as exc:
            text = str(exc)
    later(respond(text=clip(text or "Making it: the images will land in the thread."), response_type="ephemeral",
                  replace_original=True))


async def confirm_submitted(ack: Any, body: dict[str, Any], view: dict[str, Any], context: Any) -> None:
    """*Make it* on the cost preview that replaced a form."""
    lb: Lumabot = context["lumabot"]
    user_id, request_id = body["user"]["id"], view.get("private_metadata") or ""
    try:
        text = await lb.intake.in_time(lambda: lb.intake.confirm(
            request_id, team_id=lb.team(body), user_id=user_id, action_key=f"action:confirm:{request_id}:{user_id}"))
    except PromptError as exc:
        text = str(exc)
    if text:
        await ack(response_action="update", view=blocks.notice_modal("Nothing was made", text))
    else:
        await ack()


async def cancel_button(ack: Any, body: dict[str, Any], action: dict[str, Any], respond: Any, context: Any) -> None:
    lb: Lumabot = context["lumabot"]
    await ack()
    team_id, user_id = lb.team(body), body["user"]["id"]

    async def cancel() -> None:
        await tell(respond, await lb.intake.cancel(action.get("value") or "", team_id=team_id, user_id=user_id,
                                                   is_admin=await lb.admins.is_admin(team_id, user_id)))
    later(cancel(), respond)


# -- the shortcut --------------------------------------------------------------------------------
async def edit_shortcut(ack: Any, shortcut: dict[str, Any], body: dict[str, Any], client: Any, respond: Any,
                        context: Any) -> None:
    lb: Lumabot = context["lumabot"]
    await ack()
    message = shortcut.get("message") or {}
    try:
        target = await lb.intake.in_time(lambda: lb.intake.shortcut_target(
            lb.team(body), shortcut["channel"]["id"], message.get("thread_ts") or message.get("ts") or "",
            [slack_file(f) for f in message.get("files") or [] if f.get("id")],
            response_url=shortcut.get("response_url"), message_ts=message.get("ts")))
    except PromptError as exc:  # lumabot is not enabled in that channel: said in the form
        later(open_modal(client, shortcut["trigger_id"], blocks.no_image_modal(str(exc)), respond))
        return
    view = (blocks.edit_modal(target.model_dump_json(exclude_none=True)) if target
            else blocks.no_image_modal(NO_IMAGE_IN_MESSAGE))
    later(open_modal(client, shortcut["trigger_id"], view, respond))


# -- events --------------------------------------------------------------------------------------
async def home(event: dict[str, Any], body: dict[str, Any], client: Any, context: Any) -> None:
    lb: Lumabot = context["lumabot"]
    if event.get("tab", "home") == "home":
        later(_publish_home(lb, client, lb.team(body), event["user"]))


async def _publish_home(lb: Lumabot, client: Any, team_id: str, user_id: str) -> None:
    """App Home: the person's images and limits; for admins, the admin section too."""
    jobs, usage = await lb.intake.home(team_id, user_id)
    team_url = await lb.slack.team_url(team_id)
    links = {j.id: link for j in jobs
             if (link := blocks.permalink(team_url, j.channel_id, j.status_ts, j.thread_ts))}
    admin = await lb.admins.is_admin(team_id, user_id)
    section = await lb.admin.reports.home_section(team_id) if admin else None
    presets = [(p.name, describe(p), p.workspace) for p in await lb.intake.presets.usable(team_id, user_id)]
    await client.views_publish(user_id=user_id, view=blocks.home_view(
        jobs, links, usage, admin=section, workspace=await lb.workspace_name(team_id), presets=presets))


async def mention(event: dict[str, Any], body: dict[str, Any], client: Any, context: Any) -> None:
    await _message(event, body, client, context, mention=True)


async def message(event: dict[str, Any], body: dict[str, Any], client: Any, context: Any) -> None:
    await _message(event, body, client, context, mention=False)


async def _message(event: dict[str, Any], body: dict[str, Any], client: Any, context: Any, *, mention: bool) -> None:
    lb: Lumabot = context["lumabot"]
    bot_user_id = context.get("bot_user_id")   # who lumabot is in this workspace (Bolt's authorize)
    msg = parse_message(event, body, bot_user_id=bot_user_id, team_id=lb.team(body))
    if msg is None:
        return
    try:
        reply = await lb.intake.in_time(lambda: lb.intake.on_mention(msg) if mention else lb.intake.on_message(msg))
    except StoreUnavailable:
        reply = Reply(TRY_AGAIN, thread_ts=msg.thread_ts)
    if reply:
        later(_say(client, msg, reply))


async def _say(client: Any, msg: Message, reply: Reply) -> None:
    text = clip(reply.text)
    try:
        if reply.where == "thread":
            await client.chat_postMessage(channel=msg.channel_id, thread_ts=reply.thread_ts, text=text)
        else:
            await client.chat_postEphemeral(channel=msg.channel_id, user=msg.user_id, text=text,
                                            thread_ts=reply.thread_ts,
                                            blocks=blocks.confirm_blocks(reply.confirm) if reply.confirm else None)
    except Exception as exc:  # a reply is best effort
        log.warning("reply failed: %s", exc, extra={"channel": msg.channel_id})


async def reaction_added(event: dict[str, Any], body: dict[str, Any], context: Any) -> None:
    await _vote(context["lumabot"], event, body, on=True)


async def reaction_removed(event: dict[str, Any], body: dict[str, Any], context: Any) -> None:
    await _vote(context["lumabot"], event, body, on=False)


async def _vote(lb: Lumabot, event: dict[str, Any], body: dict[str, Any], *, on: bool) -> None:
    item = event.get("item") or {}
    if item.get("type") == "message" and event.get("user"):
        await lb.intake.in_time(lambda: lb.intake.sessions.vote(
            team_id=lb.team(body), channel_id=item["channel"], ts=item["ts"], user_id=event["user"],
            reaction=event.get("reaction", ""), on=on))


async def uninstalled(event: dict[str, Any], body: dict[str, Any], context: Any) -> None:
    """app_uninstalled / tokens_revoked: the workspace's tokens go, its waiting jobs are cancelled."""
    lb: Lumabot = context["lumabot"]
    if lb.uninstalled is not None:
        enterprise = context.get("enterprise_id") or body.get("enterprise_id")
        await lb.uninstalled(lb.team(body), enterprise, bool(context.get("is_enterprise_install")), event)


async def ignore() -> None:
    """Events the manifest subscribes to that no feature handles yet: acked, nothing else."""
    return None


# -- what Slack sends -> which listener ----------------------------------------------------------
LISTENERS: list[tuple[str, Any, Callable[..., Awaitable[None]]]] = [
    ("command", "/imagine", imagine),
    ("command", "/edit", edit),
    ("command", "/luma", luma),
    ("view", blocks.IMAGINE_MODAL_ID, imagine_submitted),
    ("view", blocks.EDIT_MODAL_ID, edit_submitted),
    ("view", blocks.PRESET_MODAL_ID, preset_submitted),
    ("view", blocks.LUMA_KEY_MODAL_ID, luma_key_submitted),
    ("action", re.compile(f"^({'|'.join(blocks.RESULT_ACTIONS)})$"), result_button),
    ("action", blocks.CANCEL_ACTION, cancel_button),
    ("action", re.compile(f"^({blocks.SHARE_ACTION}|{blocks.SHARE_PICK_ACTION})$"), share_button),
    ("action", re.compile(f"^({blocks.CONFIRM_ACTION}|{blocks.DROP_ACTION})$"), confirm_button),
    ("view", blocks.CONFIRM_MODAL_ID, confirm_submitted),
    ("shortcut", "edit_image", edit_shortcut),
    ("event", "app_home_opened", home),
    ("event", "app_mention", mention),
    ("event", "message", message),
    ("event", "reaction_added", reaction_added),
    ("event", "reaction_removed", reaction_removed),
    ("event", "app_uninstalled", uninstalled),
    ("event", "tokens_revoked", uninstalled),
]


def register(app: AsyncApp, lumabot: Lumabot) -> None:
    """Attach every listener of the table to `app`, with what they share."""
    async def provide(context: Any, body: dict[str, Any], next: Callable[[], Awaitable[None]]) -> None:
        context["lumabot"] = lumabot
        if lumabot.seen is not None and context.get("enterprise_id"):
            # On Enterprise Grid: remember the workspace's organisation (once), for its jobs.
            await lumabot.seen(lumabot.team(body), context.get("enterprise_id"))
        await next()

    app.middleware(provide)
    app.assistant(studio(lumabot, lumabot.intake.store))  # the private studio in Slack's AI split view
    for kind, key, listener in LISTENERS:
        getattr(app, kind)(key)(listener)
    app.error(on_error)


async def on_error(error: Exception, request: Any) -> BoltResponse:
    """What every listener shares when it fails (it takes the request, not `body`: Bolt builds the
    other arguments from the payload, and that can be what failed):

    - PromptError (bad input, where lumabot does not work): a command gets it as its private
      answer, a form on its field;
    - StoreUnavailable (the database cannot record it now): the same, "please try again";
    - anything else: one short warning line (no traceback, no payload) and the acknowledgement
      Slack expects, so Slack does not retry a request lumabot cannot use."""
    body = getattr(request, "body", None)
    kind = payload_kind(body)
    if isinstance(error, NeedsConfirmation) and isinstance(body, dict):
        if body.get("type") == "view_submission":   # the form becomes its cost preview
            return _json({"response_action": "update", "view": blocks.confirm_modal(error)})
        return _json({"response_type": "ephemeral", "text": clip(str(error)), "blocks": blocks.confirm_blocks(error)})
    if isinstance(error, (PromptError, StoreUnavailable)) and isinstance(body, dict):
        text = str(error) if isinstance(error, PromptError) else TRY_AGAIN
        if isinstance(error, StoreUnavailable):
            log.warning("database unavailable while handling a %s: %s", kind, clip(str(error), 120))
        if body.get("command"):
            return _json({"response_type": "ephemeral", "text": clip(text)})
        if body.get("type") == "view_submission":
            field = error.field if isinstance(error, PromptError) else "prompt"
            return _json({"response_action": "errors", "errors": {_input_block(body, field): text}})
    else:
        log.warning("could not handle a %s: %s: %s", kind, type(error).__name__, clip(str(error), 120))
    return BoltResponse(status=200, body="")


def _json(data: dict[str, Any]) -> BoltResponse:
    return BoltResponse(status=200, body=json.dumps(data), headers={"content-type": "application/json"})


def _input_block(body: dict[str, Any], field: str) -> str:
    """The form's input block an error is shown on: `field` if the form has it, else its first
    (the blocks the form's state holds values of)."""
    view = body.get("view")
    state = view.get("state") if isinstance(view, dict) else None
    values = state.get("values") if isinstance(state, dict) else None
    ids = list(values) if isinstance(values, dict) else []
    return field if field in ids or not ids else str(ids[0])
