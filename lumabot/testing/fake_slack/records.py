"""Recorded data (what the bot did, as plain dataclasses), ids and timestamps, and small helpers."""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import mimetypes
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Iterator


from lumabot.check import REQUIRED_BOT_SCOPES


# The scopes of manifest.yml: a fake install grants exactly what lumabot asks for.
DEFAULT_SCOPES = list(REQUIRED_BOT_SCOPES)

PERMALINK_HOST = "https://fake.slack.test"

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
    blocks: list | None = None  # the share message's blocks (completeUploadExternal `blocks`)
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

    @property
    def text(self) -> str:
        """The share message's text (its initial comment)."""
        return self.initial_comment or ""


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
    people: list[str] | None = None  # its members (None: everyone); an ephemeral to others fails

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
    team_id: str | None = None        # the person's own workspace (None: the fake's)
    enterprise_id: str | None = None  # their Grid organisation (None: the fake's, if any)
    org_admin: bool = False           # admin of that organisation (enterprise_user.is_admin)

    def to_dict(self, team_id: str, enterprise_id: str | None = None) -> dict:
        home = self.team_id or team_id
        org = self.enterprise_id or (enterprise_id if self.team_id is None else None)
        d = {
            "id": self.id,
            "team_id": home,
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
                "team": home,
            },
        }
        if org:  # Slack sends enterprise_user for people of a Grid organisation
            d["enterprise_user"] = {"id": self.id, "enterprise_id": org, "enterprise_name": "Org",
                                    "is_admin": self.org_admin, "is_owner": False, "teams": [home]}
        return d


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


@dataclass
class _Ctx:
    """Who called a Web API method: its token and headers."""

    token: str | None
    headers: Any
