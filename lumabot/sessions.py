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

from .delivery import Delivery, DeliveryError
from .jobs.contact_sheet import contact_sheet, thumbnail
from .jobs.failures import policy_message
from .jobs.flags import Flags, PromptError, build_params, parse_prompt
from .jobs.text import shown
from .jobs.models import Job, JobState, Session
from .slack import blocks
from .store import Store

log = logging.getLogger(__name__)


@dataclass
class SessionConfig:
    idle_minutes: float = 60.0
    max_images: int = 100
    vote_emoji: str = "star"


def _when(ts: float) -> str:
    return f"<!date^{int(ts)}^{{time}}|{time.strftime('%H:%M UTC', time.gmtime(ts))}>"


class Sessions:
    def __init__(self, store: Store, delivery: Delivery, config: SessionConfig):
        self.store = store
        self.delivery = delivery
        self.config = config
        self.team_url: str | None = None
        self._idle_task: asyncio.Task | None = None
        self._ending: set[str] = set()

    # -- commands ------------------------------------------------------------------------------
    async def command(self, *, team_id: str, user_id: str, channel_id: str, args: list[str]) -> str | None:
        """`/luma session [start [flags] [theme] | stop]`: returns the ephemeral answer (None
        when the channel got a message instead)."""
        verb = args[0].lower() if args else ""
        if verb == "start":
            return await self.start(team_id=team_id, user_id=user_id, channel_id=channel_id,
                                    text=" ".join(args[1:]))
        if verb == "stop":
            return await self.stop(channel_id=channel_id, user_id=user_id)
        if verb in ("", "status"):
            return await self.status(channel_id)
        return ("Use `/luma session start [flags] [theme]`, `/luma session` (what is running) or "
                "`/luma session stop`.")

    async def start(self, *, team_id: str, user_id: str, channel_id: str, text: str) -> str | None:
        running = await self.store.running_session(channel_id)
        if running is not None:
            return self._already_running(running)
        try:
            theme, flags = parse_prompt(text)
            build_params("check", flags)  # the defaults must make a valid request
        except PromptError as exc:
            return str(exc)
        session = Session(team_id=team_id, channel_id=channel_id, started_by=user_id,
                          flags=flags.model_dump(exclude_none=True), theme=theme.strip() or None)
        if not await self.store.create_session(session):
            running = await self.store.running_session(channel_id)
            return self._already_running(running) if running else "A session is starting already."
        try:
            session.banner_ts = await self.delivery.post_message(channel_id, self._banner(session))
        except DeliveryError as err:
            session.ended_at, session.end_reason, session.recap_posted = time.time(), "not_started", True
            await self.store.save_session(session)
            if err.no_access:
                return "lumabot is not a member of this channel. Invite it with `/invite @lumabot` first."
            if err.policy:
                return policy_message(err.policy)
            return "The session could not be started: Slack did not take the banner. Please try again."
        await self.store.save_session(session)
        log.info("session started", extra={"channel": channel_id})
        return None

    def _already_running(self, session: Session) -> str:
        link = blocks.permalink(self.team_url, session.channel_id, session.banner_ts)
        where = f" (<{link}|see the banner>)" if link else ""
        return (f"A creative session is already running in this channel, started by "
                f"<@{session.started_by}> at {_when(session.started_at)}{where}. "
                "Stop it with `/luma session stop` before starting another.")

    async def status(self, channel_id: str) -> str:
        session = await self.store.running_session(channel_id)
        if session is None:
            return ("No creative session is running in this channel. Start one with "
                    "`/luma session start [flags] [theme]`, e.g. `/luma session start --ar 2:3 --max noir city`.")
        jobs = await self.store.session_jobs(session.id)
        done = [j for j in jobs if j.state == JobState.DONE]
        people = sorted({j.user_id for j in jobs})
        minutes = int((time.time() - session.started_at) // 60)
        flags = Flags(**session.flags).as_text()
        parts = [f"*Creative session* started by <@{session.started_by}> at {_when(session.started_at)} "
                 f"({minutes} min ago).",
                 f"{len(done)} image{'s' if len(done) != 1 else ''} so far "
                 f"(of at most {self.config.max_images}) · {len(people)} "
                 f"{'person' if len(people) == 1 else 'people'}"
                 + (f": {', '.join(f'<@{u}>' for u in people)}" if people else "")
                 + f" · about ${self._spend(jobs):,.2f} of Luma."]
        if session.theme:
            parts.append(f"Theme: _{shown(session.theme, 1000)}_")
        if flags:
            parts.append(f"Defaults: `{flags}`")
        return "\n".join(parts)

    async def stop(self, *, channel_id: str, user_id: str) -> str | None:
        session = await self.store.running_session(channel_id)
        if session is None:
            return "No creative session is running in this channel."
        await self.end(session, f"stopped:{user_id}")
        return None

    # -- taking part ---------------------------------------------------------------------------
    async def running(self, channel_id: str) -> Session | None:
        return await self.store.running_session(channel_id)

    async def full(self, session: Session) -> bool:
        """No more prompts: the session's accepted images reach the cap."""
        jobs = await self.store.session_jobs(session.id)
        return sum(1 for j in jobs if j.state != JobState.FAILED) >= self.config.max_images

    async def touch(self, session: Session) -> None:
        session.last_prompt_at = time.time()
        await self.store.touch_session(session.id, session.last_prompt_at)

    async def vote(self, *, channel_id: str, ts: str, user_id: str, reaction: str, on: bool) -> None:
        """A star on a session image is a vote; removing it takes the vote back."""
        if reaction.split("::")[0] != self.config.vote_emoji:
            return
        job = await self.store.job_for_message(channel_id, ts)
        if job is None or not job.session_id or job.state != JobState.DONE:
            return
        session = await self.store.get_session(job.session_id)
        if session is None or not session.running:
            return
        await self.store.set_vote(session.id, job.id, user_id, on)

    async def on_delivered(self, job: Job, output) -> None:
        """Engine hook: keep a thumbnail for the contact sheet; end at the image cap."""
        if not job.session_id:
            return
        await self.store.save_thumbnail(job.id, await asyncio.to_thread(thumbnail, output.content))
        session = await self.store.get_session(job.session_id)
        if session is None or not session.running:
            return
        jobs = await self.store.session_jobs(session.id)
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
                if await self.store.end_session(session.id, ended_at, reason):
                    session.ended_at, session.end_reason = ended_at, reason
                    log.info("session ended: %s", reason, extra={"channel": session.channel_id})
                else:  # ended meanwhile (another stop, the idle guard): that ending stands
                    session = await self.store.get_session(session.id) or session
            await self._recap(session)
        finally:
            self._ending.discard(session.id)

    async def _recap(self, session: Session) -> None:
        if session.recap_posted:
            return
        cfg = self.config
        jobs = await self.store.session_jobs(session.id)
        done = [j for j in jobs if j.state == JobState.DONE and not j.deleted]
        votes = await self.store.votes(session.id)
        ranked = sorted((j for j in done if votes.get(j.id)), key=lambda j: (-votes[j.id], j.created_at))[:3]
        people = sorted({j.user_id for j in jobs if j.state != JobState.FAILED})
        # Names, not mentions: a recap must not notify every participant.
        names = await self.delivery.display_names(people + [j.user_id for j in ranked])
        top = [(j.params.prompt, blocks.permalink(self.team_url, j.channel_id, j.status_ts, j.thread_ts),
                names[j.user_id], votes[j.id]) for j in ranked]
        reason = blocks.session_end_reason(session.end_reason, idle_minutes=cfg.idle_minutes,
                                           max_images=cfg.max_images)
        text = blocks.session_recap(session, reason=reason, images=len(done),
                                    people=[names[u] for u in people], top=top,
                                    vote_emoji=cfg.vote_emoji, spend=self._spend(jobs))
        try:
            thumbs = await self.store.thumbnails([j.id for j in done])
            sheet_parts = [thumbs[j.id] for j in done if j.id in thumbs]
            if sheet_parts:
                sheet = await asyncio.to_thread(contact_sheet, sheet_parts)

                async def remember(file_id: str) -> None:
                    session.recap_file_id = file_id
                    await self.store.save_session(session)

                await self.delivery.upload_file(
                    channel=session.channel_id, thread_ts=None, content=sheet,
                    filename="creative-session-contact-sheet.png", title="Contact sheet of the session",
                    known_file_id=session.recap_file_id, remember_file=remember, initial_comment=text)
            else:
                await self.delivery.post_message(session.channel_id, text)
            if session.banner_ts:
                await self.delivery.update_message(session.channel_id, session.banner_ts,
                                                   blocks.session_ended_banner(session))
        except DeliveryError as err:
            log.error("could not post the session recap: %s", err, extra={"channel": session.channel_id})
            if err.transient:
                return  # tried again at the next idle check or start
        except Exception as exc:
            log.error("could not post the session recap: %s", exc, extra={"channel": session.channel_id})
            return
        session.recap_posted = True
        await self.store.save_session(session)

    def _spend(self, jobs: list[Job]) -> float:
        return sum(j.cost_usd for j in jobs if j.charged)

    def _banner(self, session: Session) -> str:
        cfg = self.config
        return blocks.session_banner(session, idle_minutes=cfg.idle_minutes, max_images=cfg.max_images,
                                     vote_emoji=cfg.vote_emoji)

    # -- guard rails ---------------------------------------------------------------------------
    async def check(self) -> None:
        """End idle sessions and post recaps that are due (also right after a restart)."""
        now = time.time()
        for session in await self.store.open_sessions():
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
