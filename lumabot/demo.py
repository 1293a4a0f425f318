"""`lumabot demo`: a scripted conversation with the real app, offline.

A fake Slack and a fake Luma (``lumabot/testing/``) are started on 127.0.0.1, the real lumabot
runs in between (HTTP mode, a throwaway SQLite database), and a Slack user, alice, types:

1. ``/imagine a lighthouse at dusk --ar 16:9`` in #general,
2. ``make it night --max`` as a reply in that image's thread,
3. ``/edit add a full moon`` at the channel's top level (it edits the latest image, in its thread).

The demo waits for each step to finish, prints the conversation as alice sees it in Slack and
writes the images the bot uploaded to a folder. No network, no accounts, no configuration: every
SLACK_*/LUMA_*/LUMABOT_* variable, any ``.env`` file and any HTTP(S) proxy are ignored.

``play(out)`` does the work (tests await it); ``main(out)`` runs it and prints.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import re
import sys
import tempfile
import time
from .demo_page import page
from .testing.store import job_ids
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterator

CHANNEL_ID = "C1"
CHANNEL_NAME = "general"
USER_ID = "U1"
USER_NAME = "alice"
BOT_NAME = "lumabot"

STEP_TIMEOUT = 20.0  # seconds one step may take before the demo gives up
LUMA_LATENCY = 0.6  # seconds per generation at the fake Luma: long enough to see the states
IMAGE_LONG_SIDE = 512

INTRO = ("lumabot demo: running offline against built-in fakes of Slack and Luma on 127.0.0.1 "
         "(no network, no accounts, no configuration needed).")


def _outro() -> str:
    install = Path(__file__).resolve().parent.parent / "docs" / "install.md"
    where = str(install) if install.is_file() else "docs/install.md"
    return (f"To connect a real Slack workspace and a Luma account, see “Creating the Slack app” "
            f"and “Configuration” in {where}.")


# Environment variables that would send the bot's HTTP clients elsewhere: slack_sdk's aiohttp
# clients and httpx honour the proxy variables (slack_sdk ignores NO_PROXY, so even 127.0.0.1
# would go to the proxy); the Luma SDK reads its own variables when a value is not passed.
_ENV_TO_CLEAR = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy",
                 "LUMA_CUSTOM_HEADERS", "LUMA_AGENTS_API_KEY", "LUMA_BASE_URL")

EMOJI = {
    "hourglass_flowing_sand": "⏳",
    "hourglass": "⌛",
    "art": "🎨",
    "white_check_mark": "✅",
    "x": "❌",
    "repeat": "🔁",
    "warning": "⚠️",
    "frame_with_picture": "🖼️",
    "wave": "👋",
}


class DemoError(Exception):
    """A step failed or timed out; the message says which and why. `transcript` is what was
    seen up to that point (when there was anything to show)."""

    def __init__(self, message: str, transcript: "Transcript | None" = None):
        super().__init__(message)
        self.transcript = transcript


# ----------------------------------------------------------------------------------------------
# The transcript
# ----------------------------------------------------------------------------------------------


@dataclass
class SavedImage:
    path: Path  # where the demo wrote it
    slack_name: str  # the file name lumabot gave it in Slack
    width: int
    height: int
    channel: str
    thread_ts: str | None  # the thread it was uploaded into (None: top level)
    file_id: str


@dataclass
class Step:
    typed: str  # what alice typed
    thread_ts: str | None  # where she typed it (None: the channel's top level)
    job_id: str | None = None
    state: str | None = None  # the job's final state ("done", "failed")
    status_ts: str | None = None  # the job's status message
    image: SavedImage | None = None
    seconds: float = 0.0  # wall time until the step had finished


@dataclass
class Entry:
    """One thing in the channel as a Slack user sees it, in order."""

    seq: float
    who: str
    lines: list[str]
    thread_ts: str | None = None  # None: top level
    ts: str | None = None  # a message's ts (thread roots are looked up by it)
    image: str | None = None  # an image's file name in the demo's folder


@dataclass
class Transcript:
    channel: str
    entries: list[Entry] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    out: Path | None = None
    seconds: float = 0.0

    @property
    def images(self) -> list[SavedImage]:
        return [s.image for s in self.steps if s.image is not None]

    def conversation(self) -> str:
        """The channel as alice sees it: top-level messages, and each thread's replies indented
        under a `└─` header (naming the thread when it is not the message just above)."""
        width = max([len(e.who) for e in self.entries] + [len(BOT_NAME)]) + 2
        roots = {e.ts: e for e in self.entries if e.thread_ts is None and e.ts}
        out = [f"#{self.channel}"]
        context: str | None = None  # the thread being shown, None for the top level
        last_top: Entry | None = None
        for e in self.entries:
            if e.thread_ts is None:
                context, last_top = None, e
                out += _block(e, width, indent="")
                continue
            if e.thread_ts != context:
                if last_top is not None and last_top.ts == e.thread_ts and context is None:
                    out.append("   └─ thread")
                else:
                    root = roots.get(e.thread_ts)
                    label = _clip(root.lines[0].removeprefix("> "), 50) if root and root.lines else "a thread"
                    out.append(f"   └─ in the thread of “{label}”")
                context = e.thread_ts
            out += _block(e, width, indent="      ")
        return "\n".join(out)

    def files(self) -> str:
        if not self.images:
            return "No images were written."
        where = self.out.resolve() if self.out else Path(".")
        name_w = max(len(i.path.name) for i in self.images)
        lines = [f"{len(self.images)} image{'s' if len(self.images) != 1 else ''} written to {where}/"]
        lines += [f"  {i.path.name:<{name_w}}  {i.width}×{i.height}" for i in self.images]
        lines.append(f"Open {where / 'index.html'} to see the conversation as Slack shows it.")
        return "\n".join(lines)

    def render(self) -> str:
        return f"{self.conversation()}\n\n{self.files()}"

    __str__ = render


def _block(e: Entry, width: int, *, indent: str) -> list[str]:
    pad = indent + " " * width
    lines = e.lines or [""]
    return [f"{indent}{e.who:<{width}}{lines[0]}"] + [pad + line for line in lines[1:]]


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


# ----------------------------------------------------------------------------------------------
# Slack mrkdwn and Block Kit as plain terminal text
# ----------------------------------------------------------------------------------------------

_LINK_RE = re.compile(r"<([^<>|]+)(?:\|([^<>]*))?>")
_EMOJI_RE = re.compile(r":([a-z0-9_+\-]+):")


def mrkdwn_to_text(text: str, users: dict[str, str] | None = None) -> str:
    """`<@U1>` -> @alice, `<#C1|general>` -> #general, `<url|label>` -> label, emoji shortcodes
    the app uses -> emoji, HTML entities unescaped."""
    users = users or {}

    def link(m: re.Match) -> str:
        target, label = m.group(1), m.group(2)
        if target.startswith("@"):
            return "@" + (label or users.get(target[1:], target[1:]))
        if target.startswith("#"):
            return "#" + (label or target[1:])
        if target.startswith("!"):
            return "@" + (label or target[1:].split("^")[0])
        return label or target

    text = _LINK_RE.sub(link, text)
    text = _EMOJI_RE.sub(lambda m: EMOJI.get(m.group(1), m.group(0)), text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _text_of(obj: Any) -> str:
    if isinstance(obj, dict):
        if isinstance(obj.get("text"), str):
            return obj["text"]
        if obj.get("type") == "image":
            return f"[image: {obj.get('alt_text', '')}]"
        if "elements" in obj:
            return "".join(_text_of(el) for el in obj["elements"])
    if isinstance(obj, list):
        return "".join(_text_of(el) for el in obj)
    return ""


def blocks_to_lines(blocks: list[dict]) -> list[str]:
    """The visible text of Block Kit blocks, one or more lines per block (mrkdwn still raw)."""
    lines: list[str] = []
    for b in blocks:
        kind = b.get("type")
        if kind == "divider":
            lines.append("────────")
        elif kind == "context":
            lines.append("  ".join(_text_of(el) for el in b.get("elements") or []))
        elif kind in ("section", "header"):
            if b.get("text"):
                lines += _text_of(b["text"]).splitlines() or [""]
            for f in b.get("fields") or []:
                lines += _text_of(f).splitlines()
        elif kind == "image":
            lines.append(f"[image: {b.get('alt_text', '')}]")
        elif kind == "actions":
            labels = [_text_of(el.get("text")) for el in b.get("elements") or [] if el.get("text")]
            lines.append(" ".join(f"[{label}]" for label in labels))
        else:
            text = _text_of(b)
            if text:
                lines += text.splitlines()
    return lines


def message_lines(text: str | None, blocks: list | None, users: dict[str, str]) -> list[str]:
    raw = blocks_to_lines(blocks) if blocks else (text or "").splitlines()
    return [mrkdwn_to_text(line, users) for line in raw] or [""]


def _with_history(versions: list[tuple[str | None, list | None]], users: dict[str, str]) -> list[str]:
    """The final version of a message; when it was updated in place, its last line (the state)
    also says what it showed before."""
    final = message_lines(*versions[-1], users)
    earlier: list[str] = []
    for text, blocks in versions[:-1]:
        last = message_lines(text, blocks, users)[-1]
        if last != final[-1] and (not earlier or earlier[-1] != last):
            earlier.append(last)
    if earlier:
        final[-1] = f"{final[-1]}   (was: {' → '.join(earlier)})"
    return final


def _image_size(data: bytes) -> tuple[int, int] | None:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.size
    except Exception:
        return None


# ----------------------------------------------------------------------------------------------
# Playing the conversation
# ----------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _offline_environment() -> Iterator[None]:
    """No proxies and no Luma SDK variables while the demo's clients are built and used."""
    saved = {k: os.environ.pop(k) for k in _ENV_TO_CLEAR if k in os.environ}
    try:
        yield
    finally:
        for k in _ENV_TO_CLEAR:
            os.environ.pop(k, None)
        os.environ.update(saved)


def _settings(slack, luma, db_path: Path):
    """Settings from these values only: every variable is passed explicitly (init values win
    over the environment) and no .env file is read."""
    from .config import Settings, load_settings
    from .testing.process import bot_env

    values: dict[str, Any] = {}
    for name, f in Settings.model_fields.items():
        if f.is_required():
            continue
        alias = f.validation_alias
        env = alias.choices[0] if alias is not None and hasattr(alias, "choices") else name.upper()
        values[str(env)] = f.default
    values.update(bot_env(
        slack, luma, db_path,
        SLACK_APP_TOKEN=None,
        PORT=3000,  # unused: the bot is served on a random port
        LUMABOT_POLL_INTERVAL=0.1,
        LUMABOT_FIRST_POLL_DELAY=0,
        LUMABOT_GENERATION_TIMEOUT=60,
        LUMABOT_RETRY_BACKOFF=0.2,
        LUMABOT_LUMA_REQUEST_TIMEOUT=10,
        LUMABOT_DELIVERY_TIMEOUT=30,
        LUMABOT_LOG_LEVEL="WARNING",
    ))
    return load_settings(_env_file=None, **values)


async def _wait(predicate: Callable[[], Awaitable[Any]], what: str, timeout: float | None = None,
                interval: float = 0.02) -> Any:
    timeout = STEP_TIMEOUT if timeout is None else timeout
    until = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() >= until:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(interval)


class _Player:
    """Plays alice against the running bot and records what she sees."""

    def __init__(self, bot, slack, url: str, out: Path):
        self.bot, self.slack, self.url, self.out = bot, slack, url, out
        self.users = {USER_ID: USER_NAME, slack.bot_user_id: BOT_NAME}
        self.transcript = Transcript(channel=CHANNEL_NAME, out=out)
        self._typed: list[Entry] = []  # alice's slash commands: not messages in Slack
        self._ephemerals: list[Entry] = []  # answers only alice sees
        self._seen_ephemerals = 0
        self._seen_responses = 0

    # -- what the fake saw ---------------------------------------------------------------------
    def _max_seq(self) -> int:
        return max([m.seq for m in self.slack.messages] + [f.seq for f in self.slack.files if f.shared]
                   + [0])

    def _collect_ephemerals(self) -> None:
        seq = self._max_seq() + 0.25
        for e in self.slack.ephemerals[self._seen_ephemerals:]:
            if e.channel == CHANNEL_ID:
                self._ephemeral(seq, message_lines(e.text, e.blocks, self.users), e.thread_ts)
        self._seen_ephemerals = len(self.slack.ephemerals)
        for r in self.slack.responses[self._seen_responses:]:
            self._ephemeral(seq, message_lines(r.text, r.blocks, self.users), None)
        self._seen_responses = len(self.slack.responses)

    def _ephemeral(self, seq: float, lines: list[str], thread_ts: str | None) -> None:
        lines = [f"(only visible to you) {lines[0]}"] + lines[1:]
        self._ephemerals.append(Entry(seq=seq, who=BOT_NAME, lines=lines, thread_ts=thread_ts))

    def snapshot(self) -> Transcript:
        """The transcript of everything seen so far."""
        self._collect_ephemerals()
        entries: list[Entry] = list(self._typed) + list(self._ephemerals)
        for m in self.slack.messages:
            if m.channel != CHANNEL_ID or m.deleted:
                continue
            who = BOT_NAME if m.is_bot else self.users.get(m.user or "", m.user or "someone")
            lines = _with_history(m.history or [(m.text, m.blocks)], self.users)
            entries.append(Entry(seq=m.seq, who=who, lines=lines,
                                 thread_ts=m.thread_ts if m.is_reply else None, ts=m.ts))
        saved = {i.file_id: i.path.name for i in self.transcript.images}
        for f in self.slack.files:
            if not f.shared or CHANNEL_ID not in f.channels:
                continue
            size = _image_size(f.content)
            label = (f"[image: {f.filename} {size[0]}×{size[1]}]" if size
                     else f"[file: {f.filename}, {len(f.content)} bytes]")
            # The file's message: its blocks (an image's buttons) above the file, as Slack shows it.
            above = message_lines(None, f.blocks, self.users) if f.blocks else []
            entries.append(Entry(seq=f.seq, who=BOT_NAME, lines=above + [label], thread_ts=f.thread_ts,
                                 ts=f.share_ts, image=saved.get(f.id)))
        entries.sort(key=lambda e: e.seq)
        self.transcript.entries = entries
        return self.transcript

    # -- jobs ----------------------------------------------------------------------------------
    async def _job_ids(self) -> list[str]:
        return await job_ids(self.bot.store)

    async def _run_step(self, step: Step, act: Callable[[], Awaitable[None]]) -> Step:
        """Do `act`, then wait for the job it starts to be finished and shown to the user."""
        t0 = time.monotonic()
        before = set(await self._job_ids())
        ephemerals_before = len(self._ephemerals)
        bot_messages_before = len(self.slack.bot_messages(CHANNEL_ID))
        self.transcript.steps.append(step)
        await act()

        async def new_job():
            fresh = [i for i in await self._job_ids() if i not in before]
            if fresh:
                return fresh[0]
            # No job: did lumabot answer instead (privately, or in the thread)?
            self._collect_ephemerals()
            said = [" ".join(e.lines) for e in self._ephemerals[ephemerals_before:]]
            said += [mrkdwn_to_text(m.text or "", self.users)
                     for m in self.slack.bot_messages(CHANNEL_ID)[bot_messages_before:]]
            if said:
                raise DemoError(f"lumabot answered “{step.typed}” without starting a job: {said[-1]}")
            return None

        step.job_id = await _wait(new_job, f"lumabot to accept “{step.typed}”")

        async def settled():
            job = await self.bot.store.jobs.get(step.job_id)
            return job if job is not None and job.settled else None

        job = await _wait(settled, f"the job of “{step.typed}” to finish")
        step.state, step.status_ts = str(job.state), job.status_ts
        if job.state != "done":
            thread = self.slack.thread(CHANNEL_ID, job.root_ts) if job.root_ts else []
            said = [mrkdwn_to_text(m.text or "", self.users) for m in thread
                    if getattr(m, "kind", "") == "message" and m.is_bot]
            reason = said[-1] if said else f"{job.failure_code or 'unknown error'}"
            raise DemoError(f"“{step.typed}” failed ({job.state}): {reason}")
        f = await _wait(lambda: _async(self.slack.file(job.slack_file_id or "")),
                        f"the image of “{step.typed}” in Slack")
        await _wait(lambda: _async(f.shared), f"the image of “{step.typed}” to be shared")
        size = _image_size(f.content)
        if size is None:
            raise DemoError(f"the file lumabot uploaded for “{step.typed}” is not an image")
        path = self.out / f"{len(self.transcript.images) + 1}-{f.filename}"
        path.write_bytes(f.content)
        step.image = SavedImage(path=path, slack_name=f.filename, width=size[0], height=size[1],
                                channel=CHANNEL_ID, thread_ts=f.thread_ts, file_id=f.id)
        step.seconds = time.monotonic() - t0
        self._collect_ephemerals()
        return step

    # -- alice's actions -----------------------------------------------------------------------
    async def command(self, command: str, text: str) -> Step:
        typed = f"{command} {text}"
        step = Step(typed=typed, thread_ts=None)

        async def act():
            seq = self._max_seq() + 0.5
            self._typed.append(Entry(seq=seq, who=USER_NAME, lines=[typed]))
            status, body = await self.slack.post_command(
                self.url, command, text, user_id=USER_ID, user_name=USER_NAME,
                channel_id=CHANNEL_ID, channel_name=CHANNEL_NAME)
            if status != 200:
                raise DemoError(f"lumabot answered HTTP {status} to “{typed}”")
            answer = _json(body)
            if answer.get("text") or answer.get("blocks"):
                lines = message_lines(answer.get("text"), answer.get("blocks"), self.users)
                self._ephemeral(seq + 0.1, lines, None)
                raise DemoError(f"lumabot refused “{typed}”: {' '.join(lines)}")

        return await self._run_step(step, act)

    async def reply(self, thread_ts: str, text: str) -> Step:
        from .testing.fake_slack import message_event

        step = Step(typed=text, thread_ts=thread_ts)

        async def act():
            event = message_event(text, user=USER_ID, channel=CHANNEL_ID, thread_ts=thread_ts)
            status, _body = await self.slack.post_event(self.url, event)
            if status != 200:
                raise DemoError(f"lumabot answered HTTP {status} to the reply “{text}”")

        return await self._run_step(step, act)


async def _async(value: Any) -> Any:
    return value


def _json(body: str) -> dict:
    import json

    try:
        value = json.loads(body) if body else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


async def play(out: Path) -> Transcript:
    """Start the fakes and the real bot, play the conversation, write the images to `out`.

    Raises DemoError (with the transcript so far) when a step fails or times out."""
    from .app import LumaBot, StartupError
    from .testing.fake_luma import FakeLuma
    from .testing.fake_slack import FakeSlack

    t0 = time.monotonic()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with _offline_environment(), tempfile.TemporaryDirectory(prefix="lumabot-demo-") as tmp:
        slack = FakeSlack()
        luma = FakeLuma(latency=LUMA_LATENCY, image_long_side=IMAGE_LONG_SIDE, record_requests=False,
                        illustrate=True)
        bot = None
        player: _Player | None = None
        try:
            await slack.start()
            await luma.start()
            slack.set_channel(CHANNEL_ID, name=CHANNEL_NAME)
            slack.set_user(USER_ID, name=USER_NAME)
            bot = LumaBot(_settings(slack, luma, Path(tmp) / "lumabot.db"))
            port = await bot.serve_http(host="127.0.0.1", port=0)
            try:
                await asyncio.wait_for(bot.start(), STEP_TIMEOUT)
            except (TimeoutError, asyncio.TimeoutError):
                raise DemoError(f"lumabot did not start within {STEP_TIMEOUT:g} s") from None
            except StartupError as exc:
                raise DemoError(f"lumabot did not start: {exc}") from None
            player = _Player(bot, slack, f"http://127.0.0.1:{port}/slack/events", out)

            first = await player.command("/imagine", "a lighthouse at dusk --ar 16:9")
            if not first.status_ts:
                raise DemoError("the image of the first step has no status message to reply to")
            await player.reply(first.status_ts, "make it night --max")
            await player.command("/edit", "add a full moon")
            transcript = player.snapshot()
            transcript.seconds = time.monotonic() - t0
            (out / "index.html").write_text(page(transcript), encoding="utf-8")
            return transcript
        except DemoError as exc:
            if exc.transcript is None and player is not None:
                exc.transcript = player.snapshot()
            raise
        except (TimeoutError, asyncio.TimeoutError) as exc:
            raise DemoError(str(exc) or "timed out",
                            player.snapshot() if player is not None else None) from None
        finally:
            # Cleanup problems must not hide the demo's outcome.
            if bot is not None:
                with contextlib.suppress(Exception):
                    await bot.stop()
            with contextlib.suppress(Exception):
                await luma.stop()
            with contextlib.suppress(Exception):
                await slack.stop()


def main(out: str = "lumabot-demo") -> int:
    """`lumabot demo [--out DIR]`: play the demo and print the transcript. 0 on success."""
    if hasattr(sys.stdout, "reconfigure"):
        with contextlib.suppress(Exception):
            sys.stdout.reconfigure(errors="replace")
    from .logs import setup_logging

    setup_logging("WARNING")
    print(INTRO, flush=True)
    print(flush=True)
    try:
        transcript = asyncio.run(play(Path(out)))
    except DemoError as exc:
        if exc.transcript is not None and exc.transcript.entries:
            print(exc.transcript.conversation(), flush=True)
            print(flush=True)
        print(f"lumabot demo failed: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("lumabot demo interrupted", file=sys.stderr, flush=True)
        return 130
    except Exception as exc:  # e.g. the out folder cannot be written, a port cannot be bound
        print(f"lumabot demo failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return 1
    print(transcript.render())
    print()
    print(f"Finished in {transcript.seconds:.1f} s. {_outro()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:2]))
