"""Intake: what lumabot does with what people say. Messages, mentions, `/imagine`, `/edit`, the
form, the buttons and the "Edit with Luma" shortcut become jobs (admitted under the limits and
recorded by the runner), or a reply that explains why not.

Plain Python between the Slack listeners (which parse payloads into the dataclasses below and
carry out the replies) and the runner. Every paid action is keyed durably by the Slack
message it comes from, so event retries and the message + app_mention pair Slack sends for one
mention start at most one job.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Literal, TypeVar

from pydantic import BaseModel

from .jobs.flags import (
    EDIT_HINT,
    Flags,
    PromptError,
    build_params,
    edit_params,
    flag_sources,
    parse_prompt,
    variation_params,
    with_direction,
)
from .jobs.forgetting import with_style_direction
from .jobs.policy import Rules, is_dm
from .jobs.text import channel_ref
from .jobs.presets import InForce, check_refs
from .jobs.requests import first_combination, request_texts
from .presets import Presets
from .jobs.models import (MAX_EDIT_REFS, GenerationParams, ImageSource, Job, JobState, KnownImage, Origin, Session,
                          SlackFile, new_job_id)
from .admin import BudgetAlerts
from .jobs.admission import NeedsConfirmation, NotEnabled, not_enabled_text
from .quotas import Quotas
from .ports import AdminDirectory, DeliveryError, Notifier
from .runner import Runner
from .runner.deadline import ACK_BUDGET, before_ack
from .runner.retry import retry
from .sessions import SessionAnswer, Sessions
from .store import Store, StoreUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")

# How long a request may wait for the database before the person is asked to try again
# (Slack wants an answer within 3 s).
INTAKE_BUDGET = 2.5
TRY_AGAIN = ("lumabot could not record your request: its database is busy right now. Nothing "
             "was started or charged. Please try again in a moment.")

ASK_WHAT_TO_CHANGE = f"What should I change in this image? Reply in this thread with an instruction. {EDIT_HINT}"
NO_IMAGE_IN_THREAD = "There is no image in this thread yet: wait for it to arrive, then reply with what to change."
NO_IMAGE_IN_CHANNEL = (
    "There is no image to edit in this channel yet. Make one with `/imagine`, or edit an image by "
    "replying in its thread with what to change, or by mentioning @lumabot with the image attached."
)
EDIT_USAGE = (
    "*Edit the latest image in this channel:* `/edit <what to change> [flags]`, e.g. "
    "`/edit make it night --max`. The result goes into the image's thread.\n"
    "To edit another image, reply in its thread, mention @lumabot with it attached, or use the "
    "message shortcut *Edit with Luma*."
)
SESSION_FULL = ("This creative session has reached its {n} images; it ends when the last ones "
                "arrive. Start a new one with `/luma session start`.")
ONLY_REQUESTER = "Only the person who asked for this image (or a workspace admin) can delete it."
ONLY_REQUESTER_CANCEL = "Only the person who asked for this image (or a workspace admin) can cancel it."
NOT_WAITING = "That image is no longer waiting, so there is nothing to cancel."
ALREADY_SENT = ("Too late to cancel: the image has just been sent to Luma, which cannot cancel it. "
                "It will arrive in the thread.")
NO_MESSAGES_FOR_SESSIONS = (
    "Creative sessions need lumabot to read the messages of this channel, and this workspace installed "
    "it without that permission (the minimal scopes: no channels:history / groups:history). "
    "`/imagine`, `/edit`, mentions of @lumabot (in threads too) and the buttons work as usual; a "
    "workspace admin can reinstall lumabot from manifest.yml to turn sessions on.")
ACTION_WINDOW = 10.0  # seconds in which the same button by the same person counts once
SHARING_NOTE = "Sharing your image here…"
PRIVATE_NOTE = ("Making it privately in your direct messages with lumabot (the *Messages* tab). When you like "
                "it, *Share to {channel}* posts it here; nobody else sees it before.")
CONFIRM_WINDOW = 3600.0  # a request held for its cost may be confirmed this long
PREVIEW_GONE = "That request was made or cancelled already, or its preview expired (after an hour)."
NOTICE_WINDOW = 3600.0  # "not enabled here": at most once per person per channel in this many seconds

NO_IMAGE_IN_MESSAGE = (
    "This message has no image lumabot can edit. Use *Edit with Luma* on a message with an image, "
    "or reply in an image's thread with what to change."
)


# Who cancelled the jobs of a workspace that uninstalled lumabot.
UNINSTALLED = "uninstalled"


@dataclass
class Message:
    """A message someone posted, as intake needs it. `text` is what the person typed
    (Slack's encoding decoded, mentions of lumabot removed); `team_id` is the workspace that
    installed lumabot (whose limits apply), not necessarily the person's own."""

    team_id: str
    channel_id: str
    user_id: str
    ts: str
    text: str = ""
    thread_ts: str | None = None
    files: list[SlackFile] = field(default_factory=list)
    mentions_bot: bool = False      # the message mentions @lumabot
    is_dm: bool = False             # a direct message with lumabot (no app_mention there)
    edited: bool = False            # a correction of an earlier message (message_changed)

    @property
    def root(self) -> str:
        return self.thread_ts or self.ts

    @property
    def in_thread(self) -> bool:
        return self.thread_ts is not None and self.thread_ts != self.ts

    @property
    def images(self) -> list[SlackFile]:
        return [f for f in self.files if f.maybe_image]

    @property
    def key(self) -> str:
        """One job per Slack message, whatever Slack retries or the person edits."""
        return f"msg:{self.team_id}:{self.channel_id}:{self.ts}"

    @property
    def reply_key(self) -> str:
        """One reply per version of a message's text."""
        digest = hashlib.sha256(self.text.encode()).hexdigest()[:16]
        return f"reply:{self.team_id}:{self.channel_id}:{self.ts}:{digest}"


@dataclass
class Reply:
    """Something to tell the person: `ephemeral` (only them) or `thread` (in the message's thread)."""

    text: str
    where: Literal["ephemeral", "thread"] = "ephemeral"
    thread_ts: str | None = None
    confirm: NeedsConfirmation | None = None   # a cost preview: *Make it* / *Cancel* under the text


def preset_refs(force: InForce) -> list[ImageSource]:
    """The references the preset in force adds (read from the store when the job is sent)."""
    return [ImageSource(preset_ref=ref) for ref in force.refs]


def _refusal(exc: PromptError, thread_ts: str | None) -> Reply:
    """A private answer to a message whose request did not start (or waits for a confirmation)."""
    return Reply(str(exc), thread_ts=thread_ts, confirm=exc if isinstance(exc, NeedsConfirmation) else None)


class ShortcutTarget(BaseModel):
    """The image a shortcut was used on and the thread its edit goes to (kept in the modal)."""

    channel_id: str
    thread_ts: str
    source: ImageSource
    response_url: str | None = None
    message_ts: str | None = None       # the message that holds the image
    parent_job_id: str | None = None    # the lumabot job that made it


class Intake:
    def __init__(self, store: Store, runner: Runner, quotas: Quotas, sessions: Sessions,
                 notifier: Notifier, admins: AdminDirectory, alerts: BudgetAlerts, *, presets: Presets,
                 ack_budget: float = ACK_BUDGET):
        self.ack_budget = ack_budget
        self.store = store
        self.runner = runner
        self.quotas = quotas
        self.sessions = sessions
        self.notifier = notifier
        self.admins = admins
        self.alerts = alerts
        self.presets = presets

    async def in_time(self, work: Callable[[], Awaitable[T]]) -> T:
        """Work that must be done before the request is acknowledged: within the ack budget, or
        StoreUnavailable (the person is asked to try again, and a job recorded late is
        withdrawn, never started: runner/deadline.py)."""
        return await before_ack(work, self.ack_budget)

    async def check_place(self, team_id: str, channel_id: str) -> Rules:
        """Raise NotEnabled where the workspace's policy keeps lumabot from working (a channel
        outside the allow-list, or DMs when they are off). The store checks again, atomically,
        when it admits a job; this early check spares the person a form or a download. The
        rules in force, otherwise."""
        rules = await self.quotas.rules_in_force(team_id)
        if rules.place_refusal(channel_id) is not None:
            raise NotEnabled(not_enabled_text(channel_id, rules))
        return rules

    async def _start(self, jobs: Job | list[Job], dedupe_key: str | None = None, *, confirmed: bool = False) -> None:
        """Price the request's jobs (one, or the images of a batch) and hand them to the
        runner, which records them if the policy and the limits allow all of them (decided
        atomically by the store); raises LimitReached or NotEnabled, or StoreUnavailable when
        the database cannot record them within INTAKE_BUDGET seconds."""
        jobs = [jobs] if isinstance(jobs, Job) else jobs
        job = jobs[0]
        is_admin = None
        if any(j.params.model == "uni-1-max" for j in jobs):
            # Asked only when the policy keeps uni-1-max for admins (the store decides with
            # the policy it reads; a policy changed meanwhile counts the person as no admin).
            if (await self.quotas.rules_in_force(job.team_id)).max_model == "admins":
                is_admin = await self.admins.is_admin(job.team_id, job.user_id)
        rules = [self.quotas.admission(j, is_admin=is_admin) for j in jobs][0]
        total, threshold = sum(j.cost_usd for j in jobs), self.quotas.limits.confirm_above_usd
        if not confirmed and threshold is not None and total > threshold + 1e-9:
            request_id = new_job_id()
            if await self.store.pending.hold(request_id, jobs, dedupe_key=dedupe_key, keep=CONFIRM_WINDOW):
                raise NeedsConfirmation(request_id, jobs, total, threshold)
            return  # a retried Slack event: its preview went out already
        try:
            admission = await retry(lambda: self.runner.submit(jobs, dedupe_key=dedupe_key, rules=rules),
                                    transient=lambda e: isinstance(e, StoreUnavailable),
                                    backoff=0.1, until=time.monotonic() + INTAKE_BUDGET,
                                    clock=time.monotonic)
        except StoreUnavailable as exc:
            log.error("could not record a request: %s", exc, extra={"channel": job.channel_id})
            raise
        if admission.status != "duplicate":
            self.alerts.after(job, admission)
        if admission.status == "refused":
            raise self.quotas.refusal(admission, job, cost=sum(j.cost_usd for j in jobs))

    async def confirm(self, request_id: str, *, team_id: str, user_id: str, action_key: str) -> str | None:
        """Make a request held for its cost (its person clicked *Make it*), admitted now under
        the limits in force now; a double click makes it once. Raises LimitReached or
        NotEnabled; returns a message when there is nothing to make."""
        if not await self.store.keys.claim(action_key, window=ACTION_WINDOW):
            return None
        jobs = await self.store.pending.take(request_id, team_id=team_id, user_id=user_id, keep=CONFIRM_WINDOW)
        if jobs is None:
            return PREVIEW_GONE
        now = time.time()
        for job in jobs:
            job.created_at = now
        await self._start(jobs, f"confirm:{team_id}:{request_id}", confirmed=True)
        return None

    async def cancel_held(self, request_id: str, *, team_id: str, user_id: str) -> str:
        """*Cancel* on a cost preview: the held request is dropped."""
        jobs = await self.store.pending.take(request_id, team_id=team_id, user_id=user_id, keep=CONFIRM_WINDOW)
        return "Cancelled: nothing was made or counted." if jobs else PREVIEW_GONE

    @staticmethod
    def _request(jobs: list[Job], texts: list[str], force: InForce, *, typed: str, via: str,
                 parent_job_id: str | None = None, parent_ts: str | None = None,
                 share_to: str | None = None) -> list[Job]:
        """The jobs of one request (`texts`: each one's text, as expanded), with where they
        came from (`force`: what the defaults and presets gave) and, made in private, where they
        may be shared; several share the first one's id as their batch."""
        for i, (job, one) in enumerate(zip(jobs, texts)):
            job.origin = Origin(typed=typed, via=via, flags=flag_sources(one, **force.sources), preset=force.preset,
                                parent_job_id=parent_job_id, parent_ts=parent_ts, share_to=share_to)
            if len(jobs) > 1:
                job.batch_id, job.batch_index, job.batch_size = jobs[0].id, i, len(jobs)
        return jobs

    async def _plan(self, team_id: str, user_id: str, channel_id: str, text: str, *, rules: Rules | None = None,
                    session: Flags | None = None, form: Flags | None = None, edit: bool = False,
                    own_refs: int = 0) -> tuple[list[str], InForce]:
        """The text of each image a request makes, and what its presets and defaults put in
        force (PromptError for an unknown preset, too many references or images)."""
        rules = rules or await self.quotas.rules_in_force(team_id)
        typed = parse_prompt(first_combination(text))[1]
        force = await self.presets.in_force(team_id, user_id, channel_id, typed, rules, session=session, form=form)
        check_refs(own_refs, len(force.refs), edit=edit)
        return request_texts(text, limit=rules.per_request, defaults=force.defaults), force

    @staticmethod
    def _imagine_params(text: str, force: InForce, *, refs: list[ImageSource] | None = None,
                        theme: str | None = None) -> GenerationParams:
        prompt, typed = parse_prompt(text)
        prompt = with_direction(prompt, force.style)
        if theme:
            prompt = with_style_direction(prompt, theme) if prompt.strip() else prompt
        return build_params(prompt, typed, defaults=force.defaults, refs=(refs or []) + preset_refs(force))

    # -- /imagine and mentions -----------------------------------------------------------------
    async def imagine(self, *, team_id: str, user_id: str, channel_id: str, text: str,
                      response_url: str | None = None, thread_ts: str | None = None,
                      dedupe_key: str | None = None, via: str = "imagine",
                      share_to: str | None = None) -> str | None:
        """Start the text-to-image jobs of a request (`--n`, permutations: several); raises
        PromptError for bad input (NotEnabled where lumabot does not work). With `--private`
        outside a DM they are made in the person's DM with lumabot: what to tell them then."""
        rules = await self.check_place(team_id, channel_id)
        texts, force = await self._plan(team_id, user_id, channel_id, text, rules=rules)
        note = None
        if parse_prompt(first_combination(text))[1].private and not is_dm(channel_id):
            share_to, thread_ts = channel_id, None
            try:
                channel_id = await self.notifier.dm_channel(team_id, user_id)
            except DeliveryError:
                raise PromptError("lumabot could not open a direct message with you, so nothing was made. "
                                  "Try again without `--private`.") from None
            note = PRIVATE_NOTE.format(channel=channel_ref(share_to))
        jobs = [Job(team_id=team_id, user_id=user_id, channel_id=channel_id, thread_ts=thread_ts,
                    response_url=response_url, params=self._imagine_params(t, force)) for t in texts]
        await self._start(self._request(jobs, texts, force, typed=text, via=via, share_to=share_to), dedupe_key)
        return note

    async def on_mention(self, msg: Message) -> Reply | None:
        """`@lumabot ...`: edits an attached image, or the thread's image in a lumabot thread,
        otherwise works like /imagine; the result goes into the message's thread."""
        if (refused := await self._seen_where(msg)) is not None:
            return await self._not_enabled(msg, refused)
        text = msg.text.strip()
        if msg.images or (msg.in_thread and await self.store.images.is_lumabot_thread(msg.team_id, msg.channel_id,
                                                                                      msg.root)):
            return await self._edit_from_message(msg, text)
        if not text:
            return await self._once(msg, Reply(f"Tell me what to draw, e.g. `@lumabot a lighthouse at "
                                               f"dusk --ar 16:9`. {EDIT_USAGE}", thread_ts=msg.root))
        try:
            note = await self.imagine(team_id=msg.team_id, user_id=msg.user_id, channel_id=msg.channel_id,
                                      text=text, thread_ts=msg.root, dedupe_key=msg.key, via="mention")
        except PromptError as exc:
            return await self._once(msg, _refusal(exc, msg.root))
        return Reply(note, thread_ts=msg.thread_ts) if note else None

    # -- messages ------------------------------------------------------------------------------
    async def on_message(self, msg: Message) -> Reply | None:
        """Any message lumabot can see. Images are remembered (for `/edit`); a reply in a
        lumabot thread edits; in a DM with lumabot a top-level message is a prompt; everything
        else is ignored (no reply, no cost)."""
        if msg.mentions_bot and (msg.is_dm or msg.edited):
            # Slack sends no app_mention in DMs, nor for an edited message: this is the mention.
            return await self.on_mention(msg)
        await self._remember_images(msg)
        if msg.mentions_bot:
            return None  # the app_mention event handles it
        session = None
        if not msg.in_thread:
            if msg.is_dm:
                return await self.on_mention(msg)
            session = await self.sessions.running(msg.team_id, msg.channel_id)
            if session is None:
                return None
        elif not await self.store.images.is_lumabot_thread(msg.team_id, msg.channel_id, msg.root):
            return None
        try:
            await self.check_place(msg.team_id, msg.channel_id)
        except NotEnabled as exc:
            return await self._not_enabled(msg, exc)
        if session is not None:
            return await self._session_prompt(msg, session)
        return await self._edit_from_message(msg, msg.text.strip())

    async def _session_prompt(self, msg: Message, session: Session) -> Reply | None:
        """A top-level message during a creative session: a prompt (or an edit of the image it
        carries), with the session's flags as defaults and its theme as a style direction."""
        text = msg.text.strip()
        if msg.images:
            return await self._edit_from_message(msg, text, session=session)
        if not text:
            return None  # a file that is not an image, or nothing: not a prompt
        if await self.sessions.full(session):
            return await self._once(msg, Reply(SESSION_FULL.format(n=self.sessions.config.max_images),
                                               thread_ts=msg.ts))
        try:
            texts, force = await self._plan(msg.team_id, msg.user_id, msg.channel_id, text,
                                            session=Flags(**session.flags))
            await self.sessions.check_room(session, len(texts))
            jobs = [Job(team_id=msg.team_id, user_id=msg.user_id, channel_id=msg.channel_id, thread_ts=msg.ts,
                        params=self._imagine_params(one, force, theme=session.theme), session_id=session.id)
                    for one in texts]
            await self._start(self._request(jobs, texts, force, typed=text, via="session"), msg.key)
        except PromptError as exc:
            return await self._once(msg, _refusal(exc, msg.ts))
        await self.sessions.touch(session)
        return None

    async def on_studio_message(self, msg: Message, *, share_to: str | None) -> Reply | None:
        """A message in a thread of the private studio (Slack's AI split view): a prompt, as in
        a DM; with an image attached, an edit of it. Its images may be shared to `share_to`,
        the channel its person is looking at."""
        if (refused := await self._seen_where(msg)) is not None:
            return await self._not_enabled(msg, refused)
        text = msg.text.strip()
        if msg.images:
            return await self._edit_from_message(msg, text, share_to=share_to, via="studio")
        if not text:
            return None
        try:
            await self.imagine(team_id=msg.team_id, user_id=msg.user_id, channel_id=msg.channel_id, text=text,
                               thread_ts=msg.root, dedupe_key=msg.key, via="studio", share_to=share_to)
        except PromptError as exc:
            return await self._once(msg, _refusal(exc, msg.root))
        return None

    async def _edit_from_message(self, msg: Message, text: str, *, session: Session | None = None,
                                 share_to: str | None = None, via: str | None = None) -> Reply | None:
        session = session or await self.sessions.running(msg.team_id, msg.channel_id)
        images = msg.images
        refs: list[ImageSource] = []
        parent_ts: str | None
        if images:
            if not text:
                return await self._once(msg, Reply(ASK_WHAT_TO_CHANGE, where="thread", thread_ts=msg.root))
            source, parent_job_id = await self._source_and_maker(msg.team_id, images[0])
            refs = [await self._source_for(msg.team_id, f) for f in images[1:]]
            parent_ts = msg.ts
        else:
            latest = await self.store.images.latest_in_thread(msg.team_id, msg.channel_id, msg.root)
            if latest is None:
                return await self._once(msg, Reply(NO_IMAGE_IN_THREAD, thread_ts=msg.root))
            source = latest.as_source()
            parent_job_id, parent_ts = latest.job_id, latest.message_ts
        if session is not None and await self.sessions.full(session):
            return await self._once(msg, Reply(SESSION_FULL.format(n=self.sessions.config.max_images),
                                               thread_ts=msg.root))
        try:
            texts, force = await self._plan(msg.team_id, msg.user_id, msg.channel_id, text, edit=True,
                                            session=Flags(**session.flags) if session else None, own_refs=len(refs))
            if session is not None:
                await self.sessions.check_room(session, len(texts))
            jobs = [Job(team_id=msg.team_id, user_id=msg.user_id, channel_id=msg.channel_id, thread_ts=msg.root,
                        params=edit_params(one, source, refs=refs + preset_refs(force), defaults=force.defaults,
                                           style=force.style),
                        session_id=session.id if session else None) for one in texts]
            await self._start(self._request(jobs, texts, force, typed=text,
                                            via=via or ("reply" if msg.in_thread else "mention"),
                                            parent_job_id=parent_job_id, parent_ts=parent_ts, share_to=share_to),
                              msg.key)
        except PromptError as exc:
            return await self._once(msg, _refusal(exc, msg.root))
        if session is not None:
            await self.sessions.touch(session)
        return None

    # -- /edit ---------------------------------------------------------------------------------
    async def edit_command(self, *, team_id: str, user_id: str, channel_id: str, text: str,
                           response_url: str | None) -> str | None:
        """`/edit`: edit the most recent image lumabot knows of in the channel. Returns the
        ephemeral answer, or None when the edit started."""
        rules = await self.check_place(team_id, channel_id)
        if not text.strip():
            return EDIT_USAGE
        latest = await self.store.images.latest_in_channel(team_id, channel_id)
        if latest is None:
            return NO_IMAGE_IN_CHANNEL
        try:
            texts, force = await self._plan(team_id, user_id, channel_id, text, rules=rules, edit=True)
            jobs = [Job(team_id=team_id, user_id=user_id, channel_id=channel_id, thread_ts=latest.thread_ts,
                        response_url=response_url,
                        params=edit_params(one, latest.as_source(), refs=preset_refs(force), defaults=force.defaults,
                                           style=force.style))
                    for one in texts]
            await self._start(self._request(jobs, texts, force, typed=text, via="edit", parent_job_id=latest.job_id,
                                            parent_ts=latest.message_ts))
        except NeedsConfirmation:
            raise  # answered with its buttons
        except PromptError as exc:
            return str(exc)
        return None

    # -- the "Edit with Luma" shortcut ---------------------------------------------------------
    async def shortcut_target(self, team_id: str, channel_id: str, thread_ts: str, files: list[SlackFile],
                              response_url: str | None = None, message_ts: str | None = None) -> ShortcutTarget | None:
        """The image of the message a shortcut was used on (`files`, its thread `thread_ts`),
        or None if it has none; NotEnabled where lumabot does not work."""
        await self.check_place(team_id, channel_id)
        images = [f for f in files if f.maybe_image]
        if not images:
            return None
        source, maker = await self._source_and_maker(team_id, images[0])
        return ShortcutTarget(channel_id=channel_id, thread_ts=thread_ts, response_url=response_url,
                              source=source, message_ts=message_ts, parent_job_id=maker)

    async def edit_from_shortcut(self, *, team_id: str, user_id: str, target: ShortcutTarget,
                                 text: str, model: str | None, dedupe_key: str) -> None:
        """Submit the modal's edit; raises PromptError for bad input (shown on the field)."""
        texts, force = await self._plan(team_id, user_id, target.channel_id, text, edit=True, form=Flags(model=model))
        jobs = [Job(team_id=team_id, user_id=user_id, channel_id=target.channel_id, thread_ts=target.thread_ts,
                    response_url=target.response_url,
                    params=edit_params(one, target.source, refs=preset_refs(force), defaults=force.defaults,
                                       style=force.style))
                for one in texts]
        await self._start(self._request(jobs, texts, force, typed=text, via="shortcut",
                                        parent_job_id=target.parent_job_id, parent_ts=target.message_ts), dedupe_key)

    async def usage(self, team_id: str, user_id: str) -> str:
        """`/luma usage`."""
        return await self.quotas.report(team_id, user_id)

    async def session_command(self, *, team_id: str, user_id: str, channel_id: str,
                              args: list[str]) -> SessionAnswer | None:
        """`/luma session ...`; a session starts only where lumabot works (NotEnabled) and sees
        the channel's messages."""
        if args and args[0].lower() == "start":
            await self.check_place(team_id, channel_id)
            if not await self.notifier.reads_messages_in(team_id, channel_id):
                return NO_MESSAGES_FOR_SESSIONS
        return await self.sessions.command(team_id=team_id, user_id=user_id, channel_id=channel_id,
                                           args=args)

    # -- /imagine's form -----------------------------------------------------------------------
    async def imagine_from_form(self, *, team_id: str, user_id: str, channel_id: str, prompt: str,
                                aspect_ratio: str | None, model: str | None, output_format: str | None,
                                refs: list[SlackFile], response_url: str | None, dedupe_key: str,
                                n: int | None = None, preset: str | None = None) -> None:
        """Submit the `/imagine` form: choices in the form are defaults, flags typed in the
        prompt win. Raises PromptError with the field it is about."""
        files = [f for f in refs if f.id]
        if len(files) > MAX_EDIT_REFS:
            raise PromptError(f"At most {MAX_EDIT_REFS} reference images, please.", field="refs")
        not_images = [f.name or f.id for f in files if not f.maybe_image]
        if not_images:
            raise PromptError(f"{', '.join(not_images)} is not an image.", field="refs")
        chosen = Flags(aspect_ratio=aspect_ratio, model=model, output_format=output_format, n=n, preset=preset)
        texts, force = await self._plan(team_id, user_id, channel_id, prompt, form=chosen, own_refs=len(files))
        own = [ImageSource(slack_file=f) for f in files]
        jobs = [Job(team_id=team_id, user_id=user_id, channel_id=channel_id, response_url=response_url,
                    params=self._imagine_params(one, force, refs=own)) for one in texts]
        await self._start(self._request(jobs, texts, force, typed=prompt, via="form"), dedupe_key)

    # -- the buttons under an image ------------------------------------------------------------
    async def rerun(self, job_id: str, *, team_id: str, user_id: str, how: Literal["reroll", "max", "vary"],
                    action_key: str) -> str | None:
        """Reroll (same prompt and parameters), render again with uni-1-max, or Vary (a close
        variation: an edit of the image itself), into the same thread, against the clicker's
        limits. A double click or a retried action starts one job. Returns a message for the
        person when nothing starts."""
        job = await self._job_of(team_id, job_id)
        if job is None or not job.root_ts:
            return "That image is no longer known to lumabot."
        if how == "vary" and (not job.generation_id or job.deleted):
            return "That image can no longer be varied."
        if not await self.store.keys.claim(action_key, window=ACTION_WINDOW):
            return None
        if how == "vary":
            params = variation_params(job.params, ImageSource(generation_id=job.generation_id))
        else:
            params = job.params.model_copy(update={"model": "uni-1-max"} if how == "max" else {})
        again = Job(team_id=team_id, user_id=user_id, channel_id=job.channel_id, thread_ts=job.root_ts,
                    params=params, origin=Origin(via=how, flags=job.origin.flags,
                                                 parent_job_id=job.id, parent_ts=await self._image_ts(job)))
        try:
            await self._start(again)
        except NeedsConfirmation:
            raise  # answered with its buttons
        except PromptError as exc:
            return str(exc)
        return None

    async def result_target(self, team_id: str, job_id: str) -> ShortcutTarget | None:
        """What the Edit button edits: that job's image, into its thread."""
        job = await self._job_of(team_id, job_id)
        if job is None or not job.generation_id or job.deleted or not job.root_ts:
            return None
        return ShortcutTarget(channel_id=job.channel_id, thread_ts=job.root_ts, parent_job_id=job.id,
                              message_ts=await self._image_ts(job), source=ImageSource(generation_id=job.generation_id))

    async def share(self, job_id: str, *, team_id: str, user_id: str, channel_id: str,
                    response_url: str | None) -> str:
        """Share an image made in private into a channel: posted there as a new message (who
        shared it, the prompt, the image, the buttons), with nothing sent to Luma and nothing
        counted; once per image and channel. What the person is told."""
        job = await self._job_of(team_id, job_id)
        if job is None or job.state != JobState.DONE or job.deleted or not job.generation_id:
            return "That image can no longer be shared."
        if job.user_id != user_id:
            return "Only the person who made this image can share it."
        rules = await self.quotas.rules_in_force(team_id)
        if rules.place_refusal(channel_id) is not None or is_dm(channel_id):
            return (f"You cannot share into {channel_ref(channel_id)}: "
                    + not_enabled_text(channel_id, rules).split("; ", 1)[-1] + " Nothing was posted.")
        if await self.notifier.member_of(team_id, channel_id, user_id, SHARING_NOTE) is False:
            return (f"You are not a member of {channel_ref(channel_id)}, so lumabot does not post there for you. "
                    "Join it first. Nothing was posted.")
        if not await self.store.keys.claim(f"share:{team_id}:{job.id}:{channel_id}"):
            return f"This image is already shared in {channel_ref(channel_id)}."
        shared = Job(team_id=team_id, user_id=user_id, channel_id=channel_id, response_url=response_url,
                     params=job.params, state=JobState.DELIVERING, generation_id=job.generation_id,
                     origin=Origin(via="share", parent_job_id=job.id, preset=job.origin.preset))
        await self.runner.submit(shared)
        return f"Sharing it in {channel_ref(channel_id)}."

    async def provenance(self, team_id: str, job_id: str) -> tuple[Job, Job | None] | None:
        """A job of the workspace and the lumabot job whose image it was made from (if any),
        for its Info; None if the job is unknown there."""
        job = await self._job_of(team_id, job_id)
        if job is None:
            return None
        parent = await self._job_of(team_id, job.origin.parent_job_id) if job.origin.parent_job_id else None
        return job, parent

    async def delete(self, job_id: str, *, team_id: str, user_id: str, is_admin: bool) -> str | None:
        """Delete a result: only the person who asked, or a workspace admin or owner."""
        job = await self._job_of(team_id, job_id)
        if job is None or job.deleted:
            return None
        if job.user_id != user_id and not is_admin:
            return ONLY_REQUESTER
        await self.notifier.delete_result(job)
        await self.store.jobs.mark_deleted(job.id)
        return None

    async def cancel(self, job_id: str, *, team_id: str, user_id: str, is_admin: bool) -> str | None:
        """Cancel a job that waits for Luma (the requester, or a workspace admin): it leaves
        the line at once and nothing is spent. Returns a message for the person when it cannot
        be cancelled (already sent to Luma, or not theirs)."""
        job = await self._job_of(team_id, job_id)
        if job is not None and job.in_batch:
            return await self._cancel_batch(job, user_id=user_id, is_admin=is_admin)
        if job is not None and job.cancelled_by:
            return None  # cancelled already (a double click): its status says so
        if job is None or job.state.finished:
            return NOT_WAITING
        if job.user_id != user_id and not is_admin:
            return ONLY_REQUESTER_CANCEL
        if not await self.store.jobs.request_cancel(job_id, user_id):
            again = await self.store.jobs.get(job_id)
            if again is not None and again.cancelled_by:
                return None  # cancelled already (a double click): its status says so
            return ALREADY_SENT  # the create won the race
        self.runner.cancel(job_id, user_id)
        return None

    async def _cancel_batch(self, job: Job, *, user_id: str, is_admin: bool) -> str | None:
        """Cancel the images of a batch that still wait for Luma (those sent go on)."""
        if job.user_id != user_id and not is_admin:
            return ONLY_REQUESTER_CANCEL
        batch = await self.store.jobs.batch(job.batch_id or job.id)
        waiting = [j for j in batch if j.state == JobState.QUEUED and not j.settled]
        if not waiting:
            return None if any(j.cancelled_by for j in batch) else NOT_WAITING
        cancelled = 0
        for j in waiting:
            if j.cancelled_by or await self.store.jobs.request_cancel(j.id, user_id):
                self.runner.cancel(j.id, j.cancelled_by or user_id)
                cancelled += 1
        return None if cancelled else ALREADY_SENT

    async def workspace_gone(self, team_id: str) -> int:
        """lumabot was uninstalled from the workspace: its jobs that wait for Luma are
        cancelled (nothing more is sent to Luma for it). How many were."""
        cancelled = await self.store.jobs.cancel_waiting(team_id, UNINSTALLED)
        for job_id in cancelled:
            self.runner.cancel(job_id, UNINSTALLED)
        return len(cancelled)

    # -- App Home ------------------------------------------------------------------------------
    async def home(self, team_id: str, user_id: str) -> tuple[list[Job], str]:
        """The person's last 20 jobs and their usage against limits."""
        jobs = await self.store.jobs.recent(team_id, user_id, limit=20)
        return jobs, await self.quotas.report(team_id, user_id)

    async def limits_text(self, team_id: str) -> str:
        return await self.quotas.limits_text(team_id)

    # -- helpers -------------------------------------------------------------------------------
    async def _job_of(self, team_id: str, job_id: str) -> Job | None:
        """A job of the workspace `team_id` (a button's job id): one of another workspace is
        as if it did not exist."""
        job = await self.store.jobs.get(job_id)
        return job if job is not None and job.team_id == team_id else None

    async def _image_ts(self, job: Job) -> str | None:
        """The message that shows the job's image (its file share; else its buttons)."""
        image = await self.store.images.by_file(job.team_id, job.slack_file_id) if job.slack_file_id else None
        return (image.message_ts if image is not None else None) or job.actions_ts

    async def _source_for(self, team_id: str, f: SlackFile) -> ImageSource:
        return (await self._source_and_maker(team_id, f))[0]

    async def _source_and_maker(self, team_id: str, f: SlackFile) -> tuple[ImageSource, str | None]:
        """An image lumabot made is edited by generation id (no re-upload), others by file; and
        the lumabot job that made it, if one did."""
        known = await self.store.images.by_file(team_id, f.id)
        if known is not None and known.generation_id:
            return ImageSource(generation_id=known.generation_id), known.job_id
        return ImageSource(slack_file=f), known.job_id if known else None

    async def _seen_where(self, msg: Message) -> NotEnabled | None:
        """Remember the message's images; why lumabot does not work where it was posted, if so."""
        await self._remember_images(msg)
        try:
            await self.check_place(msg.team_id, msg.channel_id)
        except NotEnabled as exc:
            return exc
        return None

    async def _remember_images(self, msg: Message) -> None:
        for f in msg.images:
            await self.store.images.record(KnownImage(
                team_id=msg.team_id, channel_id=msg.channel_id, thread_ts=msg.root, message_ts=msg.ts, origin="user",
                slack_file_id=f.id, file=f, user_id=msg.user_id))

    async def _not_enabled(self, msg: Message, exc: NotEnabled) -> Reply | None:
        """Say where lumabot works, at most once per person per channel per hour (a busy
        channel is not spammed)."""
        if await self.store.keys.claim(f"notice:{msg.team_id}:{msg.channel_id}:{msg.user_id}", window=NOTICE_WINDOW):
            return Reply(str(exc), thread_ts=msg.thread_ts)
        return None

    async def _once(self, msg: Message, reply: Reply) -> Reply | None:
        """A reply at most once per version of a message, whatever Slack retries (a corrected
        message is answered again, and may still start its one job)."""
        return reply if await self.store.keys.claim(msg.reply_key) else None

