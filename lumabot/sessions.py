"""Creative sessions: for a while, a channel is a shared studio.

`/luma session start [flags] [theme]` posts a banner; while the session runs every top-level
message in the channel becomes a prompt (see `Studio.on_message`), star reactions on its images
are votes, and it ends on `/luma session stop`, after LUMABOT_SESSION_IDLE_MINUTES without a
prompt, or at LUMABOT_SESSION_MAX_IMAGES images, with a recap and a contact sheet. Everything is
in the store, so a restart loses nothing: an idle end that fell due while lumabot was down is
applied at start, and a recap that was not posted yet is posted then.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from .jobs.contact_sheet import contact_sheet, thumbnail
from .jobs.failures import policy_message
from .jobs.flags import PromptError, build_params, parse_prompt
from .jobs.models import Job, JobState, Session
from .ports import DeliveryError, Notifier, Output, SessionRecap, SessionRules
from .store import Store

log = logging.getLogger(__name__)

# Seconds one replica has to post a session's recap before another may try (several replicas
# run the idle guard; a recap that failed is tried again after this).
RECAP_LEASE = 60.0


@dataclass
class AlreadyRunning:
    """`/luma session start` where one runs already."""

    session: Session


@dataclass
class SessionSummary:
    """`/luma session`: what the running session has made so far."""

    session: Session
    images: int
    people: list[str]
    spend: float
    max_images: int


# What a session command answers: a sentence, one of the above, or None (the channel was told).
SessionAnswer = str | AlreadyRunning | SessionSummary


class Sessions:
    def __init__(self, store: Store, notifier: Notifier, rules: SessionRules):
        self.store = store
        self.notifier = notifier
        self.config = rules
        self._idle_task: asyncio.Task[None] | None = None
        self._ending: set[str] = set()

    # -- commands ------------------------------------------------------------------------------
    async def command(self, *, team_id: str, user_id: str, channel_id: str,
                      args: list[str]) -> SessionAnswer | None:
        """`/luma session [start [flags] [theme] | stop]`: returns the ephemeral answer (None
        when the channel got a message instead)."""
        verb = args[0].lower() if args else ""
        if verb == "start":
            return await self.start(team_id=team_id, user_id=user_id, channel_id=channel_id,
                                    text=" ".join(args[1:]))
        if verb == "stop":
            return await self.stop(team_id=team_id, channel_id=channel_id, user_id=user_id)
        if verb in ("", "status"):
            return await self.status(team_id, channel_id)
        return ("Use `/luma session start [flags] [theme]`, `/luma session` (what is running) or "
                "`/luma session stop`.")

    async def start(self, *, team_id: str, user_id: str, channel_id: str,
                    text: str) -> SessionAnswer | None:
        running = await self.store.sessions.running(team_id, channel_id)
        if running is not None:
            return AlreadyRunning(running)
        try:
            theme, flags = parse_prompt(text)
            build_params("check", flags)  # the defaults must make a valid request
        except PromptError as exc:
            return str(exc)
        session = Session(team_id=team_id, channel_id=channel_id, started_by=user_id,
                          flags=flags.model_dump(exclude_none=True), theme=theme.strip() or None)
        if not await self.store.sessions.create(session):
            running = await self.store.sessions.running(team_id, channel_id)
            return AlreadyRunning(running) if running else "A session is starting already."
        try:
            session.banner_ts = await self.notifier.post_session_banner(session, self.config)
        except DeliveryError as err:
            session.ended_at, session.end_reason, session.recap_posted = time.time(), "not_started", True
            await self.store.sessions.save(session)
            if err.no_access:
                return "lumabot is not a member of this channel. Invite it with `/invite @lumabot` first."
            if err.policy:
                return policy_message(err.policy)
            return "The session could not be started: Slack did not take the banner. Please try again."
        await self.store.sessions.save(session)
        log.info("session started", extra={"channel": channel_id})
        return None

    async def status(self, team_id: str, channel_id: str) -> SessionAnswer:
        session = await self.store.sessions.running(team_id, channel_id)
        if session is None:
            return ("No creative session is running in this channel. Start one with "
                    "`/luma session start [flags] [theme]`, e.g. `/luma session start --ar 2:3 --max noir city`.")
        jobs = await self.store.sessions.jobs(session.id)
        return SessionSummary(session=session, images=sum(1 for j in jobs if j.state == JobState.DONE),
                              people=sorted({j.user_id for j in jobs}), spend=self._spend(jobs),
                              max_images=self.config.max_images)

    async def stop(self, *, team_id: str, channel_id: str, user_id: str) -> str | None:
        session = await self.store.sessions.running(team_id, channel_id)
        if session is None:
            return "No creative session is running in this channel."
        await self.end(session, f"stopped:{user_id}")
        return None

    # -- taking part ---------------------------------------------------------------------------
    async def running(self, team_id: str, channel_id: str) -> Session | None:
        return await self.store.sessions.running(team_id, channel_id)

    async def full(self, session: Session) -> bool:
        """No more prompts: the session's accepted images reach the cap."""
        return await self.room(session) <= 0

    async def room(self, session: Session) -> int:
        """How many more images the session takes before its cap."""
        jobs = await self.store.sessions.jobs(session.id)
        return self.config.max_images - sum(1 for j in jobs if j.state != JobState.FAILED)

    async def check_room(self, session: Session, images: int) -> None:
        """PromptError when a request of `images` would take the session past its cap (a
        request of several is made whole or not at all)."""
        room = await self.room(session)
        if images > room:
            raise PromptError(f"This creative session takes {room} more image{'s' if room != 1 else ''} (it stops at "
                              f"{self.config.max_images}); this request would make {images}. Nothing was started.")

    async def touch(self, session: Session) -> None:
        session.last_prompt_at = time.time()
        await self.store.sessions.touch(session.id, session.last_prompt_at)

    async def vote(self, *, team_id: str, channel_id: str, ts: str, user_id: str, reaction: str,
                   on: bool) -> None:
        """A star on a session image is a vote; removing it takes the vote back."""
        if reaction.split("::")[0] != self.config.vote_emoji:
            return
        job = await self.store.jobs.for_message(team_id, channel_id, ts)
        if job is None or not job.session_id or job.state != JobState.DONE:
            return
        session = await self.store.sessions.get(job.session_id)
        if session is None or not session.running:
            return
        await self.store.sessions.set_vote(session.id, job.id, user_id, on)

    async def keep_thumbnail(self, job: Job, output: Output) -> None:
        """Engine hook, before the job is recorded done: keep a thumbnail for the contact sheet
        (so a recap that counts the image has its thumbnail, however soon the session stops)."""
        if job.session_id:
            await self.store.sessions.save_thumbnail(job.id, await asyncio.to_thread(thumbnail, output.content))

    async def on_delivered(self, job: Job, output: Output) -> None:
        """Engine hook: end the session at its image cap."""
        if not job.session_id:
            return
        session = await self.store.sessions.get(job.session_id)
        if session is None or not session.running:
            return
        jobs = await self.store.sessions.jobs(session.id)
        if sum(1 for j in jobs if j.state == JobState.DONE) >= self.config.max_images:
            await self.end(session, "max_images")

    # -- ending --------------------------------------------------------------------------------
    async def end(self, session: Session, reason: str) -> None:
        """End a session (recorded first) and post its recap."""
        if session.id in self._ending:
            return
        self._ending.add(session.id)
        try:
            if session.running:
                ended_at = time.time()
                if await self.store.sessions.end(session.id, ended_at, reason):
                    session.ended_at, session.end_reason = ended_at, reason
                    log.info("session ended: %s", reason, extra={"channel": session.channel_id})
                else:  # ended meanwhile (another stop, the idle guard): that ending stands
                    session = await self.store.sessions.get(session.id) or session
            await self._recap(session)
        finally:
            self._ending.discard(session.id)

    async def _recap(self, session: Session) -> None:
        if session.recap_posted:
            return
        # One replica posts it: the others (and retries) wait out the lease.
        if not await self.store.keys.claim(f"recap:{session.id}", window=RECAP_LEASE):
            return
        jobs = await self.store.sessions.jobs(session.id)
        done = [j for j in jobs if j.state == JobState.DONE and not j.deleted]
        votes = await self.store.sessions.votes(session.id)
        ranked = sorted((j for j in done if votes.get(j.id)), key=lambda j: (-votes[j.id], j.created_at))[:3]
        thumbs = await self.store.sessions.thumbnails([j.id for j in done])
        sheet_parts = [thumbs[j.id] for j in done if j.id in thumbs]

        try:
            sheet = await asyncio.to_thread(contact_sheet, sheet_parts) if sheet_parts else None
            recap = SessionRecap(session=session, rules=self.config, images=len(done),
                                 people=sorted({j.user_id for j in jobs if j.state != JobState.FAILED}),
                                 top=[(j, votes[j.id]) for j in ranked], spend=self._spend(jobs),
                                 contact_sheet=sheet)
            for _ in range(2):   # a contact sheet reserved before a crash and never sent: once more
                if sheet is not None and session.recap_file_id is None:
                    # Recorded before its bytes go: after a crash, it is finished, not sent twice.
                    session.recap_file_id = await self.notifier.reserve_recap_upload(recap)
                    await self.store.sessions.save(session)
                if await self.notifier.post_session_recap(recap):
                    break
                session.recap_file_id = None
            else:
                raise DeliveryError("the contact sheet did not reach Slack", transient=True)
        except DeliveryError as err:
            log.error("could not post the session recap: %s", err, extra={"channel": session.channel_id})
            if err.transient:
                await self.store.keys.release(f"recap:{session.id}")
                return  # tried again at the next idle check or start (by any replica)
        except Exception as exc:
            log.error("could not post the session recap: %s", exc, extra={"channel": session.channel_id})
            await self.store.keys.release(f"recap:{session.id}")
            return
        session.recap_posted = True
        await self.store.sessions.save(session)

    def _spend(self, jobs: list[Job]) -> float:
        return sum(j.cost_usd for j in jobs if j.charged)

    # -- guard rails ---------------------------------------------------------------------------
    async def check(self) -> None:
        """End idle sessions and post recaps that are due (also right after a restart)."""
        now = time.time()
        for session in await self.store.sessions.unfinished():
            if session.running and now - session.last_prompt_at >= self.config.idle_minutes * 60:
                await self.end(session, "idle")
            elif not session.running and not session.recap_posted:
                await self.end(session, session.end_reason or "")

    def start_guard(self) -> None:
        if self._idle_task is None:
            self._idle_task = asyncio.create_task(self._guard(), name="session-guard")

    async def _guard(self) -> None:
        period = max(0.05, min(30.0, self.config.idle_minutes * 60 / 4))
        while True:
            try:
                await self.check()
            except Exception:
                log.exception("session check failed")
            await asyncio.sleep(period)

    def stop_guard(self) -> None:
        if self._idle_task is not None:
            self._idle_task.cancel()
