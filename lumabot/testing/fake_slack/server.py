"""The fake Slack server: state, workspace setup, fault injection, observation, the HTTP routes and dispatch; the methods themselves live by concern in web_api.py, files.py, views.py and socket_mode.py."""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
import secrets
import time
import uuid
from collections import defaultdict
from typing import Any, Awaitable, Callable
from urllib.parse import quote

import aiohttp
from aiohttp import web

from .records import (
    ChannelInfo,
    _Ctx,
    DEFAULT_SCOPES,
    Download,
    Ephemeral,
    _Fault,
    _Hold,
    _image_size,
    _json_param,
    Message,
    _new_id,
    new_trigger_id,
    next_ts,
    PERMALINK_HOST,
    ResponsePost,
    _ResponseUrl,
    _SlackError,
    SocketAck,
    _truthy,
    UploadedFile,
    UserFile,
    UserInfo,
    ViewCall,
)
from .blocks import validate_blocks
from .payloads import app_mention_event, event_callback, message_event
from .peer import PeerResponse, SlackPeer
from .assistant import AssistantMethods, AssistantThread
from .files import FileMethods
from .views import ViewMethods
from .socket_mode import SocketMode
from .web_api import WebApiMethods


class FakeSlack(WebApiMethods, FileMethods, ViewMethods, AssistantMethods, SocketMode):
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
        # Enterprise Grid: the workspace's organisation, and whether the app was installed
        # org-wide (auth.test says both).
        self.enterprise_id: str | None = None
        self.enterprise_install = False
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
        self._ws: list[web.WebSocketResponse] = []
        self._ws_tickets: set[str] = set()
        self._pending_acks: dict[str, asyncio.Future] = {}
        self._seq = itertools.count(1)
        self._tasks: set[asyncio.Task] = set()
        self._runner: web.AppRunner | None = None
        self._stuck: list[_Hold] = []  # holds lifted for new calls while old ones still wait
        self.peer = SlackPeer(self)

        self._handlers: dict[str, Callable[[dict, "_Ctx"], Any]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.delete": self._chat_delete,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "files.getUploadURLExternal": self._files_get_upload_url,
            "files.completeUploadExternal": self._files_complete_upload,
            "files.info": self._files_info,
            "files.delete": self._files_delete,
            "apps.connections.open": self._apps_connections_open,
            "views.open": self._views_open,
            "views.publish": self._views_publish,
            "users.info": self._users_info,
            "conversations.replies": self._conversations_replies,
            "conversations.history": self._conversations_history,
            "conversations.open": self._conversations_open,
            "assistant.threads.setStatus": self._assistant_set_status,
            "assistant.threads.setSuggestedPrompts": self._assistant_set_suggested_prompts,
            "assistant.threads.setTitle": self._assistant_set_title,
        }
        self.assistant_threads: dict[tuple[str, str], AssistantThread] = {}

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
        people: list[str] | None = None,
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
            people=people,
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
        team_id: str | None = None,
        enterprise_id: str | None = None,
        org_admin: bool = False,
    ) -> UserInfo:
        """A person as users.info shows them. `team_id`: their own workspace when it is not
        this one (a Slack Connect guest); `enterprise_id`/`org_admin`: their Grid organisation."""
        u = UserInfo(
            id=user_id,
            name=name or f"user-{user_id.lower()}",
            is_admin=is_admin,
            is_owner=is_owner,
            is_bot=is_bot,
            exists=exists,
            tz=tz,
            team_id=team_id,
            enterprise_id=enterprise_id,
            org_admin=org_admin,
        )
        self._users[user_id] = u
        return u

    def revoke_token(self, token: str) -> None:
        """Calls with this token answer `token_revoked` from now on."""
        self.revoked_tokens.add(token)

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

    def delete_user_file(self, file_id: str) -> None:
        """A person deletes a file they shared: it can no longer be read or downloaded."""
        del self._user_files[file_id]

    def files_in_thread(self, channel: str, thread_ts: str) -> list[UploadedFile]:
        return [
            f for f in self.files if f.shared and channel in f.channels and f.thread_ts == thread_ts
        ]

    def message(self, channel: str, ts: str) -> Message | UploadedFile | None:
        """The message at (channel, ts): a posted one, or the message that shares a file."""
        found = self._msg_index.get((channel, ts))
        if found is not None:
            return found
        return next((f for f in self.files if f.share_ts == ts and channel in f.channels), None)

    def bot_messages(self, channel: str | None = None) -> list[Message]:
        return [m for m in self.messages if m.is_bot and (channel is None or m.channel == channel)]

    def file(self, file_id: str) -> UploadedFile | None:
        return self._files_by_id.get(file_id)

    def home_view(self, user_id: str) -> dict | None:
        return self._home_views.get(user_id)

    def open_view(self, view_id: str) -> dict | None:
        return self._open_views.get(view_id)

    def count_calls(self, method: str) -> int:
        return sum(1 for m, _ in self.calls if m == method)

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


    # -- HTTP: upload URL -----------------------------------------------------------------------


    # -- HTTP: private files --------------------------------------------------------------------


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


    # -- playing Slack towards the bot ----------------------------------------------------------


    def prepare_outgoing(self, kind: str, payload: dict) -> dict:
        """What the fake does before delivering a payload to the bot (HTTP or Socket Mode):
        wrap bare events, record message events as user messages, fill empty response_urls,
        register trigger ids. `kind`: "events_api"/"event", "slash_commands"/"command",
        "interactive". A payload that is not an object is sent as it is (tests of odd input)."""
        if not isinstance(payload, dict):
            return payload
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

