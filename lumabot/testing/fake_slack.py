"""A fake Slack for tests: a local aiohttp server speaking Slack's wire protocol.

Nothing here reaches Slack. `FakeSlack` answers the Web API (``POST /api/<method>``, form-encoded,
query-string or JSON bodies, token in ``Authorization: Bearer`` or a ``token`` param), the
``files.getUploadURLExternal`` upload URLs, ``url_private`` downloads, ``response_url`` posts and a
Socket Mode websocket. Everything the bot does is recorded as plain data (``messages``, ``files``,
``ephemerals``, ``responses``, ``views``, ``reactions``, ``calls``, ``acks``...) for tests to assert on.

The other direction, Slack calling the bot, is played by `SlackPeer` (HTTP mode: signed requests)
and by `FakeSlack.send_envelope` (Socket Mode). Module-level helpers build realistic payloads.

Choices where Slack's behaviour is not documented or where the fake is deliberately strict
(see also the README of each method below):

* ``chat.postMessage`` / ``files.completeUploadExternal`` with a ``thread_ts`` must name a
  *top-level* message (or top-level file share) of that channel: ``thread_not_found`` /
  ``invalid_thread_ts`` otherwise (a reply's ts is refused; real Slack is sometimes lenient).
* A channel the bot is not a member of answers ``not_in_channel`` when public and
  ``channel_not_found`` when private (Slack hides private channels from non-members).
* ``files.completeUploadExternal``: an unknown file id, or one whose bytes were never POSTed to
  the upload URL -> ``file_not_found`` (with a ``detail`` field saying which); completing a file
  twice -> ``already_completed``; ``thread_ts`` without exactly one channel -> ``invalid_arguments``.
  ``files.info`` answers ``file_not_found`` until the upload is completed.
* ``views.open`` / ``views.push`` need a trigger id that the fake itself handed to the bot (via
  `SlackPeer` or `send_envelope`, or `register_trigger`), used once, within ``trigger_ttl``
  (3 s): ``invalid_trigger_id`` / ``exchanged_trigger_id`` / ``expired_trigger_id`` otherwise.
* Message events delivered through `SlackPeer.post_event` / `send_envelope` are recorded as user
  messages (so the bot may reply in their threads, react to them...). A reply whose parent is
  unknown gets a placeholder parent message (text ``""``).
* Errors carry Slack's ``response_metadata.messages`` where Slack has them (invalid_blocks...),
  plus sometimes a non-Slack ``detail`` string to ease debugging.

Real Slack's awkward parts, which the fake reproduces so tests catch what they break:

* Text people type arrives HTML-escaped (``&amp; &lt; &gt;``) in message events and slash
  commands: the payload builders take the text as typed and encode it (`slack_escape`); real
  mentions are markup (``<@UBOT>``), added by `app_mention_event` / ``mention_bot=True``.
* Slack Connect: ``external_team=`` on `SlackPeer` methods sends the envelope, ``event.team``,
  ``team.id`` and ``user.team_id`` of the other organisation, ``is_ext_shared_channel``, and the
  installing workspace only in ``authorizations[0].team_id`` / ``view.app_installed_team_id``.
* DMs: Slack never sends ``app_mention`` for a DM; delivering one is an AssertionError.
  `FakeSlack.user_posts` sends exactly the events Slack would for a person's message.
* ``files.completeUploadExternal`` shares asynchronously after ``share_delay`` seconds.
* ``latency`` delays every Web API answer; ``fail_next(..., after_effect=True)`` answers an error
  for a call that took effect; channels can be thread-only or read-only and uploads can be
  disabled for the workspace, with Slack's documented error codes.
* ``conversations.history`` / ``.replies`` return message ``metadata`` only with
  ``include_all_metadata=true``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import inspect
import io
import itertools
import json
import mimetypes
import secrets
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Iterator
from urllib.parse import quote, urlencode

import aiohttp
from aiohttp import BodyPartReader, web

from lumabot.check import REQUIRED_BOT_SCOPES

__all__ = [
    "DEFAULT_SCOPES",
    "FakeSlack",
    "SlackPeer",
    "PeerResponse",
    "Message",
    "UploadedFile",
    "UserFile",
    "Ephemeral",
    "ResponsePost",
    "ViewCall",
    "Reaction",
    "SocketAck",
    "Download",
    "ChannelInfo",
    "UserInfo",
    "next_ts",
    "new_trigger_id",
    "pattern_bytes",
    "iter_pattern",
    "validate_blocks",
    "sign_request",
    "slack_escape",
    "slash_command_payload",
    "event_callback",
    "message_event",
    "message_changed_event",
    "app_mention_event",
    "app_home_opened_event",
    "app_uninstalled_event",
    "tokens_revoked_event",
    "url_verification_payload",
    "block_actions_payload",
    "view_submission_payload",
    "message_shortcut_payload",
]

# The scopes of manifest.yml: a fake install grants exactly what lumabot asks for.
DEFAULT_SCOPES = list(REQUIRED_BOT_SCOPES)

PERMALINK_HOST = "https://fake.slack.test"

KNOWN_BLOCK_TYPES = {
    "actions",
    "context",
    "context_actions",
    "divider",
    "file",
    "header",
    "image",
    "input",
    "markdown",
    "rich_text",
    "section",
    "table",
    "video",
    "call",
}

# ----------------------------------------------------------------------------------------------
# ids, timestamps, byte patterns
# ----------------------------------------------------------------------------------------------

_last_ts_us = 0
_id_counter = itertools.count(1)


def next_ts() -> str:
    """A Slack message ts ("1700000000.000100" style): unique and increasing in this process."""
    global _last_ts_us
    us = time.time_ns() // 1000
    if us <= _last_ts_us:
        us = _last_ts_us + 1
    _last_ts_us = us
    return f"{us // 1_000_000}.{us % 1_000_000:06d}"


def _new_id(prefix: str) -> str:
    return f"{prefix}{next(_id_counter):09d}X"


def new_trigger_id() -> str:
    """A trigger id shaped like Slack's ("13345224609.738474920.8088930838d88f008e0")."""
    return f"{int(time.time() * 10)}.{secrets.randbelow(10**9):09d}.{secrets.token_hex(16)}"


_PATTERN_PERIOD = 251
_PATTERN_CHUNK = 64 * 1024
_PATTERN_BASE = bytes(i % _PATTERN_PERIOD for i in range(_PATTERN_CHUNK + _PATTERN_PERIOD))


def pattern_bytes(offset: int, length: int) -> bytes:
    """Bytes [offset, offset+length) of the deterministic content of a streamed user file."""
    out = bytearray()
    while length > 0:
        n = min(length, _PATTERN_CHUNK)
        start = offset % _PATTERN_PERIOD
        out += _PATTERN_BASE[start : start + n]
        offset += n
        length -= n
    return bytes(out)


def iter_pattern(size: int, chunk: int = _PATTERN_CHUNK) -> Iterator[bytes]:
    """The content of a streamed user file of `size` bytes, chunk by chunk."""
    chunk = min(chunk, _PATTERN_CHUNK)
    for off in range(0, size, chunk):
        yield pattern_bytes(off, min(chunk, size - off))


# ----------------------------------------------------------------------------------------------
# recorded data
# ----------------------------------------------------------------------------------------------


@dataclass
class Message:
    """A message in the fake workspace (posted by the bot, or by a user through an event)."""

    channel: str
    ts: str
    text: str | None = None
    blocks: list[dict] | None = None
    thread_ts: str | None = None  # None for top-level messages
    user: str | None = None
    bot_id: str | None = None
    app_id: str | None = None
    team: str | None = None
    history: list[tuple[str | None, list | None]] = field(default_factory=list)  # every version
    deleted: bool = False
    reply_broadcast: bool = False
    attachments: list | None = None
    metadata: dict | None = None
    file_ids: list[str] = field(default_factory=list)
    params: dict = field(default_factory=dict)  # the params of the call that posted it
    seq: int = 0
    kind = "message"

    @property
    def is_bot(self) -> bool:
        return self.bot_id is not None

    @property
    def is_reply(self) -> bool:
        return self.thread_ts is not None and self.thread_ts != self.ts

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"type": "message", "text": self.text or "", "ts": self.ts}
        if self.user:
            d["user"] = self.user
        if self.bot_id:
            d["bot_id"] = self.bot_id
            d["app_id"] = self.app_id
        if self.team:
            d["team"] = self.team
        if self.blocks is not None:
            d["blocks"] = self.blocks
        if self.attachments:
            d["attachments"] = self.attachments
        if self.metadata:
            d["metadata"] = self.metadata
        if self.thread_ts:
            d["thread_ts"] = self.thread_ts
        if len(self.history) > 1:
            d["edited"] = {"user": self.user, "ts": self.ts}
        return d


@dataclass
class UploadedFile:
    """A file uploaded by the bot (files.getUploadURLExternal -> POST -> completeUploadExternal)."""

    id: str
    filename: str
    title: str | None
    alt_txt: str | None
    length: int  # the length declared to getUploadURLExternal
    content: bytes = b""
    mimetype: str = "application/octet-stream"
    filetype: str = "binary"
    snippet_type: str | None = None
    channel: str | None = None  # first channel it is shared to
    thread_ts: str | None = None
    channels: list[str] = field(default_factory=list)
    share_ts: str | None = None  # ts of the file-share message
    initial_comment: str | None = None
    uploaded: bool = False  # bytes POSTed to the upload URL
    completed: bool = False  # files.completeUploadExternal answered ok
    shared: bool = False  # the (possibly delayed) share happened
    deleted: bool = False  # files.delete: gone from every channel and thread
    user: str | None = None
    created: int = 0
    seq: int = 0
    kind = "file"

    @property
    def size(self) -> int:
        return len(self.content)


@dataclass
class UserFile:
    """A file a user shared (Slack-hosted, downloadable with the bot token)."""

    id: str
    name: str
    title: str
    mimetype: str
    filetype: str
    user: str
    mode: str
    content: bytes | None
    stream_size: int | None
    created: int
    hide_size: bool = False  # no size in the file object and a chunked download (no length)

    @property
    def size(self) -> int:
        return self.stream_size if self.content is None else len(self.content)  # type: ignore[return-value]


@dataclass
class Ephemeral:
    channel: str
    user: str | None
    text: str | None
    blocks: list | None
    thread_ts: str | None
    message_ts: str
    params: dict = field(default_factory=dict)


@dataclass
class ResponsePost:
    url_id: str
    url: str
    body: dict
    channel: str | None = None
    message_ts: str | None = None

    @property
    def text(self) -> str | None:
        return self.body.get("text")

    @property
    def blocks(self) -> list | None:
        return self.body.get("blocks")


@dataclass
class ViewCall:
    method: str  # views.open / views.push / views.update / views.publish
    view_id: str
    view: dict  # the view as Slack stores it (with id, hash, state...)
    user_id: str | None = None
    trigger_id: str | None = None


@dataclass
class Reaction:
    channel: str
    ts: str
    name: str
    user: str
    action: str  # "added" / "removed"


@dataclass
class SocketAck:
    envelope_id: str
    type: str
    envelope: dict
    ack: dict
    latency: float


@dataclass
class Download:
    file_id: str
    path: str
    authorized: bool


@dataclass
class ChannelInfo:
    id: str
    name: str
    member: bool = True
    private: bool = False
    is_im: bool = False
    is_mpim: bool = False
    exists: bool = True
    archived: bool = False
    user: str | None = None  # the other party of an IM
    thread_only: bool = False  # top-level posts answer restricted_action_thread_only_channel
    read_only: bool = False  # every post answers restricted_action_read_only_channel

    def to_dict(self, team_id: str) -> dict:
        d = {
            "id": self.id,
            "name": self.name,
            "is_channel": not (self.private or self.is_im or self.is_mpim),
            "is_group": self.private and not (self.is_im or self.is_mpim),
            "is_im": self.is_im,
            "is_mpim": self.is_mpim,
            "is_private": self.private or self.is_im or self.is_mpim,
            "is_archived": self.archived,
            "is_general": self.name == "general",
            "is_member": self.member,
            "is_shared": False,
            "is_ext_shared": False,
            "is_org_shared": False,
            "context_team_id": team_id,
            "created": 1600000000,
            "creator": "U0CREATOR",
        }
        if self.is_im:
            d["user"] = self.user
            d.pop("name")
        return d


@dataclass
class UserInfo:
    id: str
    name: str
    is_admin: bool = False
    is_owner: bool = False
    is_bot: bool = False
    exists: bool = True
    tz: str = "Europe/London"

    def to_dict(self, team_id: str) -> dict:
        return {
            "id": self.id,
            "team_id": team_id,
            "name": self.name,
            "deleted": False,
            "real_name": self.name.title(),
            "tz": self.tz,
            "tz_label": self.tz,
            "tz_offset": 0,
            "is_admin": self.is_admin,
            "is_owner": self.is_owner,
            "is_primary_owner": self.is_owner,
            "is_restricted": False,
            "is_ultra_restricted": False,
            "is_bot": self.is_bot,
            "is_app_user": False,
            "updated": 1700000000,
            "profile": {
                "real_name": self.name.title(),
                "display_name": self.name,
                "team": team_id,
            },
        }


class _SlackError(Exception):
    def __init__(self, error: str, *, messages: list[str] | None = None, **extra: Any):
        super().__init__(error)
        self.error = error
        self.extra = dict(extra)
        if messages:
            self.extra["response_metadata"] = {"messages": messages}


@dataclass
class _Fault:
    status: int
    error: str | None
    retry_after: int | None
    count: int
    after_effect: bool = False


@dataclass
class _Hold:
    event: asyncio.Event
    after_effect: bool


@dataclass
class _ResponseUrl:
    id: str
    channel: str | None
    message_ts: str | None
    uses: int = 0
    expired: bool = False


# ----------------------------------------------------------------------------------------------
# Block Kit validation
# ----------------------------------------------------------------------------------------------


def _err(errs: list[str], msg: str, ptr: str) -> None:
    errs.append(f"[ERROR] {msg} [json-pointer:{ptr}]")


def _check_text(
    errs: list[str],
    obj: Any,
    ptr: str,
    *,
    plain_only: bool = False,
    max_len: int = 3000,
    required: bool = True,
) -> None:
    if obj is None:
        if required:
            _err(errs, "missing required field: text", ptr)
        return
    if not isinstance(obj, dict):
        _err(errs, "must be a text object", ptr)
        return
    t = obj.get("type")
    if plain_only and t != "plain_text":
        _err(errs, "must be a plain_text object", f"{ptr}/type")
    elif t not in ("plain_text", "mrkdwn"):
        _err(errs, "must provide a valid text object type (plain_text or mrkdwn)", f"{ptr}/type")
    txt = obj.get("text")
    if not isinstance(txt, str) or len(txt) == 0:
        _err(errs, "must be more than 0 characters", f"{ptr}/text")
    elif len(txt) > max_len:
        _err(errs, f"must be less than {max_len + 1} characters", f"{ptr}/text")


def _check_image_ref(
    errs: list[str], el: dict, ptr: str, file_problem: Callable[[dict], str | None] | None
) -> None:
    has_url = "image_url" in el
    has_file = "slack_file" in el
    if has_url == has_file:
        _err(errs, "must provide exactly one of image_url or slack_file", ptr)
    alt = el.get("alt_text")
    if not isinstance(alt, str) or not alt:
        _err(errs, "missing required field: alt_text", f"{ptr}/alt_text")
    elif len(alt) > 2000:
        _err(errs, "must be less than 2001 characters", f"{ptr}/alt_text")
    if has_url:
        url = el.get("image_url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")) or len(url) > 3000:
            _err(errs, "must be a valid http(s) URL of at most 3000 characters", f"{ptr}/image_url")
    if has_file:
        sf = el.get("slack_file")
        if not isinstance(sf, dict) or not (sf.get("id") or sf.get("url")):
            _err(errs, "slack_file must provide id or url", f"{ptr}/slack_file")
        elif file_problem is not None:
            problem = file_problem(sf)
            if problem:
                _err(errs, f"invalid slack file: {problem}", f"{ptr}/slack_file")


def _check_element(
    errs: list[str], el: Any, ptr: str, file_problem: Callable[[dict], str | None] | None
) -> None:
    if not isinstance(el, dict) or not isinstance(el.get("type"), str):
        _err(errs, "missing required field: type", ptr)
        return
    t = el["type"]
    if t == "image":
        _check_image_ref(errs, el, ptr, file_problem)
        return
    aid = el.get("action_id")
    if aid is not None and (not isinstance(aid, str) or not aid or len(aid) > 255):
        _err(errs, "action_id must be 1 to 255 characters", f"{ptr}/action_id")
    if t == "button":
        _check_text(errs, el.get("text"), f"{ptr}/text", plain_only=True, max_len=75)
        v = el.get("value")
        if v is not None and (not isinstance(v, str) or len(v) > 2000):
            _err(errs, "must be less than 2001 characters", f"{ptr}/value")
        u = el.get("url")
        if u is not None and (not isinstance(u, str) or len(u) > 3000):
            _err(errs, "must be less than 3001 characters", f"{ptr}/url")
        st = el.get("style")
        if st is not None and st not in ("primary", "danger"):
            _err(errs, "must be a valid enum value", f"{ptr}/style")
    elif t in ("static_select", "multi_static_select", "overflow", "radio_buttons", "checkboxes"):
        options = el.get("options")
        groups = el.get("option_groups")
        if options is None and groups is None:
            _err(errs, "must provide options or option_groups", ptr)
        all_opts: list[tuple[str, Any]] = []
        if options is not None:
            if not isinstance(options, list) or not options:
                _err(errs, "options must be a non-empty array", f"{ptr}/options")
            else:
                limit = 5 if t == "overflow" else (10 if t in ("radio_buttons", "checkboxes") else 100)
                if len(options) > limit:
                    _err(errs, f"must provide no more than {limit} items", f"{ptr}/options")
                all_opts += [(f"{ptr}/options/{i}", o) for i, o in enumerate(options)]
        if isinstance(groups, list):
            for gi, g in enumerate(groups):
                for oi, o in enumerate((g or {}).get("options") or []):
                    all_opts.append((f"{ptr}/option_groups/{gi}/options/{oi}", o))
        for optr, o in all_opts:
            if not isinstance(o, dict):
                _err(errs, "must be an option object", optr)
                continue
            _check_text(
                errs,
                o.get("text"),
                f"{optr}/text",
                plain_only=t not in ("radio_buttons", "checkboxes"),
                max_len=75,
            )
            v = o.get("value")
            if not isinstance(v, str) or not v or len(v) > 150:
                _err(errs, "option value must be 1 to 150 characters", f"{optr}/value")


def validate_blocks(
    blocks: Any,
    *,
    max_blocks: int = 50,
    file_problem: Callable[[dict], str | None] | None = None,
) -> list[str]:
    """Check Block Kit basics; return Slack-style error strings (empty list when valid)."""
    errs: list[str] = []
    if not isinstance(blocks, list):
        _err(errs, "must be an array", "/blocks")
        return errs
    if len(blocks) > max_blocks:
        _err(errs, f"no more than {max_blocks} items allowed", "/blocks")
    block_ids: set[str] = set()
    for i, b in enumerate(blocks):
        ptr = f"/blocks/{i}"
        if not isinstance(b, dict):
            _err(errs, "must be an object", ptr)
            continue
        t = b.get("type")
        if not isinstance(t, str):
            _err(errs, "missing required field: type", ptr)
            continue
        if t not in KNOWN_BLOCK_TYPES:
            _err(errs, f"unsupported type: {t}", f"{ptr}/type")
            continue
        bid = b.get("block_id")
        if bid is not None:
            if not isinstance(bid, str) or not bid or len(bid) > 255:
                _err(errs, "block_id must be 1 to 255 characters", f"{ptr}/block_id")
            elif bid in block_ids:
                _err(errs, f"duplicate block_id: {bid}", f"{ptr}/block_id")
            else:
                block_ids.add(bid)
        if t == "section":
            if b.get("text") is None and not b.get("fields"):
                _err(errs, "must provide text or fields", ptr)
            if b.get("text") is not None:
                _check_text(errs, b.get("text"), f"{ptr}/text", max_len=3000)
            fields = b.get("fields")
            if fields is not None:
                if not isinstance(fields, list) or len(fields) > 10:
                    _err(errs, "fields must be an array of at most 10 items", f"{ptr}/fields")
                else:
                    for fi, f in enumerate(fields):
                        _check_text(errs, f, f"{ptr}/fields/{fi}", max_len=2000)
            if b.get("accessory") is not None:
                _check_element(errs, b["accessory"], f"{ptr}/accessory", file_problem)
        elif t == "header":
            _check_text(errs, b.get("text"), f"{ptr}/text", plain_only=True, max_len=150)
        elif t == "image":
            _check_image_ref(errs, b, ptr, file_problem)
            if b.get("title") is not None:
                _check_text(errs, b["title"], f"{ptr}/title", plain_only=True, max_len=2000)
        elif t == "context":
            els = b.get("elements")
            if not isinstance(els, list) or not els or len(els) > 10:
                _err(errs, "elements must be an array of 1 to 10 items", f"{ptr}/elements")
            else:
                for ei, el in enumerate(els):
                    eptr = f"{ptr}/elements/{ei}"
                    if isinstance(el, dict) and el.get("type") == "image":
                        _check_image_ref(errs, el, eptr, file_problem)
                    else:
                        _check_text(errs, el, eptr, max_len=3000)
        elif t == "actions":
            els = b.get("elements")
            if not isinstance(els, list) or not els or len(els) > 25:
                _err(errs, "elements must be an array of 1 to 25 items", f"{ptr}/elements")
            else:
                seen: set[str] = set()
                for ei, el in enumerate(els):
                    _check_element(errs, el, f"{ptr}/elements/{ei}", file_problem)
                    aid = el.get("action_id") if isinstance(el, dict) else None
                    if isinstance(aid, str):
                        if aid in seen:
                            _err(errs, f"duplicate action_id: {aid}", f"{ptr}/elements/{ei}/action_id")
                        seen.add(aid)
        elif t == "input":
            _check_text(errs, b.get("label"), f"{ptr}/label", plain_only=True, max_len=2000)
            if not isinstance(b.get("element"), dict):
                _err(errs, "missing required field: element", f"{ptr}/element")
            else:
                _check_element(errs, b["element"], f"{ptr}/element", file_problem)
            if b.get("hint") is not None:
                _check_text(errs, b["hint"], f"{ptr}/hint", plain_only=True, max_len=2000)
        elif t == "markdown":
            txt = b.get("text")
            if not isinstance(txt, str) or not txt or len(txt) > 12000:
                _err(errs, "text must be 1 to 12000 characters", f"{ptr}/text")
    return errs


# ----------------------------------------------------------------------------------------------
# small helpers
# ----------------------------------------------------------------------------------------------


def _truthy(v: Any) -> bool:
    return v is True or v == 1 or (isinstance(v, str) and v.lower() in ("1", "true", "yes"))


def _s(p: dict, key: str) -> str | None:
    v = p.get(key)
    if v is None or v == "":
        return None
    if isinstance(v, bytes):
        v = v.decode("utf-8", "replace")
    return str(v)


def _json_param(p: dict, key: str, error: str = "invalid_arguments") -> Any:
    v = p.get(key)
    if v is None or v == "":
        return None
    if isinstance(v, (list, dict)):
        return v
    if isinstance(v, bytes):
        v = v.decode("utf-8", "replace")
    try:
        return json.loads(v)
    except (TypeError, ValueError):
        raise _SlackError(error, detail=f"{key} is not valid JSON") from None


def _sniff(data: bytes, filename: str) -> tuple[str, str]:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png", "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg", "jpg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif", "gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp", "webp"
    mime, _ = mimetypes.guess_type(filename or "")
    ext = (filename or "").rsplit(".", 1)[-1].lower() if "." in (filename or "") else ""
    if mime:
        return mime, {"jpeg": "jpg"}.get(ext, ext or "binary")
    return "application/octet-stream", "binary"


def _image_size(data: bytes | None) -> tuple[int, int] | None:
    if not data:
        return None
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            return im.size
    except Exception:
        return None


_LOGIN_PAGE = (
    "<!DOCTYPE html><html lang=\"en-US\"><head><meta charset=\"utf-8\"><title>Slack</title></head>"
    "<body><div id=\"page\"><h1>Sign in to your workspace</h1>"
    "<form id=\"signin_form\" action=\"/\" method=\"post\"><input type=\"email\" name=\"email\">"
    "<input type=\"password\" name=\"password\"><button type=\"submit\">Sign in</button></form>"
    "</div></body></html>"
)


def _channel_type(channel: str) -> str:
    return {"D": "im", "G": "group"}.get(channel[:1], "channel")


# ----------------------------------------------------------------------------------------------
# the fake
# ----------------------------------------------------------------------------------------------


class FakeSlack:
    """An aiohttp server on 127.0.0.1 playing Slack. ``async with FakeSlack() as fake: ...``"""

    def __init__(
        self,
        *,
        bot_token: str = "xoxb-test-token",
        app_token: str = "xapp-test-token",
        signing_secret: str = "test-signing-secret",
        team_id: str = "T0TEST",
        bot_user_id: str = "UBOT",
        bot_id: str = "BBOT",
        share_delay: float = 0.0,
        latency: float = 0.0,
        scopes: list[str] | None = None,
        app_id: str = "A0TEST",
        team_name: str = "Fake Team",
        team_domain: str = "fake",
        trigger_ttl: float = 3.0,
        host: str = "127.0.0.1",
        port: int = 0,
    ):
        self.bot_token = bot_token
        self.app_token = app_token
        self.signing_secret = signing_secret
        self.team_id = team_id
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.share_delay = share_delay
        self.latency = latency  # seconds every Web API call takes
        # A workspace policy on uploads: files.getUploadURLExternal answers this error
        # (file_uploads_disabled, storage_limit_reached, file_upload_size_restricted, ...).
        self.upload_restriction: str | None = None
        self.scopes = list(DEFAULT_SCOPES if scopes is None else scopes)
        self.app_id = app_id
        self.team_name = team_name
        self.team_domain = team_domain
        self.trigger_ttl = trigger_ttl
        self.host = host
        self._port = port

        self.api_url: str = ""
        self.base_url: str = ""

        # observations
        self.messages: list[Message] = []
        self.files: list[UploadedFile] = []
        self.ephemerals: list[Ephemeral] = []
        self.responses: list[ResponsePost] = []
        self.calls: list[tuple[str, dict]] = []
        self.views: list[ViewCall] = []
        self.reactions: list[Reaction] = []
        self.acks: list[SocketAck] = []
        self.downloads: list[Download] = []
        self.upload_posts: list[tuple[str, int]] = []  # (file_id, HTTP status answered)
        self.socket_messages: list[dict] = []  # every JSON message the client sent on the socket
        self.socket_connections_total = 0

        # state
        self._bot_tokens: set[str] = {bot_token}
        self.revoked_tokens: set[str] = set()
        self._channels: dict[str, ChannelInfo] = {}
        self._users: dict[str, UserInfo] = {}
        self._user_files: dict[str, UserFile] = {}
        self._files_by_id: dict[str, UploadedFile] = {}
        self._msg_index: dict[tuple[str, str], Message] = {}
        self._share_index: dict[tuple[str, str], list[UploadedFile]] = {}
        self._faults: dict[str, list[_Fault]] = defaultdict(list)
        self._upload_faults: list[_Fault] = []
        self._download_faults: list[_Fault] = []
        self._holds: dict[str, _Hold] = {}
        self.held: dict[str, int] = defaultdict(int)  # calls currently waiting on a hold
        self._response_urls: dict[str, _ResponseUrl] = {}
        self._triggers: dict[str, tuple[float, str | None, bool]] = {}
        self._open_views: dict[str, dict] = {}
        self._home_views: dict[str, dict] = {}
        self._oauth_codes: dict[str, bool] = {}
        self._ws: list[web.WebSocketResponse] = []
        self._ws_tickets: set[str] = set()
        self._pending_acks: dict[str, asyncio.Future] = {}
        self._seq = itertools.count(1)
        self._tasks: set[asyncio.Task] = set()
        self._runner: web.AppRunner | None = None
        self._stuck: list[_Hold] = []  # holds lifted for new calls while old ones still wait
        self.peer = SlackPeer(self)

        self._handlers: dict[str, Callable[[dict, "_Ctx"], Any]] = {
            "api.test": self._api_test,
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.delete": self._chat_delete,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.getPermalink": self._chat_get_permalink,
            "files.getUploadURLExternal": self._files_get_upload_url,
            "files.completeUploadExternal": self._files_complete_upload,
            "files.info": self._files_info,
            "files.delete": self._files_delete,
            "apps.connections.open": self._apps_connections_open,
            "views.open": self._views_open,
            "views.push": self._views_push,
            "views.update": self._views_update,
            "views.publish": self._views_publish,
            "reactions.add": self._reactions_add,
            "reactions.remove": self._reactions_remove,
            "users.info": self._users_info,
            "conversations.info": self._conversations_info,
            "conversations.join": self._conversations_join,
            "conversations.open": self._conversations_open,
            "conversations.replies": self._conversations_replies,
            "conversations.history": self._conversations_history,
            "oauth.v2.access": self._oauth_v2_access,
        }

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(client_max_size=1024**3)
        app.router.add_route("*", "/api/{method}", self._handle_api)
        app.router.add_post("/upload/{file_id}", self._handle_upload)
        app.router.add_get("/files-pri/{key}/download/{name}", self._handle_private)
        app.router.add_get("/files-pri/{key}/{name}", self._handle_private)
        app.router.add_get("/files-tmb/{key}/{name}", self._handle_private)
        app.router.add_post("/respond/{rid}", self._handle_respond)
        app.router.add_get("/socket", self._handle_socket)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._port)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://{self.host}:{port}"
        self.api_url = f"{self.base_url}/api/"

    async def stop(self) -> None:
        for h in [*self._holds.values(), *self._stuck]:
            h.event.set()
        for t in list(self._tasks):
            t.cancel()
        for fut in self._pending_acks.values():
            if not fut.done():
                fut.cancel()
        for ws in list(self._ws):
            try:
                await asyncio.wait_for(ws.close(code=aiohttp.WSCloseCode.GOING_AWAY), 1.0)
            except Exception:
                pass
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> "FakeSlack":
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()

    # -- workspace setup ------------------------------------------------------------------------

    def set_channel(
        self,
        channel_id: str,
        *,
        member: bool = True,
        private: bool = False,
        is_im: bool = False,
        exists: bool = True,
        name: str | None = None,
        archived: bool = False,
        is_mpim: bool = False,
        thread_only: bool = False,
        read_only: bool = False,
    ) -> ChannelInfo:
        ch = ChannelInfo(
            id=channel_id,
            name=name or f"channel-{channel_id.lower()}",
            member=member or is_im,
            private=private,
            is_im=is_im,
            is_mpim=is_mpim,
            exists=exists,
            archived=archived,
            thread_only=thread_only,
            read_only=read_only,
        )
        self._channels[channel_id] = ch
        return ch

    def channel_info(self, channel_id: str) -> ChannelInfo:
        ch = self._channels.get(channel_id)
        if ch is None:
            ch = ChannelInfo(
                id=channel_id,
                name="general" if channel_id == "C1" else f"channel-{channel_id.lower()}",
                private=channel_id.startswith("G"),
                is_im=channel_id.startswith("D"),
            )
            self._channels[channel_id] = ch
        return ch

    def set_user(
        self,
        user_id: str,
        *,
        is_admin: bool = False,
        is_owner: bool = False,
        name: str | None = None,
        is_bot: bool = False,
        exists: bool = True,
        tz: str = "Europe/London",
    ) -> UserInfo:
        u = UserInfo(
            id=user_id,
            name=name or f"user-{user_id.lower()}",
            is_admin=is_admin,
            is_owner=is_owner,
            is_bot=is_bot,
            exists=exists,
            tz=tz,
        )
        self._users[user_id] = u
        return u

    def add_bot_token(self, token: str) -> None:
        """Accept another bot token (e.g. one handed out by oauth.v2.access)."""
        self._bot_tokens.add(token)

    def revoke_token(self, token: str) -> None:
        """Calls with this token answer `token_revoked` from now on."""
        self.revoked_tokens.add(token)

    def new_oauth_code(self) -> str:
        """A code that oauth.v2.access will exchange (once) for the bot token."""
        code = f"{secrets.randbelow(10**12)}.{secrets.token_hex(16)}"
        self._oauth_codes[code] = False
        return code

    def register_trigger(self, trigger_id: str, user_id: str | None = None) -> None:
        """Make views.open accept this trigger id (for the next `trigger_ttl` seconds, once)."""
        self._triggers[trigger_id] = (time.monotonic(), user_id, False)

    def new_trigger(self, user_id: str | None = None) -> str:
        tid = new_trigger_id()
        self.register_trigger(tid, user_id)
        return tid

    def add_user_file(
        self,
        content: bytes | None = None,
        *,
        name: str,
        mimetype: str,
        filetype: str | None = None,
        user: str = "U1",
        mode: str = "hosted",
        stream_size: int | None = None,
        title: str | None = None,
        hide_size: bool = False,
    ) -> dict:
        """Register a user's file; return the file object as it appears in a message event.

        With ``stream_size`` the bytes are generated on the fly when downloaded (see
        `pattern_bytes` / `iter_pattern`) and never held in memory. ``mode="file_access"`` returns
        the Slack Connect stub (id + ``file_access: "check_file_info"``); files.info gives the rest.
        """
        if content is None and stream_size is None:
            raise ValueError("give content or stream_size")
        fid = _new_id("F")
        uf = UserFile(
            id=fid,
            name=name,
            title=title or name,
            mimetype=mimetype,
            filetype=filetype or (name.rsplit(".", 1)[-1].lower() if "." in name else "binary"),
            user=user,
            mode=mode,
            content=content,
            stream_size=stream_size,
            created=int(time.time()),
            hide_size=hide_size,
        )
        self._user_files[fid] = uf
        if mode == "file_access":
            return {
                "id": fid,
                "mode": "file_access",
                "file_access": "check_file_info",
                "created": 0,
                "timestamp": 0,
                "user": "",
            }
        return self._user_file_obj(uf)

    def add_user_message(
        self,
        channel: str,
        text: str = "",
        *,
        user: str = "U1",
        thread_ts: str | None = None,
        files: list[dict] | None = None,
        ts: str | None = None,
        blocks: list | None = None,
    ) -> Message:
        """Record a message posted by a user (so the bot can reply in its thread / react...)."""
        ts = ts or next_ts()
        if thread_ts == ts:
            thread_ts = None
        existing = self._msg_index.get((channel, ts))
        if existing is not None:
            return existing
        if thread_ts and not self._is_thread_parent(channel, thread_ts):
            self.add_user_message(channel, "", user=user, ts=thread_ts)
        m = Message(
            channel=channel,
            ts=ts,
            text=text,
            blocks=blocks,
            thread_ts=thread_ts,
            user=user,
            team=self.team_id,
            file_ids=[f["id"] for f in files or [] if isinstance(f, dict) and "id" in f],
            seq=next(self._seq),
        )
        m.history.append((text, blocks))
        self._add_message(m)
        return m

    # -- fault injection ------------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        *,
        error: str | None = None,
        status: int = 200,
        retry_after: int | None = None,
        count: int = 1,
        after_effect: bool = False,
    ) -> None:
        """The next `count` calls of `method` fail without side effects (with `after_effect`:
        the call takes effect, and the answer is the error all the same).

        status 429 -> HTTP 429 (+ ``Retry-After`` when retry_after is given), body error
        ``ratelimited``; 5xx -> that status with a JSON error body; 200 -> ``ok: false`` `error`.
        """
        if error is None:
            error = "ratelimited" if status == 429 else ("internal_error" if status >= 500 else "fatal_error")
        self._faults[method].append(_Fault(status, error, retry_after, count, after_effect))

    def fail_upload_next(self, status: int = 500, count: int = 1) -> None:
        """The next `count` POSTs to an upload URL answer `status` and store nothing."""
        self._upload_faults.append(_Fault(status, None, None, count))

    def fail_download_next(self, status: int = 500, count: int = 1) -> None:
        """The next `count` url_private downloads answer `status`."""
        self._download_faults.append(_Fault(status, None, None, count))

    def hold(self, method: str, *, after_effect: bool = False) -> asyncio.Event:
        """Calls of `method` wait until the returned event is set (see `release`).

        after_effect=False: wait before doing anything; True: perform the effect, then wait
        before answering. ``"upload"`` holds the upload-URL POSTs.
        """
        ev = asyncio.Event()
        self._holds[method] = _Hold(ev, after_effect)
        return ev

    def release(self, method: str) -> None:
        h = self._holds.pop(method, None)
        if h is not None:
            h.event.set()

    def unhold(self, method: str) -> None:
        """Stop holding new calls of `method`; calls already waiting stay stuck (as a request
        from a client that died and that the server never processed) until the fake stops."""
        h = self._holds.pop(method, None)
        if h is not None:
            self._stuck.append(h)

    async def _wait_hold(self, method: str, h: _Hold) -> None:
        self.held[method] += 1
        try:
            await h.event.wait()
        finally:
            self.held[method] -= 1

    def _take_fault(self, faults: list[_Fault]) -> _Fault | None:
        if not faults:
            return None
        f = faults[0]
        f.count -= 1
        if f.count <= 0:
            faults.pop(0)
        return f

    # -- observation helpers --------------------------------------------------------------------

    def top_level(self, channel: str) -> list[Message]:
        """Top-level, not deleted messages of a channel (the bot's and recorded users'), in order."""
        return [m for m in self.messages if m.channel == channel and not m.deleted and not m.is_reply]

    def thread(self, channel: str, thread_ts: str) -> list[Message | UploadedFile]:
        """Replies (messages and shared files) in a thread, in order, parent excluded."""
        items: list[Any] = [
            m
            for m in self.messages
            if m.channel == channel and m.thread_ts == thread_ts and m.ts != thread_ts and not m.deleted
        ]
        items += self.files_in_thread(channel, thread_ts)
        items.sort(key=lambda x: x.seq)
        return items

    def files_in_thread(self, channel: str, thread_ts: str) -> list[UploadedFile]:
        return [
            f for f in self.files if f.shared and channel in f.channels and f.thread_ts == thread_ts
        ]

    def message(self, channel: str, ts: str) -> Message | None:
        return self._msg_index.get((channel, ts))

    def bot_messages(self, channel: str | None = None) -> list[Message]:
        return [m for m in self.messages if m.is_bot and (channel is None or m.channel == channel)]

    def file(self, file_id: str) -> UploadedFile | None:
        return self._files_by_id.get(file_id)

    def reactions_on(self, channel: str, ts: str) -> list[str]:
        current: list[str] = []
        for r in self.reactions:
            if r.channel == channel and r.ts == ts:
                if r.action == "added":
                    current.append(r.name)
                elif r.name in current:
                    current.remove(r.name)
        return current

    def home_view(self, user_id: str) -> dict | None:
        return self._home_views.get(user_id)

    def open_view(self, view_id: str) -> dict | None:
        return self._open_views.get(view_id)

    def count_calls(self, method: str) -> int:
        return sum(1 for m, _ in self.calls if m == method)

    def calls_to(self, method: str) -> list[dict]:
        return [p for m, p in self.calls if m == method]

    async def wait_for(
        self,
        predicate: Callable[[], Any],
        timeout: float = 5.0,
        *,
        interval: float = 0.005,
        message: str | None = None,
    ) -> Any:
        """Poll `predicate` (sync or async) until truthy; return its value; AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            v = predicate()
            if inspect.isawaitable(v):
                v = await v
            if v:
                return v
            if time.monotonic() >= deadline:
                raise AssertionError(message or f"condition not met within {timeout}s: {predicate!r}")
            await asyncio.sleep(interval)

    # -- response_url ---------------------------------------------------------------------------

    def new_response_url(self, channel: str | None = None, message_ts: str | None = None) -> str:
        """A response_url on this server (5 uses). Bound to a channel / message when given, so
        ``replace_original`` / ``delete_original`` / ``in_channel`` act on them."""
        rid = uuid.uuid4().hex
        self._response_urls[rid] = _ResponseUrl(rid, channel, message_ts)
        return f"{self.base_url}/respond/{rid}"

    def expire_response_url(self, url: str) -> None:
        rid = url.rstrip("/").rsplit("/", 1)[-1]
        if rid in self._response_urls:
            self._response_urls[rid].expired = True

    # -- internal: messages and files -----------------------------------------------------------

    def _add_message(self, m: Message) -> None:
        self.messages.append(m)
        self._msg_index[(m.channel, m.ts)] = m

    def _is_thread_parent(self, channel: str, ts: str) -> bool:
        m = self._msg_index.get((channel, ts))
        if m is not None:
            return not m.deleted and not m.is_reply
        return (channel, ts) in self._share_index

    def _message_exists(self, channel: str, ts: str) -> bool:
        m = self._msg_index.get((channel, ts))
        if m is not None:
            return not m.deleted
        return (channel, ts) in self._share_index or any(
            f.shared and f.share_ts == ts and channel in f.channels for f in self.files
        )

    def _dm_for_user(self, user: str) -> ChannelInfo:
        cid = "D" + user[1:]
        ch = self._channels.get(cid)
        if ch is None:
            ch = ChannelInfo(id=cid, name=cid, is_im=True, user=user)
            self._channels[cid] = ch
        return ch

    def _channel(self, cid: str | None, *, need_member: bool = True, for_write: bool = True) -> ChannelInfo:
        if not cid:
            raise _SlackError("channel_not_found")
        if cid[:1] in ("U", "W"):
            return self._dm_for_user(cid)
        ch = self.channel_info(cid)
        if not ch.exists:
            raise _SlackError("channel_not_found")
        if need_member and not ch.member:
            if ch.private:
                raise _SlackError("channel_not_found")
            raise _SlackError("not_in_channel")
        if for_write and ch.archived:
            raise _SlackError("is_archived")
        return ch

    def _slack_file_problem(self, sf: dict) -> str | None:
        fid = sf.get("id")
        if not fid and sf.get("url"):
            url = str(sf["url"])
            for f in self.files:
                if url in (self._url_private(f.id, f.filename), self._url_private(f.id, f.filename, True)):
                    fid = f.id
                    break
            for uf in self._user_files.values():
                if url in (self._url_private(uf.id, uf.name), self._url_private(uf.id, uf.name, True)):
                    fid = uf.id
                    break
        if not fid:
            return "unknown file"
        if fid in self._user_files:
            return None
        uploaded = self._files_by_id.get(fid)
        if uploaded is None:
            return f"unknown file {fid}"
        if not uploaded.shared:
            return f"file {fid} is not shared yet"
        return None

    def _check_blocks(self, blocks: Any, *, max_blocks: int = 50) -> None:
        if blocks is None:
            return
        if not isinstance(blocks, list):
            raise _SlackError("invalid_blocks_format")
        errs = validate_blocks(blocks, max_blocks=max_blocks, file_problem=self._slack_file_problem)
        if errs:
            raise _SlackError("invalid_blocks", messages=errs, errors=errs)

    def _blocks_param(self, p: dict) -> list | None:
        return _json_param(p, "blocks", "invalid_blocks_format")

    def _url_private(self, fid: str, name: str, download: bool = False) -> str:
        mid = "/download" if download else ""
        return f"{self.base_url}/files-pri/{self.team_id}-{fid}{mid}/{quote(name)}"

    def _file_common(
        self,
        *,
        fid: str,
        name: str,
        title: str | None,
        mimetype: str,
        filetype: str,
        user: str | None,
        size: int,
        created: int,
        content: bytes | None,
    ) -> dict:
        d: dict[str, Any] = {
            "id": fid,
            "created": created,
            "timestamp": created,
            "name": name,
            "title": title or name,
            "mimetype": mimetype,
            "filetype": filetype,
            "pretty_type": filetype.upper(),
            "user": user,
            "user_team": self.team_id,
            "editable": False,
            "size": size,
            "mode": "hosted",
            "is_external": False,
            "external_type": "",
            "is_public": True,
            "public_url_shared": False,
            "display_as_bot": False,
            "username": "",
            "url_private": self._url_private(fid, name),
            "url_private_download": self._url_private(fid, name, True),
            "media_display_type": "unknown",
            "permalink": f"{PERMALINK_HOST}/files/{user}/{fid}/{quote(name)}",
            "permalink_public": f"{PERMALINK_HOST}/{self.team_id}-{fid}-{secrets.token_hex(5)}",
            "is_starred": False,
            "has_rich_preview": False,
            "file_access": "visible",
            "comments_count": 0,
        }
        if mimetype.startswith("image/"):
            stem = name.rsplit(".", 1)[0] if "." in name else name
            for px in (64, 360, 480, 720):
                d[f"thumb_{px}"] = f"{self.base_url}/files-tmb/{self.team_id}-{fid}-t/{quote(stem)}_{px}.{filetype}"
            dims = _image_size(content)
            if dims:
                d["original_w"], d["original_h"] = dims
        return d

    def _user_file_obj(self, uf: UserFile) -> dict:
        obj = self._file_common(
            fid=uf.id,
            name=uf.name,
            title=uf.title,
            mimetype=uf.mimetype,
            filetype=uf.filetype,
            user=uf.user,
            size=uf.size,
            created=uf.created,
            content=uf.content,
        )
        if uf.hide_size:
            obj.pop("size", None)
        return obj

    def _uploaded_file_obj(self, f: UploadedFile) -> dict:
        d = self._file_common(
            fid=f.id,
            name=f.filename,
            title=f.title,
            mimetype=f.mimetype,
            filetype=f.filetype,
            user=f.user,
            size=f.size,
            created=f.created,
            content=f.content,
        )
        if f.alt_txt:
            d["alt_txt"] = f.alt_txt
        shares: dict[str, dict[str, list]] = {}
        chans: list[str] = []
        groups: list[str] = []
        ims: list[str] = []
        if f.shared:
            for cid in f.channels:
                ch = self.channel_info(cid)
                private = ch.private or ch.is_im or ch.is_mpim
                entry: dict[str, Any] = {
                    "reply_users": [],
                    "reply_users_count": 0,
                    "reply_count": 0,
                    "ts": f.share_ts,
                    "channel_name": ch.name,
                    "team_id": self.team_id,
                    "share_user_id": f.user,
                    "source": "UNKNOWN",
                    "is_silent_share": False,
                }
                if f.thread_ts:
                    entry["thread_ts"] = f.thread_ts
                shares.setdefault("private" if private else "public", {}).setdefault(cid, []).append(entry)
                (ims if ch.is_im else groups if private else chans).append(cid)
        d["shares"] = shares
        d["channels"] = chans
        d["groups"] = groups
        d["ims"] = ims
        d["is_public"] = bool(chans)
        return d

    def _share(self, batch: list[UploadedFile], chans: list[ChannelInfo], thread_ts: str | None) -> None:
        ts = next_ts()
        seq = next(self._seq)
        for f in batch:
            f.shared = True
            f.channel = chans[0].id
            f.channels = [c.id for c in chans]
            f.thread_ts = thread_ts
            f.share_ts = ts
            f.seq = seq
        if thread_ts is None:
            for c in chans:
                self._share_index[(c.id, ts)] = batch

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- HTTP: Web API --------------------------------------------------------------------------

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        headers = {"x-oauth-scopes": ",".join(self.scopes), "x-slack-req-id": uuid.uuid4().hex}
        try:
            params, ctx = await self._read_params(request)
        except _SlackError as e:
            self.calls.append((method, {}))
            return web.json_response({"ok": False, "error": e.error, **e.extra}, headers=headers)
        self.calls.append((method, dict(params)))

        if self.latency > 0:
            await asyncio.sleep(self.latency)
        h = self._holds.get(method)
        if h is not None and not h.after_effect:
            await self._wait_hold(method, h)

        fault = self._take_fault(self._faults.get(method, []))
        if fault is not None and not fault.after_effect:
            return self._fault_response(fault, headers)

        try:
            handler = self._handlers.get(method)
            if handler is None:
                raise _SlackError("unknown_method", req_method=method)
            self._check_auth(method, ctx.token)
            result = handler(params, ctx)
            if inspect.isawaitable(result):
                result = await result
            body = {"ok": True, **(result or {})}
        except _SlackError as e:
            body = {"ok": False, "error": e.error, **e.extra}

        if h is not None and h.after_effect:
            await self._wait_hold(method, h)
        if fault is not None:
            return self._fault_response(fault, headers)
        return web.json_response(body, headers=headers)

    @staticmethod
    def _fault_response(fault: _Fault, headers: dict) -> web.Response:
        if fault.retry_after is not None:
            headers["Retry-After"] = str(fault.retry_after)
        return web.json_response({"ok": False, "error": fault.error}, status=fault.status, headers=headers)

    async def _read_params(self, request: web.Request) -> tuple[dict, "_Ctx"]:
        params: dict[str, Any] = dict(request.query)
        if request.method == "POST" and request.body_exists:
            ct = request.content_type
            if ct == "application/json":
                raw = await request.read()
                if raw.strip():
                    try:
                        data = json.loads(raw)
                    except ValueError:
                        raise _SlackError("invalid_json") from None
                    if not isinstance(data, dict):
                        raise _SlackError("invalid_json")
                    params.update(data)
            elif ct in ("application/x-www-form-urlencoded", "multipart/form-data"):
                form = await request.post()
                for k, v in form.items():
                    if isinstance(v, web.FileField):
                        v = v.file.read()
                    params[k] = v
            else:
                await request.read()
        token = None
        auth = request.headers.get("Authorization", "")
        if auth[:7].lower() == "bearer ":
            token = auth[7:].strip()
        tok_param = params.pop("token", None)
        if token is None and tok_param:
            token = str(tok_param)
        return params, _Ctx(token=token, headers=request.headers)

    def _check_auth(self, method: str, token: str | None) -> None:
        if method in ("oauth.v2.access", "api.test"):
            return
        if not token:
            raise _SlackError("not_authed")
        if token in self.revoked_tokens:
            raise _SlackError("token_revoked")
        if method == "apps.connections.open":
            if token == self.app_token:
                return
            if token in self._bot_tokens:
                raise _SlackError("not_allowed_token_type")
            raise _SlackError("invalid_auth")
        if token in self._bot_tokens:
            return
        if token == self.app_token:
            raise _SlackError("not_allowed_token_type")
        raise _SlackError("invalid_auth")

    # -- Web API methods ------------------------------------------------------------------------

    def _api_test(self, p: dict, ctx: "_Ctx") -> dict:
        if p.get("error"):
            raise _SlackError(str(p["error"]))
        return {"args": p}

    def _auth_test(self, p: dict, ctx: "_Ctx") -> dict:
        return {
            "url": f"{PERMALINK_HOST}/",
            "team": self.team_name,
            "user": "lumabot",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _chat_post_message(self, p: dict, ctx: "_Ctx") -> dict:
        ch = self._channel(_s(p, "channel"))
        text = p.get("text")
        text = None if text is None else str(text)
        blocks = self._blocks_param(p)
        attachments = _json_param(p, "attachments")
        if not text and not blocks and not attachments:
            raise _SlackError("no_text")
        if text and len(text) > 40000:
            raise _SlackError("msg_too_long")
        self._check_blocks(blocks)
        thread_ts = _s(p, "thread_ts")
        if ch.read_only:
            raise _SlackError("restricted_action_read_only_channel")
        if ch.thread_only and not thread_ts:
            raise _SlackError("restricted_action_thread_only_channel")
        if thread_ts and not self._is_thread_parent(ch.id, thread_ts):
            raise _SlackError("thread_not_found")
        m = Message(
            channel=ch.id,
            ts=next_ts(),
            text=text,
            blocks=blocks,
            thread_ts=thread_ts,
            user=self.bot_user_id,
            bot_id=self.bot_id,
            app_id=self.app_id,
            team=self.team_id,
            reply_broadcast=_truthy(p.get("reply_broadcast")),
            attachments=attachments,
            metadata=_json_param(p, "metadata"),
            params=dict(p),
            seq=next(self._seq),
        )
        m.history.append((text, blocks))
        self._add_message(m)
        return {"channel": ch.id, "ts": m.ts, "message": m.to_dict()}

    def _chat_update(self, p: dict, ctx: "_Ctx") -> dict:
        ch = self._channel(_s(p, "channel"), need_member=False)
        ts = _s(p, "ts")
        m = self._msg_index.get((ch.id, ts or ""))
        if m is None or m.deleted:
            raise _SlackError("message_not_found")
        if m.bot_id != self.bot_id:
            raise _SlackError("cant_update_message")
        has_text = "text" in p and p.get("text") is not None
        has_blocks = "blocks" in p and p.get("blocks") is not None
        if not has_text and not has_blocks and not p.get("attachments"):
            raise _SlackError("no_text")
        blocks = self._blocks_param(p) if has_blocks else m.blocks
        if has_blocks and blocks is None:
            blocks = []
        if has_blocks:
            self._check_blocks(blocks)
        text = str(p.get("text")) if has_text else m.text
        if text and len(text) > 40000:
            raise _SlackError("msg_too_long")
        m.text = text
        m.blocks = blocks
        if p.get("attachments"):
            m.attachments = _json_param(p, "attachments")
        m.history.append((text, blocks))
        return {"channel": ch.id, "ts": m.ts, "text": text or "", "message": m.to_dict()}

    def _chat_delete(self, p: dict, ctx: "_Ctx") -> dict:
        ch = self._channel(_s(p, "channel"), need_member=False)
        ts = _s(p, "ts")
        m = self._msg_index.get((ch.id, ts or ""))
        if m is None or m.deleted:
            raise _SlackError("message_not_found")
        if m.bot_id != self.bot_id:
            raise _SlackError("cant_delete_message")
        m.deleted = True
        return {"channel": ch.id, "ts": m.ts}

    def _files_delete(self, p: dict, ctx: "_Ctx") -> dict:
        f = self._files_by_id.get(_s(p, "file") or "")
        if f is None or f.deleted:
            raise _SlackError("file_not_found")
        if f.user not in (None, self.bot_user_id):
            raise _SlackError("cant_delete_file")
        f.deleted, f.shared = True, False
        return {}

    def _chat_post_ephemeral(self, p: dict, ctx: "_Ctx") -> dict:
        ch = self._channel(_s(p, "channel"))
        user = _s(p, "user")
        if not user:
            raise _SlackError("user_not_found")
        u = self._users.get(user)
        if u is not None and not u.exists:
            raise _SlackError("user_not_found")
        text = p.get("text")
        text = None if text is None else str(text)
        blocks = self._blocks_param(p)
        if not text and not blocks and not p.get("attachments"):
            raise _SlackError("no_text")
        self._check_blocks(blocks)
        mts = next_ts()
        self.ephemerals.append(
            Ephemeral(
                channel=ch.id,
                user=user,
                text=text,
                blocks=blocks,
                thread_ts=_s(p, "thread_ts"),
                message_ts=mts,
                params=dict(p),
            )
        )
        return {"message_ts": mts}

    def _chat_get_permalink(self, p: dict, ctx: "_Ctx") -> dict:
        ch = self._channel(_s(p, "channel"), need_member=False)
        ts = _s(p, "message_ts")
        if not ts or not self._message_exists(ch.id, ts):
            raise _SlackError("message_not_found")
        link = f"{PERMALINK_HOST}/archives/{ch.id}/p{ts.replace('.', '')}"
        m = self._msg_index.get((ch.id, ts))
        if m is not None and m.is_reply:
            link += f"?thread_ts={m.thread_ts}&cid={ch.id}"
        return {"channel": ch.id, "permalink": link}

    def _files_get_upload_url(self, p: dict, ctx: "_Ctx") -> dict:
        if self.upload_restriction:
            raise _SlackError(self.upload_restriction)
        filename = _s(p, "filename")
        if not filename:
            raise _SlackError("invalid_arguments", detail="filename is required")
        try:
            length = int(p.get("length"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise _SlackError("invalid_arguments", detail="length must be an integer") from None
        if length <= 0:
            raise _SlackError("invalid_arguments", detail="length must be positive")
        fid = _new_id("F")
        f = UploadedFile(
            id=fid,
            filename=filename,
            title=None,
            alt_txt=_s(p, "alt_txt"),
            length=length,
            snippet_type=_s(p, "snippet_type"),
            user=self.bot_user_id,
            created=int(time.time()),
        )
        f.mimetype, f.filetype = _sniff(b"", filename)
        self.files.append(f)
        self._files_by_id[fid] = f
        return {"upload_url": f"{self.base_url}/upload/{fid}", "file_id": fid}

    def _files_complete_upload(self, p: dict, ctx: "_Ctx") -> dict:
        items = _json_param(p, "files")
        if not isinstance(items, list) or not items or not all(isinstance(i, dict) and i.get("id") for i in items):
            raise _SlackError("invalid_arguments", detail="files must be a JSON array of {id, title}")
        batch: list[UploadedFile] = []
        for it in items:
            f = self._files_by_id.get(str(it["id"]))
            if f is None:
                raise _SlackError("file_not_found", detail=f"unknown file id {it['id']}")
            if not f.uploaded:
                raise _SlackError("file_not_found", detail=f"no bytes were uploaded for {f.id}")
            if f.completed:
                raise _SlackError("already_completed", detail=f"{f.id} was already completed")
            batch.append(f)
        targets: list[str] = []
        if _s(p, "channel_id"):
            targets = [str(_s(p, "channel_id"))]
        elif _s(p, "channels"):
            targets = [c.strip() for c in str(_s(p, "channels")).split(",") if c.strip()]
        thread_ts = _s(p, "thread_ts")
        if thread_ts and len(targets) != 1:
            raise _SlackError("invalid_arguments", detail="thread_ts needs exactly one channel")
        chans = [self._channel(c) for c in targets]
        if thread_ts and not self._is_thread_parent(chans[0].id, thread_ts):
            raise _SlackError("invalid_thread_ts")
        initial_comment = _s(p, "initial_comment")
        for it, f in zip(items, batch):
            f.completed = True
            f.title = it.get("title") or f.title or f.filename
            f.initial_comment = initial_comment
        if chans:
            if self.share_delay > 0:

                async def later() -> None:
                    await asyncio.sleep(self.share_delay)
                    self._share(batch, chans, thread_ts)

                self._spawn(later())
            else:
                self._share(batch, chans, thread_ts)
        return {"files": [{"id": f.id, "title": f.title} for f in batch]}

    def _files_info(self, p: dict, ctx: "_Ctx") -> dict:
        fid = _s(p, "file")
        if not fid:
            raise _SlackError("file_not_found")
        uf = self._user_files.get(fid)
        if uf is not None:
            obj = self._user_file_obj(uf)
        else:
            f = self._files_by_id.get(fid)
            if f is None or not f.completed:
                raise _SlackError("file_not_found")
            obj = self._uploaded_file_obj(f)
        return {"file": obj, "comments": [], "response_metadata": {"next_cursor": ""}}

    def _apps_connections_open(self, p: dict, ctx: "_Ctx") -> dict:
        ticket = uuid.uuid4().hex
        self._ws_tickets.add(ticket)
        ws_base = self.base_url.replace("http://", "ws://", 1)
        return {"url": f"{ws_base}/socket?ticket={ticket}&app_id={self.app_id}"}

    # views

    def _consume_trigger(self, trigger_id: str | None) -> str | None:
        if not trigger_id:
            raise _SlackError("invalid_arguments", detail="trigger_id is required")
        t = self._triggers.get(trigger_id)
        if t is None:
            raise _SlackError("invalid_trigger_id")
        issued, user, used = t
        if used:
            raise _SlackError("exchanged_trigger_id")
        if time.monotonic() - issued > self.trigger_ttl:
            raise _SlackError("expired_trigger_id")
        self._triggers[trigger_id] = (issued, user, True)
        return user

    def _check_view(self, view: Any, kinds: tuple[str, ...]) -> dict:
        if not isinstance(view, dict):
            raise _SlackError("invalid_arguments", messages=["[ERROR] missing required field: view"])
        errs: list[str] = []
        vt = view.get("type")
        if vt not in kinds:
            _err(errs, f"must be one of {list(kinds)}", "/view/type")
        blocks = view.get("blocks")
        if not isinstance(blocks, list):
            _err(errs, "missing required field: blocks", "/view/blocks")
        else:
            for e in validate_blocks(blocks, max_blocks=100, file_problem=self._slack_file_problem):
                errs.append(e.replace("[json-pointer:/blocks", "[json-pointer:/view/blocks"))
        if vt == "modal":
            _check_text(errs, view.get("title"), "/view/title", plain_only=True, max_len=24)
            for k in ("submit", "close"):
                if view.get(k) is not None:
                    _check_text(errs, view[k], f"/view/{k}", plain_only=True, max_len=24)
            if isinstance(blocks, list) and any(isinstance(b, dict) and b.get("type") == "input" for b in blocks):
                if view.get("submit") is None:
                    _err(errs, "must provide a submit property when using input blocks", "/view/submit")
        pm = view.get("private_metadata")
        if pm is not None and (not isinstance(pm, str) or len(pm) > 3000):
            _err(errs, "must be less than 3001 characters", "/view/private_metadata")
        cb = view.get("callback_id")
        if cb is not None and (not isinstance(cb, str) or len(cb) > 255):
            _err(errs, "must be less than 256 characters", "/view/callback_id")
        if errs:
            raise _SlackError("invalid_arguments", messages=errs)
        return view

    def _stored_view(self, view: dict, vid: str, root: str | None = None, previous: str | None = None) -> dict:
        return {
            "id": vid,
            "team_id": self.team_id,
            "type": view.get("type"),
            "blocks": view.get("blocks", []),
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "state": {"values": {}},
            "hash": f"{int(time.time())}.{secrets.token_hex(4)}",
            "title": view.get("title"),
            "clear_on_close": bool(view.get("clear_on_close", False)),
            "notify_on_close": bool(view.get("notify_on_close", False)),
            "close": view.get("close"),
            "submit": view.get("submit"),
            "previous_view_id": previous,
            "root_view_id": root or vid,
            "app_id": self.app_id,
            "external_id": view.get("external_id", ""),
            "app_installed_team_id": self.team_id,
            "bot_id": self.bot_id,
        }

    def _views_open(self, p: dict, ctx: "_Ctx") -> dict:
        trigger_id = _s(p, "trigger_id")
        view = self._check_view(_json_param(p, "view"), ("modal",))
        user = self._consume_trigger(trigger_id)
        vid = _new_id("V")
        stored = self._stored_view(view, vid)
        self._open_views[vid] = stored
        self.views.append(ViewCall("views.open", vid, stored, user, trigger_id))
        return {"view": stored}

    def _views_push(self, p: dict, ctx: "_Ctx") -> dict:
        trigger_id = _s(p, "trigger_id")
        view = self._check_view(_json_param(p, "view"), ("modal",))
        user = self._consume_trigger(trigger_id)
        vid = _new_id("V")
        stored = self._stored_view(view, vid)
        self._open_views[vid] = stored
        self.views.append(ViewCall("views.push", vid, stored, user, trigger_id))
        return {"view": stored}

    def _views_update(self, p: dict, ctx: "_Ctx") -> dict:
        vid = _s(p, "view_id")
        ext = _s(p, "external_id")
        current = None
        if vid:
            current = self._open_views.get(vid)
        elif ext:
            current = next((v for v in self._open_views.values() if v.get("external_id") == ext), None)
        else:
            raise _SlackError("invalid_arguments", detail="view_id or external_id is required")
        if current is None:
            raise _SlackError("not_found")
        h = _s(p, "hash")
        if h and h != current["hash"]:
            raise _SlackError("hash_conflict")
        view = self._check_view(_json_param(p, "view"), ("modal",))
        stored = self._stored_view(view, current["id"], current["root_view_id"], current["previous_view_id"])
        self._open_views[current["id"]] = stored
        self.views.append(ViewCall("views.update", current["id"], stored))
        return {"view": stored}

    def _views_publish(self, p: dict, ctx: "_Ctx") -> dict:
        user = _s(p, "user_id")
        if not user:
            raise _SlackError("invalid_arguments", detail="user_id is required")
        u = self._users.get(user)
        if u is not None and not u.exists:
            raise _SlackError("user_not_found")
        view = self._check_view(_json_param(p, "view"), ("home",))
        current = self._home_views.get(user)
        h = _s(p, "hash")
        if h and current is not None and h != current["hash"]:
            raise _SlackError("hash_conflict")
        vid = current["id"] if current else _new_id("V")
        stored = self._stored_view(view, vid)
        self._home_views[user] = stored
        self.views.append(ViewCall("views.publish", vid, stored, user))
        return {"view": stored}

    # reactions

    def _reaction_target(self, p: dict) -> tuple[str, str, str]:
        ch = self._channel(_s(p, "channel"))
        ts = _s(p, "timestamp")
        name = _s(p, "name")
        if not name or ":" in name or " " in name:
            raise _SlackError("invalid_name")
        if not ts or not self._message_exists(ch.id, ts):
            raise _SlackError("message_not_found")
        return ch.id, ts, name

    def _reactions_add(self, p: dict, ctx: "_Ctx") -> dict:
        cid, ts, name = self._reaction_target(p)
        if name in self.reactions_on(cid, ts):
            raise _SlackError("already_reacted")
        self.reactions.append(Reaction(cid, ts, name, self.bot_user_id, "added"))
        return {}

    def _reactions_remove(self, p: dict, ctx: "_Ctx") -> dict:
        cid, ts, name = self._reaction_target(p)
        if name not in self.reactions_on(cid, ts):
            raise _SlackError("no_reaction")
        self.reactions.append(Reaction(cid, ts, name, self.bot_user_id, "removed"))
        return {}

    # users / conversations

    def _users_info(self, p: dict, ctx: "_Ctx") -> dict:
        uid = _s(p, "user")
        if not uid:
            raise _SlackError("user_not_found")
        u = self._users.get(uid)
        if u is None:
            if uid == self.bot_user_id:
                u = UserInfo(id=uid, name="lumabot", is_bot=True)
            else:
                u = UserInfo(id=uid, name=f"user-{uid.lower()}")
        if not u.exists:
            raise _SlackError("user_not_found")
        return {"user": u.to_dict(self.team_id)}

    def _conversations_info(self, p: dict, ctx: "_Ctx") -> dict:
        cid = _s(p, "channel")
        if not cid:
            raise _SlackError("channel_not_found")
        ch = self._dm_for_user(cid) if cid[:1] in ("U", "W") else self.channel_info(cid)
        if not ch.exists or (ch.private and not ch.member):
            raise _SlackError("channel_not_found")
        return {"channel": ch.to_dict(self.team_id)}

    def _conversations_join(self, p: dict, ctx: "_Ctx") -> dict:
        ch = self._channel(_s(p, "channel"), need_member=False)
        if ch.private or ch.is_im or ch.is_mpim:
            raise _SlackError("method_not_supported_for_channel_type")
        ch.member = True
        return {"channel": ch.to_dict(self.team_id)}

    def _conversations_open(self, p: dict, ctx: "_Ctx") -> dict:
        users = _s(p, "users")
        if _s(p, "channel"):
            ch = self._channel(_s(p, "channel"), need_member=False, for_write=False)
        elif users:
            ch = self._dm_for_user(users.split(",")[0].strip())
        else:
            raise _SlackError("users_list_not_supplied")
        return {"channel": {"id": ch.id}}

    def _message_dict_with_files(self, m: Message, metadata: bool = False) -> dict:
        d = m.to_dict()
        if not metadata:
            d.pop("metadata", None)  # Slack returns it only with include_all_metadata=true
        if m.file_ids:
            d["files"] = [
                self._user_file_obj(self._user_files[i]) for i in m.file_ids if i in self._user_files
            ]
        return d

    def _conversations_replies(self, p: dict, ctx: "_Ctx") -> dict:
        ch = self._channel(_s(p, "channel"), for_write=False)
        ts = _s(p, "ts")
        if not ts or not self._message_exists(ch.id, ts):
            raise _SlackError("thread_not_found")
        parent = self._msg_index.get((ch.id, ts))
        root = parent.thread_ts if parent is not None and parent.is_reply else ts
        out: list[dict] = []
        meta = _truthy(p.get("include_all_metadata"))
        pm = self._msg_index.get((ch.id, root))  # type: ignore[arg-type]
        if pm is not None and not pm.deleted:
            out.append(self._message_dict_with_files(pm, meta))
        for it in self.thread(ch.id, root):  # type: ignore[arg-type]
            if isinstance(it, Message):
                out.append(self._message_dict_with_files(it, meta))
            else:
                out.append(
                    {
                        "type": "message",
                        "ts": it.share_ts,
                        "thread_ts": it.thread_ts,
                        "user": it.user,
                        "bot_id": self.bot_id,
                        "text": it.initial_comment or "",
                        "files": [self._uploaded_file_obj(it)],
                    }
                )
        return {"messages": out, "has_more": False, "response_metadata": {"next_cursor": ""}}

    def _conversations_history(self, p: dict, ctx: "_Ctx") -> dict:
        ch = self._channel(_s(p, "channel"), for_write=False)
        try:
            limit = int(p.get("limit") or 100)
        except ValueError:
            limit = 100
        try:
            oldest = float(p.get("oldest") or 0)
        except ValueError:
            raise _SlackError("invalid_ts_oldest") from None
        meta = _truthy(p.get("include_all_metadata"))
        msgs = [self._message_dict_with_files(m, meta) for m in reversed(self.top_level(ch.id))
                if float(m.ts) >= oldest][:limit]
        return {"messages": msgs, "has_more": False, "response_metadata": {"next_cursor": ""}}

    def _oauth_v2_access(self, p: dict, ctx: "_Ctx") -> dict:
        code = _s(p, "code")
        if not code or code not in self._oauth_codes:
            raise _SlackError("invalid_code")
        if self._oauth_codes[code]:
            raise _SlackError("invalid_code", detail="code already used")
        self._oauth_codes[code] = True
        return {
            "app_id": self.app_id,
            "authed_user": {"id": "U1"},
            "scope": ",".join(self.scopes),
            "token_type": "bot",
            "access_token": self.bot_token,
            "bot_user_id": self.bot_user_id,
            "team": {"id": self.team_id, "name": self.team_name},
            "enterprise": None,
            "is_enterprise_install": False,
        }

    # -- HTTP: upload URL -----------------------------------------------------------------------

    async def _handle_upload(self, request: web.Request) -> web.StreamResponse:
        fid = request.match_info["file_id"]
        h = self._holds.get("upload")
        if h is not None and not h.after_effect:
            await self._wait_hold("upload", h)
        fault = self._take_fault(self._upload_faults)
        if fault is not None:
            await request.read()
            self.upload_posts.append((fid, fault.status))
            return web.Response(status=fault.status, text=f"upload failed ({fault.status})", content_type="text/plain")
        f = self._files_by_id.get(fid)
        if f is None:
            self.upload_posts.append((fid, 404))
            return web.Response(status=404, text="unknown upload url", content_type="text/plain")
        if request.content_type == "multipart/form-data":
            data = b""
            reader = await request.multipart()
            async for part in reader:
                if not isinstance(part, BodyPartReader):
                    continue
                if part.name in ("file", "filename") or part.filename:
                    data = await part.read()
                    break
                await part.read()
        else:
            data = await request.read()
        if f.completed:
            self.upload_posts.append((fid, 400))
            return web.Response(status=400, text="upload already completed", content_type="text/plain")
        if len(data) != f.length:
            self.upload_posts.append((fid, 400))
            return web.Response(
                status=400,
                text=f"length mismatch: declared {f.length}, received {len(data)}",
                content_type="text/plain",
            )
        f.content = data
        f.uploaded = True
        f.mimetype, f.filetype = _sniff(data, f.filename)
        self.upload_posts.append((fid, 200))
        if h is not None and h.after_effect:
            await self._wait_hold("upload", h)
        return web.Response(text=f"OK - {len(data)}", content_type="text/plain")

    # -- HTTP: private files --------------------------------------------------------------------

    async def _handle_private(self, request: web.Request) -> web.StreamResponse:
        key = request.match_info["key"]
        parts = key.split("-")
        fid = parts[1] if len(parts) > 1 else key
        auth = request.headers.get("Authorization", "")
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else None
        authorized = bool(token) and token in self._bot_tokens and token not in self.revoked_tokens
        self.downloads.append(Download(fid, request.path, authorized))
        if not authorized:
            return web.Response(text=_LOGIN_PAGE, content_type="text/html")
        fault = self._take_fault(self._download_faults)
        if fault is not None:
            return web.Response(status=fault.status, text=_LOGIN_PAGE, content_type="text/html")
        content: bytes | None
        uf = self._user_files.get(fid)
        if uf is not None:
            content, size, mimetype, name = uf.content, uf.size, uf.mimetype, uf.name
        else:
            f = self._files_by_id.get(fid)
            if f is None or not f.completed:
                return web.Response(status=404, text=_LOGIN_PAGE, content_type="text/html")
            content, size, mimetype, name = f.content, f.size, f.mimetype, f.filename
        headers = {}
        if "/download/" in request.path:
            headers["Content-Disposition"] = f'attachment; filename="{name}"'
        if content is not None:
            return web.Response(body=content, content_type=mimetype, headers=headers)
        resp = web.StreamResponse(headers={**headers, "Content-Type": mimetype})
        if uf is not None and uf.hide_size:
            resp.enable_chunked_encoding()
        else:
            resp.content_length = size
        await resp.prepare(request)
        for chunk in iter_pattern(size):
            await resp.write(chunk)
        await resp.write_eof()
        return resp

    # -- HTTP: response_url ---------------------------------------------------------------------

    async def _handle_respond(self, request: web.Request) -> web.StreamResponse:
        rid = request.match_info["rid"]
        r = self._response_urls.get(rid)
        if r is None or r.expired:
            return web.Response(status=404, text="expired_url", content_type="text/plain")
        if r.uses >= 5:
            return web.Response(status=404, text="used_url", content_type="text/plain")
        try:
            if request.content_type == "application/json":
                body = json.loads(await request.read() or b"{}")
            else:
                form = await request.post()
                body = json.loads(str(form.get("payload") or "{}"))
        except ValueError:
            return web.Response(status=400, text="invalid_payload", content_type="text/plain")
        if not isinstance(body, dict):
            return web.Response(status=400, text="invalid_payload", content_type="text/plain")
        blocks = body.get("blocks")
        if blocks is not None:
            try:
                self._check_blocks(blocks)
            except _SlackError as e:
                return web.Response(status=400, text=e.error, content_type="text/plain")
        if not body.get("delete_original") and not body.get("text") and not blocks and not body.get("attachments"):
            return web.Response(status=400, text="no_text", content_type="text/plain")
        r.uses += 1
        self.responses.append(
            ResponsePost(url_id=rid, url=str(request.url), body=body, channel=r.channel, message_ts=r.message_ts)
        )
        original = self._msg_index.get((r.channel, r.message_ts)) if r.channel and r.message_ts else None
        if _truthy(body.get("delete_original")):
            if original is not None:
                original.deleted = True
        elif _truthy(body.get("replace_original")):
            if original is not None:
                original.text = body.get("text", original.text)
                original.blocks = blocks if blocks is not None else original.blocks
                original.history.append((original.text, original.blocks))
        elif body.get("response_type") == "in_channel" and r.channel:
            thread_ts = body.get("thread_ts")
            m = Message(
                channel=r.channel,
                ts=next_ts(),
                text=body.get("text"),
                blocks=blocks,
                thread_ts=thread_ts if thread_ts and self._is_thread_parent(r.channel, thread_ts) else None,
                user=self.bot_user_id,
                bot_id=self.bot_id,
                app_id=self.app_id,
                team=self.team_id,
                params={"via": "response_url", **body},
                seq=next(self._seq),
            )
            m.history.append((m.text, m.blocks))
            self._add_message(m)
        return web.Response(text="ok", content_type="text/plain")

    # -- Socket Mode ----------------------------------------------------------------------------

    async def _handle_socket(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket")
        if not ticket or ticket not in self._ws_tickets:
            return web.Response(status=401, text="invalid ticket", content_type="text/plain")
        self._ws_tickets.discard(ticket)
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.socket_connections_total += 1
        hello = {
            "type": "hello",
            "num_connections": 1,
            "debug_info": {
                "host": "applink-fake-1",
                "build_number": 1,
                "approximate_connection_time": 18060,
            },
            "connection_info": {"app_id": self.app_id},
        }
        await ws.send_str(json.dumps(hello))
        self._ws.append(ws)
        try:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    self._on_socket_text(msg.data)
                elif msg.type == aiohttp.WSMsgType.ERROR:
                    break
        finally:
            if ws in self._ws:
                self._ws.remove(ws)
        return ws

    def _on_socket_text(self, data: str) -> None:
        try:
            msg = json.loads(data)
        except ValueError:
            return
        if not isinstance(msg, dict):
            return
        self.socket_messages.append(msg)
        eid = msg.get("envelope_id")
        fut = self._pending_acks.pop(eid, None) if eid else None
        if fut is not None and not fut.done():
            fut.set_result(msg)

    def socket_connected(self) -> bool:
        return any(not ws.closed for ws in self._ws)

    async def wait_socket_connected(self, timeout: float = 5.0) -> None:
        await self.wait_for(self.socket_connected, timeout, message=f"no Socket Mode connection within {timeout}s")

    async def disconnect_socket(self) -> None:
        """Drop every Socket Mode connection (the client is expected to reconnect)."""
        for ws in list(self._ws):
            try:
                await asyncio.wait_for(ws.close(code=aiohttp.WSCloseCode.GOING_AWAY, message=b"bye"), 2.0)
            except Exception:
                pass
            if ws in self._ws:
                self._ws.remove(ws)

    async def send_disconnect_message(self, reason: str = "refresh_requested") -> None:
        """Send Slack's ``{"type": "disconnect"}`` message (the client then reconnects)."""
        for ws in list(self._ws):
            if not ws.closed:
                await ws.send_str(
                    json.dumps({"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-fake-1"}})
                )

    async def send_envelope(
        self,
        type: str,
        payload: dict,
        *,
        accepts_response_payload: bool = True,
        retry_attempt: int = 0,
        retry_reason: str = "",
        timeout: float = 3.0,
        envelope_id: str | None = None,
    ) -> dict:
        """Send a Socket Mode envelope; return the client's ack (``{"envelope_id", "payload"?}``).

        For "events_api" a bare event is wrapped with `event_callback`. A falsy ``response_url``
        is filled with `new_response_url`; trigger ids are registered (views.open will accept
        them). AssertionError when there is no connection or no ack within `timeout`.
        """
        live = [ws for ws in self._ws if not ws.closed]
        if not live:
            raise AssertionError("no Socket Mode connection")
        ws = live[-1]
        payload = self.prepare_outgoing(type, payload)
        eid = envelope_id or str(uuid.uuid4())
        env = {
            "envelope_id": eid,
            "type": type,
            "payload": payload,
            "accepts_response_payload": accepts_response_payload,
            "retry_attempt": retry_attempt,
            "retry_reason": retry_reason,
        }
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        self._pending_acks[eid] = fut
        t0 = time.monotonic()
        await ws.send_str(json.dumps(env))
        try:
            ack = await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            self._pending_acks.pop(eid, None)
            raise AssertionError(f"no ack for {type} envelope {eid} within {timeout}s") from None
        self.acks.append(SocketAck(eid, type, env, ack, time.monotonic() - t0))
        return ack

    # -- playing Slack towards the bot ----------------------------------------------------------

    def prepare_outgoing(self, kind: str, payload: dict) -> dict:
        """What the fake does before delivering a payload to the bot (HTTP or Socket Mode):
        wrap bare events, record message events as user messages, fill empty response_urls,
        register trigger ids. `kind`: "events_api"/"event", "slash_commands"/"command",
        "interactive"."""
        payload = dict(payload)
        if kind in ("events_api", "event"):
            if payload.get("type") not in ("event_callback", "url_verification", "app_rate_limited"):
                payload = event_callback(
                    payload, team_id=self.team_id, api_app_id=self.app_id, bot_user_id=self.bot_user_id
                )
            if payload.get("type") == "event_callback" and isinstance(payload.get("event"), dict):
                ev = payload["event"]
                if ev.get("type") == "app_mention" and str(ev.get("channel", "")).startswith("D"):
                    raise AssertionError("Slack never sends app_mention for a DM: send the message event")
                self._observe_event(ev)
            return payload
        if kind in ("slash_commands", "command"):
            if "response_url" in payload and not payload.get("response_url"):
                payload["response_url"] = self.new_response_url(channel=payload.get("channel_id"))
            if payload.get("trigger_id"):
                self.register_trigger(str(payload["trigger_id"]), payload.get("user_id"))
            return payload
        # interactive
        user = (payload.get("user") or {}).get("id") if isinstance(payload.get("user"), dict) else None
        if payload.get("trigger_id"):
            self.register_trigger(str(payload["trigger_id"]), user)
        if "response_url" in payload and not payload.get("response_url"):
            channel = (payload.get("channel") or {}).get("id") if isinstance(payload.get("channel"), dict) else None
            container = payload.get("container") or {}
            mts = payload.get("message_ts") or container.get("message_ts")
            payload["response_url"] = self.new_response_url(channel=channel, message_ts=mts)
        return payload

    def _observe_event(self, ev: dict) -> None:
        if ev.get("type") not in ("message", "app_mention"):
            return
        if ev.get("subtype") not in (None, "file_share", "thread_broadcast"):
            return
        ch, ts = ev.get("channel"), ev.get("ts")
        if not ch or not ts or (ch, ts) in self._msg_index:
            return
        thread_ts = ev.get("thread_ts")
        m = self.add_user_message(
            ch,
            ev.get("text") or "",
            user=ev.get("user") or "U1",
            thread_ts=thread_ts if thread_ts != ts else None,
            files=ev.get("files"),
            ts=ts,
            blocks=ev.get("blocks"),
        )
        if ev.get("bot_id"):
            m.bot_id = ev["bot_id"]

    async def post_command(self, app_url: str, command: str, text: str = "", **kw: Any) -> "PeerResponse":
        return await self.peer.post_command(app_url, command, text, **kw)

    async def post_event(self, app_url: str, event: dict, **kw: Any) -> "PeerResponse":
        return await self.peer.post_event(app_url, event, **kw)

    async def post_interaction(self, app_url: str, payload: dict, **kw: Any) -> "PeerResponse":
        return await self.peer.post_interaction(app_url, payload, **kw)

    async def user_posts(self, app_url: str, text: str, *, channel: str = "C1", user: str = "U1",
                         mention_bot: bool = False, thread_ts: str | None = None,
                         files: list[dict] | None = None, **kw: Any) -> dict:
        """A person posts a message: deliver exactly the events Slack would (the message event,
        and an app_mention when it mentions the bot, except in a DM, where Slack sends none).
        Returns the message event."""
        ts = next_ts()
        ev = message_event(text, user=user, channel=channel, ts=ts, thread_ts=thread_ts, files=files,
                           mention_bot=mention_bot, bot_user_id=self.bot_user_id)
        await self.post_event(app_url, ev, **kw)
        if mention_bot and not channel.startswith("D"):
            await self.post_event(app_url, app_mention_event(text, user=user, channel=channel, ts=ts,
                                                             thread_ts=thread_ts, files=files,
                                                             bot_user_id=self.bot_user_id), **kw)
        return ev


@dataclass
class _Ctx:
    token: str | None
    headers: Any


# ----------------------------------------------------------------------------------------------
# signed requests: Slack -> bot
# ----------------------------------------------------------------------------------------------


def sign_request(body: bytes | str, signing_secret: str, timestamp: int | None = None) -> dict[str, str]:
    """Slack's request signature headers for `body` (v0 HMAC-SHA256 of "v0:{ts}:{body}")."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    ts = int(time.time()) if timestamp is None else int(timestamp)
    base = b"v0:" + str(ts).encode() + b":" + body
    sig = "v0=" + hmac.new(signing_secret.encode("utf-8"), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Signature": sig, "X-Slack-Request-Timestamp": str(ts)}


class PeerResponse(tuple):
    """The bot's answer: unpacks as ``(status, body_text)``; also ``.elapsed``, ``.headers``, ``.json()``."""

    status: int
    body: str
    elapsed: float
    headers: dict

    def __new__(cls, status: int, body: str, *, elapsed: float, headers: dict) -> "PeerResponse":
        self = super().__new__(cls, (status, body))
        self.status = status
        self.body = body
        self.elapsed = elapsed
        self.headers = headers
        return self

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class SlackPeer:
    """Plays Slack sending signed HTTP requests to the bot (HTTP mode)."""

    def __init__(
        self,
        fake: FakeSlack | None = None,
        *,
        signing_secret: str | None = None,
        timeout: float = 10.0,
    ):
        self.fake = fake
        self._signing_secret = signing_secret
        self.timeout = timeout

    @property
    def signing_secret(self) -> str:
        if self._signing_secret is not None:
            return self._signing_secret
        if self.fake is not None:
            return self.fake.signing_secret
        raise ValueError("no signing secret")

    async def post_raw(
        self,
        app_url: str,
        body: bytes,
        *,
        content_type: str,
        headers: dict[str, str] | None = None,
        sign: bool = True,
        timestamp: int | None = None,
        signing_secret: str | None = None,
    ) -> PeerResponse:
        h = {"Content-Type": content_type, "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)"}
        if sign:
            h.update(sign_request(body, signing_secret or self.signing_secret, timestamp))
        h.update(headers or {})
        t0 = time.monotonic()
        async with aiohttp.ClientSession(
            trust_env=False, timeout=aiohttp.ClientTimeout(total=self.timeout)
        ) as session:
            async with session.post(app_url, data=body, headers=h) as resp:
                text = await resp.text()
                return PeerResponse(resp.status, text, elapsed=time.monotonic() - t0, headers=dict(resp.headers))

    def _team(self) -> dict[str, Any]:
        if self.fake is None:
            return {}
        return {"team_id": self.fake.team_id}

    async def post_command(
        self,
        app_url: str,
        command: str,
        text: str = "",
        *,
        sign: bool = True,
        timestamp: int | None = None,
        signing_secret: str | None = None,
        external_team: str | None = None,
        **kw: Any,
    ) -> PeerResponse:
        """POST a slash command (form-encoded). kw go to `slash_command_payload`. With
        `external_team`, the person is from that organisation (a Slack Connect channel): the
        payload's team_id is theirs."""
        kw = {**self._team(), **kw}
        if external_team:
            kw["team_id"] = external_team
        if self.fake is not None:
            kw.setdefault("api_app_id", self.fake.app_id)
        payload = slash_command_payload(command, text, **kw)
        if self.fake is not None:
            payload = self.fake.prepare_outgoing("slash_commands", payload)
        body = urlencode(payload).encode()
        return await self.post_raw(
            app_url,
            body,
            content_type="application/x-www-form-urlencoded",
            sign=sign,
            timestamp=timestamp,
            signing_secret=signing_secret,
        )

    async def post_event(
        self,
        app_url: str,
        event: dict,
        *,
        event_id: str | None = None,
        retry_num: int | None = None,
        retry_reason: str | None = None,
        sign: bool = True,
        timestamp: int | None = None,
        signing_secret: str | None = None,
        external_team: str | None = None,
    ) -> PeerResponse:
        """POST an Events API request (JSON). A bare event is wrapped with `event_callback`.
        With `external_team`, the event comes from a person of that organisation in a Slack
        Connect channel: envelope and event name their team; only `authorizations` names the
        installing workspace."""
        if event.get("type") in ("event_callback", "url_verification", "app_rate_limited"):
            payload = dict(event)
            if event_id and payload.get("type") == "event_callback":
                payload["event_id"] = event_id
        else:
            kw: dict[str, Any] = {**self._team()}
            if self.fake is not None:
                kw.update(api_app_id=self.fake.app_id, bot_user_id=self.fake.bot_user_id)
            if external_team:
                event = {**event, "team": external_team, "user_team": external_team}
                kw.update(installed_team_id=kw.get("team_id"), team_id=external_team,
                          is_ext_shared_channel=True)
            payload = event_callback(event, event_id=event_id, **kw)
        if self.fake is not None:
            payload = self.fake.prepare_outgoing("events_api", payload)
        headers: dict[str, str] = {}
        if retry_num is not None:
            headers["X-Slack-Retry-Num"] = str(retry_num)
            headers["X-Slack-Retry-Reason"] = retry_reason or "http_timeout"
        elif retry_reason:
            headers["X-Slack-Retry-Reason"] = retry_reason
        return await self.post_raw(
            app_url,
            json.dumps(payload).encode(),
            content_type="application/json",
            headers=headers,
            sign=sign,
            timestamp=timestamp,
            signing_secret=signing_secret,
        )

    async def post_interaction(
        self,
        app_url: str,
        payload: dict,
        *,
        sign: bool = True,
        timestamp: int | None = None,
        signing_secret: str | None = None,
        external_team: str | None = None,
    ) -> PeerResponse:
        """POST an interactivity payload (form field ``payload=<json>``). With `external_team`
        the person is from that organisation (Slack Connect): `team.id` and `user.team_id` are
        theirs, and a view's `app_installed_team_id` names the installing workspace."""
        if external_team:
            payload = _from_external_team(payload, external_team)
        if self.fake is not None:
            payload = self.fake.prepare_outgoing("interactive", payload)
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return await self.post_raw(
            app_url,
            body,
            content_type="application/x-www-form-urlencoded",
            sign=sign,
            timestamp=timestamp,
            signing_secret=signing_secret,
        )

    async def post_url_verification(self, app_url: str, challenge: str | None = None, **kw: Any) -> PeerResponse:
        return await self.post_event(app_url, url_verification_payload(challenge), **kw)


# ----------------------------------------------------------------------------------------------
# payload builders
# ----------------------------------------------------------------------------------------------


def _from_external_team(payload: dict, team: str) -> dict:
    payload = json.loads(json.dumps(payload))
    installed = (payload.get("team") or {}).get("id")
    payload["team"] = {**(payload.get("team") or {}), "id": team}
    if isinstance(payload.get("user"), dict):
        payload["user"]["team_id"] = team
    if isinstance(payload.get("view"), dict):
        payload["view"]["team_id"] = team
        payload["view"]["app_installed_team_id"] = installed
    return payload


def slack_escape(typed: str) -> str:
    """Text as a person typed it, encoded as Slack sends it: `&`, `<`, `>` as entities."""
    return typed.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _user_obj(user_id: str, user_name: str, team_id: str) -> dict:
    return {"id": user_id, "username": user_name, "name": user_name, "team_id": team_id}


def _message_to_dict(message: Any) -> dict | None:
    if message is None:
        return None
    if isinstance(message, Message):
        return message.to_dict()
    return dict(message)


def slash_command_payload(
    command: str,
    text: str = "",
    *,
    user_id: str = "U1",
    user_name: str = "alice",
    channel_id: str = "C1",
    channel_name: str = "general",
    team_id: str = "T0TEST",
    team_domain: str = "fake",
    response_url: str | None = None,
    trigger_id: str | None = None,
    api_app_id: str = "A0TEST",
    token: str = "verification-token",
    enterprise_id: str | None = None,
    encoded: bool = False,
) -> dict[str, str]:
    """Form fields of a slash command as Slack sends them (an empty response_url is filled in by
    `SlackPeer` / `send_envelope`). `text` is what the person typed (escaped here as Slack
    does), or Slack's encoding already with `encoded=True`."""
    if not command.startswith("/"):
        command = "/" + command
    if not encoded:
        text = slack_escape(text)
    d = {
        "token": token,
        "team_id": team_id,
        "team_domain": team_domain,
        "channel_id": channel_id,
        "channel_name": channel_name,
        "user_id": user_id,
        "user_name": user_name,
        "command": command,
        "text": text,
        "api_app_id": api_app_id,
        "is_enterprise_install": "false",
        "response_url": response_url or "",
        "trigger_id": trigger_id or new_trigger_id(),
    }
    if enterprise_id:
        d["enterprise_id"] = enterprise_id
    return d


def event_callback(
    event: dict,
    *,
    event_id: str | None = None,
    team_id: str = "T0TEST",
    api_app_id: str = "A0TEST",
    bot_user_id: str = "UBOT",
    event_time: int | None = None,
    token: str = "verification-token",
    enterprise_id: str | None = None,
    is_ext_shared_channel: bool = False,
    installed_team_id: str | None = None,
) -> dict:
    """The full Events API envelope around `event`. In a Slack Connect channel `team_id` can
    be the other organisation's: `installed_team_id` is then the installing workspace, which
    only `authorizations` names."""
    return {
        "token": token,
        "team_id": team_id,
        "context_team_id": team_id,
        "context_enterprise_id": enterprise_id,
        "api_app_id": api_app_id,
        "event": event,
        "type": "event_callback",
        "event_id": event_id or f"Ev{secrets.token_hex(5).upper()}",
        "event_time": int(time.time()) if event_time is None else event_time,
        "authorizations": [
            {
                "enterprise_id": enterprise_id,
                "team_id": installed_team_id or team_id,
                "user_id": bot_user_id,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": is_ext_shared_channel,
        "event_context": "4-" + base64.urlsafe_b64encode(secrets.token_bytes(24)).decode().rstrip("="),
    }


def _rich_text(text: str) -> list[dict]:
    return [
        {
            "type": "rich_text",
            "block_id": secrets.token_hex(3),
            "elements": [{"type": "rich_text_section", "elements": [{"type": "text", "text": text}]}],
        }
    ]


def message_event(
    text: str = "",
    *,
    user: str = "U1",
    channel: str = "C1",
    ts: str | None = None,
    thread_ts: str | None = None,
    channel_type: str | None = None,
    files: list[dict] | None = None,
    team: str = "T0TEST",
    client_msg_id: str | None = None,
    subtype: str | None = None,
    bot_id: str | None = None,
    parent_user_id: str | None = None,
    blocks: list | None = None,
    mention_bot: bool = False,
    bot_user_id: str = "UBOT",
    encoded: bool = False,
) -> dict:
    """A ``message`` event as delivered by message.channels / .groups / .im. With `files` the
    subtype is ``file_share``. `text` is what the person typed (escaped here as Slack does);
    `mention_bot` puts a real mention of the bot in front."""
    ts = ts or next_ts()
    if not encoded:
        text = slack_escape(text)
    if mention_bot:
        text = f"<@{bot_user_id}> {text}".rstrip()
    ev: dict[str, Any] = {"type": "message"}
    if files and subtype is None:
        subtype = "file_share"
    if subtype:
        ev["subtype"] = subtype
    ev.update(
        {
            "text": text,
            "user": user,
            "ts": ts,
            "team": team,
            "channel": channel,
            "event_ts": ts,
            "channel_type": channel_type or _channel_type(channel),
            "blocks": blocks if blocks is not None else _rich_text(text),
        }
    )
    if bot_id:
        ev["bot_id"] = bot_id
    else:
        ev["client_msg_id"] = client_msg_id or str(uuid.uuid4())
    if files:
        ev["files"] = files
        ev["upload"] = False
        ev["display_as_bot"] = False
    if thread_ts and thread_ts != ts:
        ev["thread_ts"] = thread_ts
        ev["parent_user_id"] = parent_user_id or user
    return ev


def app_mention_event(
    text: str = "",
    *,
    user: str = "U1",
    channel: str = "C1",
    ts: str | None = None,
    thread_ts: str | None = None,
    files: list[dict] | None = None,
    team: str = "T0TEST",
    bot_user_id: str = "UBOT",
    client_msg_id: str | None = None,
    encoded: bool = False,
) -> dict:
    """An ``app_mention`` event: the real mention ``<@bot_user_id>`` in front of what the person
    typed (escaped as Slack does; a leading ``<@bot_user_id>`` in `text` stands for the
    mention). Slack never sends this event for a DM."""
    mention = f"<@{bot_user_id}>"
    if not encoded:
        text = slack_escape(text.removeprefix(mention).strip())
    if mention not in text:
        text = f"{mention} {text}".rstrip()
    ts = ts or next_ts()
    ev: dict[str, Any] = {
        "type": "app_mention",
        "client_msg_id": client_msg_id or str(uuid.uuid4()),
        "text": text,
        "user": user,
        "ts": ts,
        "team": team,
        "channel": channel,
        "event_ts": ts,
        "blocks": _rich_text(text),
    }
    if files:
        ev["files"] = files
    if thread_ts and thread_ts != ts:
        ev["thread_ts"] = thread_ts
        ev["parent_user_id"] = user
    return ev


def message_changed_event(original: dict, text: str, *, encoded: bool = False,
                          mention_bot: bool = False, bot_user_id: str = "UBOT") -> dict:
    """The ``message`` event (subtype ``message_changed``) Slack sends when the person edits
    `original` (a message event) to `text` (as typed). Slack sends no new app_mention."""
    new_text = text if encoded else slack_escape(text)
    if mention_bot:
        new_text = f"<@{bot_user_id}> {new_text}".rstrip()
    now = next_ts()
    previous = {k: v for k, v in original.items() if k not in ("channel", "event_ts", "channel_type")}
    message = {**previous, "text": new_text, "blocks": _rich_text(new_text),
               "edited": {"user": original.get("user"), "ts": now}}
    message.pop("subtype", None)
    return {
        "type": "message",
        "subtype": "message_changed",
        "message": message,
        "previous_message": previous,
        "channel": original.get("channel"),
        "hidden": True,
        "ts": now,
        "event_ts": now,
        "channel_type": original.get("channel_type") or _channel_type(original.get("channel") or "C1"),
    }


def reaction_event(
    reaction: str,
    *,
    user: str = "U1",
    channel: str = "C1",
    ts: str,
    added: bool = True,
    item_user: str = "UBOT",
) -> dict:
    """A ``reaction_added`` / ``reaction_removed`` event on the message at `ts`."""
    return {
        "type": "reaction_added" if added else "reaction_removed",
        "user": user,
        "reaction": reaction,
        "item_user": item_user,
        "item": {"type": "message", "channel": channel, "ts": ts},
        "event_ts": next_ts(),
    }


def app_home_opened_event(user: str = "U1", *, tab: str = "home", channel: str | None = None, view: dict | None = None) -> dict:
    ev: dict[str, Any] = {
        "type": "app_home_opened",
        "user": user,
        "channel": channel or ("D" + user[1:]),
        "tab": tab,
        "event_ts": next_ts(),
    }
    if view is not None:
        ev["view"] = view
    return ev


def app_uninstalled_event() -> dict:
    return {"type": "app_uninstalled", "event_ts": next_ts()}


def tokens_revoked_event(bot_user_ids: list[str] | None = None, oauth_user_ids: list[str] | None = None) -> dict:
    return {
        "type": "tokens_revoked",
        "tokens": {"oauth": oauth_user_ids or [], "bot": bot_user_ids or ["UBOT"]},
        "event_ts": next_ts(),
    }


def url_verification_payload(challenge: str | None = None, token: str = "verification-token") -> dict:
    return {"token": token, "challenge": challenge or secrets.token_urlsafe(24), "type": "url_verification"}


def block_actions_payload(
    action_id: str,
    *,
    value: str | None = None,
    block_id: str | None = None,
    action_type: str = "button",
    text: str = "Button",
    selected_option: dict | None = None,
    user_id: str = "U1",
    user_name: str = "alice",
    team_id: str = "T0TEST",
    team_domain: str = "fake",
    channel_id: str | None = None,
    channel_name: str = "general",
    message: Any = None,
    message_ts: str | None = None,
    thread_ts: str | None = None,
    is_ephemeral: bool = False,
    view: dict | None = None,
    response_url: str | None = None,
    trigger_id: str | None = None,
    api_app_id: str = "A0TEST",
    state: dict | None = None,
    token: str = "verification-token",
) -> dict:
    """A ``block_actions`` payload: a button (or select) on a message, or in a view when `view` is
    given. `message` may be a `Message` or a dict."""
    if isinstance(message, Message):
        channel_id = channel_id or message.channel
        message_ts = message_ts or message.ts
        thread_ts = thread_ts or message.thread_ts
    channel_id = channel_id or "C1"
    action: dict[str, Any] = {
        "action_id": action_id,
        "block_id": block_id or secrets.token_hex(3),
        "type": action_type,
        "action_ts": next_ts(),
    }
    if action_type == "button":
        action["text"] = {"type": "plain_text", "text": text, "emoji": True}
        if value is not None:
            action["value"] = value
    elif selected_option is not None:
        action["selected_option"] = selected_option
    elif value is not None:
        action["selected_option"] = {"text": {"type": "plain_text", "text": value}, "value": value}
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": _user_obj(user_id, user_name, team_id),
        "api_app_id": api_app_id,
        "token": token,
        "trigger_id": trigger_id or new_trigger_id(),
        "team": {"id": team_id, "domain": team_domain},
        "enterprise": None,
        "is_enterprise_install": False,
        "state": state or {"values": {}},
        "actions": [action],
    }
    if view is not None:
        payload["container"] = {"type": "view", "view_id": view.get("id")}
        payload["view"] = view
    else:
        msg = _message_to_dict(message) or {
            "type": "message",
            "user": "UBOT",
            "ts": message_ts or next_ts(),
            "bot_id": "BBOT",
            "text": "",
        }
        mts = message_ts or msg.get("ts")
        container: dict[str, Any] = {
            "type": "message",
            "message_ts": mts,
            "channel_id": channel_id,
            "is_ephemeral": is_ephemeral,
        }
        if thread_ts:
            container["thread_ts"] = thread_ts
        payload["container"] = container
        payload["channel"] = {"id": channel_id, "name": channel_name}
        if not is_ephemeral:
            payload["message"] = msg
        payload["response_url"] = response_url or ""
    return payload


def view_submission_payload(
    callback_id: str,
    values: dict | None = None,
    *,
    user_id: str = "U1",
    user_name: str = "alice",
    team_id: str = "T0TEST",
    team_domain: str = "fake",
    view_id: str | None = None,
    private_metadata: str = "",
    blocks: list | None = None,
    title: str = "Lumabot",
    trigger_id: str | None = None,
    api_app_id: str = "A0TEST",
    response_urls: list | None = None,
    hash: str | None = None,
    external_id: str = "",
    token: str = "verification-token",
) -> dict:
    """A ``view_submission`` payload. `values` is Slack's ``state.values`` shape, or the short
    form ``{block_id: {action_id: "text"}}`` (turned into plain_text_input values)."""
    state: dict[str, dict] = {}
    for bid, actions in (values or {}).items():
        state[bid] = {}
        for aid, v in actions.items():
            state[bid][aid] = v if isinstance(v, dict) and "type" in v else {"type": "plain_text_input", "value": v}
    vid = view_id or _new_id("V")
    view = {
        "id": vid,
        "team_id": team_id,
        "type": "modal",
        "blocks": blocks or [],
        "private_metadata": private_metadata,
        "callback_id": callback_id,
        "state": {"values": state},
        "hash": hash or f"{int(time.time())}.{secrets.token_hex(4)}",
        "title": {"type": "plain_text", "text": title, "emoji": True},
        "clear_on_close": False,
        "notify_on_close": False,
        "close": {"type": "plain_text", "text": "Cancel", "emoji": True},
        "submit": {"type": "plain_text", "text": "Submit", "emoji": True},
        "previous_view_id": None,
        "root_view_id": vid,
        "app_id": api_app_id,
        "external_id": external_id,
        "app_installed_team_id": team_id,
        "bot_id": "BBOT",
    }
    return {
        "type": "view_submission",
        "team": {"id": team_id, "domain": team_domain},
        "user": _user_obj(user_id, user_name, team_id),
        "api_app_id": api_app_id,
        "token": token,
        "trigger_id": trigger_id or new_trigger_id(),
        "view": view,
        "response_urls": response_urls or [],
        "is_enterprise_install": False,
        "enterprise": None,
    }


def message_shortcut_payload(
    callback_id: str,
    *,
    message: Any = None,
    message_ts: str | None = None,
    channel_id: str | None = None,
    channel_name: str = "general",
    user_id: str = "U1",
    user_name: str = "alice",
    team_id: str = "T0TEST",
    team_domain: str = "fake",
    response_url: str | None = None,
    trigger_id: str | None = None,
    api_app_id: str = "A0TEST",
    token: str = "verification-token",
) -> dict:
    """A message shortcut (``message_action``) payload. `message` may be a `Message` or a dict."""
    if isinstance(message, Message):
        channel_id = channel_id or message.channel
    msg = _message_to_dict(message) or {"type": "message", "user": user_id, "ts": message_ts or next_ts(), "text": ""}
    return {
        "type": "message_action",
        "token": token,
        "action_ts": next_ts(),
        "team": {"id": team_id, "domain": team_domain},
        "user": _user_obj(user_id, user_name, team_id),
        "channel": {"id": channel_id or "C1", "name": channel_name},
        "is_enterprise_install": False,
        "enterprise": None,
        "api_app_id": api_app_id,
        "callback_id": callback_id,
        "trigger_id": trigger_id or new_trigger_id(),
        "response_url": response_url or "",
        "message_ts": message_ts or msg.get("ts"),
        "message": msg,
    }
