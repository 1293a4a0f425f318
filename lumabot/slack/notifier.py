"""The Notifier: everything jobs and sessions show in Slack (the `ports.Notifier` adapter).

- the status message (posted once, updated when what it shows changes),
- messages in the job's thread (failures), private fallbacks through `response_url`,
- the finished image uploaded into the thread, exactly once, its buttons on its own message,
- session banners and recaps with their contact sheet.

Uploads follow Slack's upload v2 flow (files.getUploadURLExternal, POST the bytes,
files.completeUploadExternal with channel_id and thread_ts). The steps are run one by one
rather than through `files_upload_v2` so that the file id is recorded before the upload is
completed: after a crash, `files.info` tells whether that file already reached the thread,
and the image is never posted twice. For an image the runner records it itself, between
`reserve_upload` and `send_upload` (nothing here calls back into the runner).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator

import aiohttp
import httpx
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from ..jobs.batches import BatchProgress
from ..jobs.failures import POLICY_MESSAGES
from ..jobs.models import Job, JobState, Session
from ..jobs.text import clip
from ..ports import DeliveryError, Output, OutputExpired, PostKind, SessionRecap, SessionRules
from ..metrics import Metrics
from . import blocks
from .workspaces import NotInstalled, Workspace, Workspaces

log = logging.getLogger(__name__)

# Downloads and uploads at once: a burst of completions queues here, not inside httpcore's pool
# (which scans its whole wait queue on every request).
MAX_CONCURRENT_TRANSFERS = 16

# ok:false errors that are worth trying again later.
_TRANSIENT_ERRORS = {"ratelimited", "internal_error", "fatal_error", "service_unavailable",
                     "request_timeout", "team_added_to_org"}
# The bot cannot post where the job wants to go.
_NO_ACCESS_ERRORS = {"not_in_channel", "channel_not_found", "cannot_dm_bot"}
# What the workspace's settings forbid: final, explained to the person (jobs/failures.py).
POLICY_ERRORS = frozenset(POLICY_MESSAGES)

RECAP_FILENAME, RECAP_TITLE = "creative-session-contact-sheet.png", "Contact sheet of the session"

# Message metadata on everything lumabot posts for a job, so that after a crash the message is
# found again (conversations.history / .replies) instead of being posted twice.
METADATA_EVENT = "lumabot_job"


@dataclass(frozen=True)
class FileMessage:
    """Where an upload is shared and what its message says: a text `comment`, or `blocks`
    (Slack ignores the blocks of files.completeUploadExternal when a comment is given)."""

    channel: str
    thread_ts: str | None
    title: str
    comment: str | None = None
    blocks: list[dict] | None = None


def slack_error_name(exc: BaseException) -> str:
    if isinstance(exc, SlackApiError):
        status = getattr(exc.response, "status_code", 200)
        return str(exc.response.get("error") or status) if status == 200 else str(status)
    return type(exc).__name__


def classify(exc: BaseException) -> DeliveryError:
    if isinstance(exc, DeliveryError):
        return exc
    if isinstance(exc, SlackApiError):
        status = getattr(exc.response, "status_code", 200)
        error = exc.response.get("error") if hasattr(exc.response, "get") else None
        transient = status == 429 or status >= 500 or error in _TRANSIENT_ERRORS
        return DeliveryError(f"Slack error {error or status}", transient=transient,
                             no_access=error in _NO_ACCESS_ERRORS,
                             policy=error if error in POLICY_ERRORS else None)
    if isinstance(exc, (aiohttp.ClientError, httpx.TransportError, asyncio.TimeoutError, OSError)):
        return DeliveryError(f"Slack unreachable ({type(exc).__name__})", transient=True)
    raise exc


class SlackNotifier:
    def __init__(self, workspaces: Workspaces, http: httpx.AsyncClient, metrics: Metrics | None = None,
                 *, transfers: asyncio.Semaphore | None = None):
        self.workspaces = workspaces   # each job's workspace and its Slack client
        self.http = http
        self.metrics = metrics
        self._transfers = transfers or asyncio.Semaphore(MAX_CONCURRENT_TRANSFERS)
        self._names: dict[tuple[str, str], str] = {}
        self._dms: dict[tuple[str, str], str] = {}   # (workspace, person) -> lumabot's DM with them
        self._upload_urls: dict[str, str] = {}   # file id -> where its bytes go (reserve_upload)

    async def _client(self, team_id: str) -> AsyncWebClient:
        """The client of the workspace `team_id`; lumabot no longer installed there is final."""
        try:
            return (await self.workspaces.get(team_id)).client
        except NotInstalled:
            raise DeliveryError("lumabot is no longer installed in that workspace", transient=False,
                                no_access=True) from None

    async def _installed(self, team_id: str) -> Workspace | None:
        """The workspace `team_id`, or None where lumabot is no longer installed."""
        try:
            return await self.workspaces.get(team_id)
        except NotInstalled:
            return None

    async def reads_messages_in(self, team_id: str, channel_id: str) -> bool:
        """Does lumabot get the messages of this conversation? Not in channels when it was
        installed with manifest.minimal.yml (no channels:history / groups:history)."""
        workspace = await self._installed(team_id)
        return workspace is not None and workspace.reads_messages_in(channel_id)

    # -- messages ------------------------------------------------------------------------------
    async def post_status(self, job: Job) -> str:
        """Post the status message; returns its ts."""
        client = await self._client(job.team_id)
        try:
            resp = await client.chat_postMessage(
                channel=job.channel_id, thread_ts=job.thread_ts, text=blocks.status_text(job),
                blocks=blocks.status_blocks(job), unfurl_links=False, unfurl_media=False,
                metadata=_metadata(job, "status"),
            )
        except Exception as exc:
            raise self._error("chat.postMessage", exc) from None
        await self._studio_status(client, job)
        return resp["ts"]

    async def _studio_status(self, client: AsyncWebClient, job: Job, batch: BatchProgress | None = None) -> None:
        """In the private studio (Slack's AI split view), the thread's status line follows the job:
        its place in line, "generating", cleared when it is finished (best effort)."""
        if job.origin.via != "studio" or not job.thread_ts:
            return
        try:
            await client.assistant_threads_setStatus(channel_id=job.channel_id, thread_ts=job.thread_ts,
                                                     status=blocks.studio_status(job, batch))
        except Exception as exc:
            log.info("assistant.threads.setStatus failed: %s", slack_error_name(exc))

    async def find_posted(self, job: Job, kind: PostKind) -> str | None:
        """The ts of the job's `kind` message ("status", "failure") if it is in
        Slack already: looked up by its metadata, for recovery after a crash only (Slack limits
        conversations.history and .replies tightly)."""
        thread = job.thread_ts if kind == "status" else job.root_ts
        client = await self._client(job.team_id)
        try:
            if thread is None:
                resp = await client.conversations_history(
                    channel=job.channel_id, oldest=f"{job.created_at - 1:.6f}", limit=100,
                    include_all_metadata=True)
            else:
                resp = await client.conversations_replies(
                    channel=job.channel_id, ts=thread, limit=200, include_all_metadata=True)
        except SlackApiError as exc:
            if exc.response.get("error") == "thread_not_found":
                return None
            raise self._error("conversations.history", exc) from None
        except Exception as exc:
            raise self._error("conversations.history", exc) from None
        for message in resp.get("messages") or []:
            meta = message.get("metadata") or {}
            payload = meta.get("event_payload") or {}
            if (meta.get("event_type") == METADATA_EVENT and payload.get("job_id") == job.id
                    and payload.get("kind") == kind):
                return message.get("ts")
        return None

    async def update_status(self, job: Job, batch: BatchProgress | None = None) -> None:
        if not job.status_ts:
            return
        try:
            client = await self._client(job.team_id)
            await client.chat_update(channel=job.channel_id, ts=job.status_ts,
                                     text=blocks.status_text(job, batch), blocks=blocks.status_blocks(job, batch),
                                     metadata=_metadata(job, "status", batch))
            await self._studio_status(client, job, batch)
        except Exception as exc:
            err = self._error("chat.update", exc)
            # A lost status update is cosmetic; the thread still gets the outcome.
            log.warning("status update failed: %s", err, extra={"job_id": job.id})

    async def post_message(self, team_id: str, channel: str, text: str, *, thread_ts: str | None = None) -> str:
        """A plain message from lumabot; returns its ts."""
        client = await self._client(team_id)
        try:
            resp = await client.chat_postMessage(channel=channel, thread_ts=thread_ts,
                                                 text=clip(text), unfurl_links=False)
        except Exception as exc:
            raise self._error("chat.postMessage", exc) from None
        return resp["ts"]

    async def update_message(self, team_id: str, channel: str, ts: str, text: str) -> None:
        client = await self._client(team_id)
        try:
            await client.chat_update(channel=channel, ts=ts, text=clip(text))
        except Exception as exc:
            raise self._error("chat.update", exc) from None

    async def display_names(self, team_id: str, user_ids: list[str]) -> dict[str, str]:
        """Each person's display name (users.info, cached), for text that must not notify
        them; the user id where Slack cannot say."""
        names: dict[str, str] = {}
        for uid in dict.fromkeys(user_ids):
            if (team_id, uid) not in self._names:
                try:
                    user = (await (await self._client(team_id)).users_info(user=uid))["user"]
                    profile = user.get("profile") or {}
                    self._names[team_id, uid] = (profile.get("display_name") or profile.get("real_name")
                                                 or user.get("real_name") or user.get("name") or uid)
                except Exception as exc:
                    log.info("users.info failed for a name: %s", slack_error_name(exc))
                    names[uid] = uid
                    continue
            names[uid] = self._names[team_id, uid]
        return names

    async def member_of(self, team_id: str, channel_id: str, user_id: str, note: str) -> bool | None:
        """Whether a person is a member of a channel, learnt by showing them `note` there (an
        ephemeral: Slack refuses one to a non-member with user_not_in_channel; no read scope
        needed). None when Slack cannot say (lumabot itself cannot post there, say)."""
        try:
            client = await self._client(team_id)
            await client.chat_postEphemeral(channel=channel_id, user=user_id, text=clip(note))
        except Exception as exc:
            if slack_error_name(exc) == "user_not_in_channel":
                return False
            log.info("chat.postEphemeral failed: %s", slack_error_name(exc))
            return None
        return True

    async def post_failure(self, job: Job) -> None:
        """What went wrong, in the job's thread."""
        client = await self._client(job.team_id)
        try:
            await client.chat_postMessage(channel=job.channel_id, thread_ts=job.root_ts,
                                               text=blocks.failure_text(job), unfurl_links=False,
                                               metadata=_metadata(job, "failure"))
        except Exception as exc:
            raise self._error("chat.postMessage", exc) from None

    async def tell_failure_privately(self, job: Job) -> bool:
        """Tell only the requester what went wrong: through the command's response_url (works
        where the bot is not a member), else an ephemeral message. False if neither worked."""
        text = blocks.failure_text(job)
        if await self.respond(job.response_url, text):
            return True
        try:
            client = await self._client(job.team_id)
            await client.chat_postEphemeral(channel=job.channel_id, user=job.user_id, text=text,
                                            thread_ts=job.thread_ts)
            return True
        except Exception as exc:
            log.warning("ephemeral message failed: %s", self._error("chat.postEphemeral", exc),
                        extra={"job_id": job.id})
            return False

    async def respond(self, response_url: str | None, text: str) -> bool:
        """An ephemeral message through a slash command's response_url (works where the bot
        is not a member). Returns False when there is no usable response_url."""
        if not response_url:
            return False
        try:
            r = await self.http.post(response_url, json={"response_type": "ephemeral", "text": text})
            return r.status_code == 200
        except httpx.HTTPError:
            return False

    async def delete_result(self, job: Job) -> None:
        """Remove the delivered image and its buttons from Slack."""
        client = await self._client(job.team_id)
        try:
            if job.slack_file_id:
                try:
                    await client.files_delete(file=job.slack_file_id)
                except SlackApiError as exc:
                    if exc.response.get("error") != "file_not_found":
                        raise
            if job.actions_ts:
                try:
                    await client.chat_delete(channel=job.channel_id, ts=job.actions_ts)
                except SlackApiError as exc:
                    if exc.response.get("error") not in ("message_not_found", "cant_delete_message"):
                        raise
        except Exception as exc:
            raise self._error("files.delete", exc) from None

    def _error(self, method: str, exc: BaseException) -> DeliveryError:
        err = classify(exc)
        if self.metrics is not None:
            api_url = getattr(getattr(exc, "response", None), "api_url", None) or ""
            method = api_url.rstrip("/").rsplit("/", 1)[-1] if "/api/" in api_url else method
            self.metrics.slack_errors.labels(method, slack_error_name(exc)).inc()
        return err

    # -- sessions ----------------------------------------------------------------------------
    async def post_session_banner(self, session: Session, rules: SessionRules) -> str:
        return await self.post_message(session.team_id, session.channel_id, blocks.session_banner(session, rules))

    async def reserve_recap_upload(self, recap: SessionRecap) -> str:
        """Room at Slack for the recap's contact sheet: the file id, to record before its bytes go."""
        assert recap.contact_sheet is not None
        return await self._reserve(recap.session.team_id, filename=RECAP_FILENAME, length=len(recap.contact_sheet),
                                   title=RECAP_TITLE)

    async def post_session_recap(self, recap: SessionRecap) -> bool:
        """The recap, with its contact sheet in the file reserved as `session.recap_file_id`
        (exactly once: a file that reached the channel is not sent again), then the banner
        marked ended. False if that file never reached Slack (reserve another). Participants are
        named, not mentioned: a recap notifies nobody."""
        session = recap.session
        names = await self.display_names(session.team_id, recap.people + [job.user_id for job, _ in recap.top])
        team_url = await self.team_url(session.team_id)
        top = [(job.params.prompt,
                blocks.permalink(team_url, job.channel_id, job.status_ts, job.thread_ts),
                names[job.user_id], votes) for job, votes in recap.top]
        text = blocks.session_recap(recap, people=[names[u] for u in recap.people], top=top)
        if recap.contact_sheet and session.recap_file_id:
            file_id = session.recap_file_id
            url = self._upload_urls.pop(file_id, None)
            where = FileMessage(session.channel_id, None, RECAP_TITLE, comment=text)
            if url is not None:
                await self._send(session.team_id, url, file_id, recap.contact_sheet, where, deadline=None)
            elif not await self._finish(session.team_id, file_id, where, deadline=None):
                return False
        else:
            await self.post_message(session.team_id, session.channel_id, text)
        if session.banner_ts:
            await self.update_message(session.team_id, session.channel_id, session.banner_ts,
                                      blocks.session_ended_banner(session))
        return True

    # -- direct messages (budget alerts, exports) --------------------------------------------
    async def dm_channel(self, team_id: str, user_id: str) -> str:
        """lumabot's DM channel with a person (conversations.open, scope im:write; remembered)."""
        if (team_id, user_id) in self._dms:
            return self._dms[team_id, user_id]
        client = await self._client(team_id)
        try:
            resp = await client.conversations_open(users=user_id)
        except Exception as exc:
            raise self._error("conversations.open", exc) from None
        self._dms[team_id, user_id] = channel = resp["channel"]["id"]
        return channel

    async def send_dm(self, team_id: str, user_id: str, text: str) -> None:
        await self.post_message(team_id, await self.dm_channel(team_id, user_id), text)

    async def send_file_dm(self, team_id: str, user_id: str, filename: str, content: bytes | Path,
                           comment: str) -> None:
        """A report: uploaded again after a failure, harmlessly (no file id is recorded)."""
        channel = await self.dm_channel(team_id, user_id)
        length = len(content) if isinstance(content, bytes) else content.stat().st_size
        file_id = await self._reserve(team_id, filename=filename, length=length, title=filename)
        await self._send(team_id, self._upload_urls.pop(file_id), file_id, content,
                         FileMessage(channel, None, filename, comment=comment), deadline=None)

    # -- files -------------------------------------------------------------------------------
    async def image_uploaded(self, job: Job, *, deadline: float | None = None) -> bool:
        """Did the upload recorded on the job (`job.slack_file_id`) reach its thread, or is it
        on its way? An upload whose bytes were sent is completed now; False: it never will be."""
        assert job.slack_file_id
        self._upload_urls.pop(job.slack_file_id, None)   # a reserved upload not sent: never will be
        return await self._finish(job.team_id, job.slack_file_id, _image_message(job), deadline=deadline)

    async def reserve_upload(self, job: Job, output: Output) -> str:
        """files.getUploadURLExternal for the image: its file id (the upload URL is kept here
        until `send_upload`)."""
        return await self._reserve(job.team_id, filename=blocks.image_filename(job.params.prompt, output.ext),
                                   length=len(output.content), title=blocks.alt_text(job.params.prompt))

    async def send_upload(self, job: Job, output: Output, *, deadline: float | None = None) -> None:
        """The bytes to the upload URL reserved for `job.slack_file_id`, then
        files.completeUploadExternal into the job's thread, the image's buttons on its message."""
        url = self._upload_urls.pop(job.slack_file_id or "", None)
        if url is None:   # reserved by a process that is gone: the runner reserves anew
            raise DeliveryError("the upload was reserved by another process", transient=True)
        await self._send(job.team_id, url, job.slack_file_id or "", output.content, _image_message(job),
                         deadline=deadline)

    # Upload v2, one step at a time: reserve (the file id, recorded by the caller), send the
    # bytes and complete; an upload recorded by an earlier try is finished, not sent again.
    # Slack shares a completed upload asynchronously, so a completion that took effect (even one
    # that answered an error) is waited for with files.info, until `deadline` (a Unix time).
    async def _reserve(self, team_id: str, *, filename: str, length: int, title: str) -> str:
        """files.getUploadURLExternal: the new file's id (its upload URL is kept for `_send`)."""
        client = await self._client(team_id)
        try:
            step1 = await client.files_getUploadURLExternal(filename=filename, length=length, alt_txt=title)
        except Exception as exc:
            raise self._error("files.getUploadURLExternal", exc) from None
        self._upload_urls[step1["file_id"]] = step1["upload_url"]
        return str(step1["file_id"])

    async def _finish(self, team_id: str, file_id: str, where: FileMessage, *, deadline: float | None) -> bool:
        """An upload recorded earlier: True if it reached the channel or thread (or is on its
        way: completed now if its bytes were sent); False if it never will."""
        client = await self._client(team_id)
        try:
            return (await self._completed(client, file_id, where.channel, deadline)
                    or await self._complete(client, file_id, where, deadline))
        except DeliveryError:
            raise
        except Exception as exc:
            raise self._error("files.completeUploadExternal", exc) from None

    async def _send(self, team_id: str, upload_url: str, file_id: str, content: bytes | Path, where: FileMessage,
                    *, deadline: float | None) -> None:
        """POST the bytes to the upload URL, then complete the upload into the channel or thread."""
        client = await self._client(team_id)
        length = len(content) if isinstance(content, bytes) else content.stat().st_size
        try:
            async with self._transfers:
                body = content if isinstance(content, bytes) else _chunks(content)
                r = await self.http.post(upload_url, content=body,
                                         headers={"Content-Type": "application/octet-stream",
                                                  "Content-Length": str(length)})
            if r.status_code != 200:
                raise DeliveryError(f"file upload answered {r.status_code}",
                                    transient=r.status_code >= 500 or r.status_code == 429)
            if not await self._complete(client, file_id, where, deadline):
                raise DeliveryError("the upload was not completed", transient=True)
        except (DeliveryError, OutputExpired):
            raise
        except Exception as exc:
            raise self._error("files.completeUploadExternal", exc) from None

    async def _completed(self, client: AsyncWebClient, file_id: str, channel: str, deadline: float | None) -> bool:
        """True if an earlier completion of `file_id` took effect: the file is shared in
        `channel`, or will be (files.info knows it: the share is on its way), waited for until
        `deadline`. False if the upload was never completed."""
        if await _file_info(client, file_id) is None:
            return False
        if await _share_ts_of(client, file_id, channel, until=deadline) is not None:
            return True
        raise DeliveryError("Slack has not shared the completed upload yet", transient=True)

    async def share_ts(self, team_id: str, file_id: str, channel: str, *, wait: float = 0.0) -> str | None:
        """The ts of the message that shares the file in `channel`, once files.info shows it
        (polls for `wait` s); None if it is not shared (yet)."""
        return await _share_ts_of(await self._client(team_id), file_id, channel, wait=wait)

    async def team_url(self, team_id: str) -> str | None:
        """The workspace's address (https://<workspace>.slack.com/), for links."""
        workspace = await self._installed(team_id)
        return workspace.url if workspace is not None else None

    async def team_name(self, team_id: str) -> str | None:
        """The workspace's name, as Slack gave it."""
        workspace = await self._installed(team_id)
        return workspace.name if workspace is not None else None

    async def _complete(self, client: AsyncWebClient, file_id: str, where: FileMessage,
                        deadline: float | None) -> bool:
        """Complete an upload. True if the file is (or is about to be) in the thread; False if
        Slack does not have it (never uploaded): start a fresh upload. An error answer is
        checked with files.info: the completion may have taken effect anyway."""
        try:
            # slack_sdk passes `blocks` through as a form field: a JSON string, as Slack documents it.
            extra = {"blocks": json.dumps(where.blocks)} if where.blocks and not where.comment else {}
            await client.files_completeUploadExternal(
                files=[{"id": file_id, "title": where.title}], channel_id=where.channel, thread_ts=where.thread_ts,
                initial_comment=where.comment, **extra)  # type: ignore[arg-type]
            return True
        except SlackApiError as exc:
            err = classify(exc)
            if err.policy or err.no_access:
                raise self._error("files.completeUploadExternal", exc) from None
            log.info("completing upload %s answered %s: checking files.info", file_id,
                     exc.response.get("error") or exc.response.status_code)
            if await self._completed(client, file_id, where.channel, deadline):
                return True
            if err.transient:
                raise self._error("files.completeUploadExternal", exc) from None
            return False


async def _share_ts_of(client: AsyncWebClient, file_id: str, channel: str, *, wait: float = 0.0,
                       until: float | None = None) -> str | None:
    """The ts of the message that shares the file in `channel`, once files.info shows it
    (polls for `wait` s, or until the Unix time `until`); None if it is not shared (yet)."""
    loop = asyncio.get_running_loop()
    stop = loop.time() + (wait if until is None else until - time.time())
    delay = 0.2
    while True:
        info = await _file_info(client, file_id)
        ts = _share_ts(info, channel) if info is not None else None
        if ts is not None or loop.time() >= stop:
            return ts
        await asyncio.sleep(min(delay, max(0.0, stop - loop.time())))
        delay = min(delay * 2, 2.0)


async def _file_info(client: AsyncWebClient, file_id: str) -> dict | None:
    """files.info's file object; None if Slack does not know the file (not completed)."""
    try:
        info = await client.files_info(file=file_id)
    except SlackApiError as exc:
        if exc.response.get("error") in ("file_not_found", "file_deleted"):
            return None
        raise
    return info.get("file") or {}


async def _chunks(path: Path, size: int = 1 << 20) -> AsyncIterator[bytes]:
    """A file's bytes, read a chunk at a time off the event loop (a large export is never in
    memory whole)."""
    f = await asyncio.to_thread(path.open, "rb")
    try:
        while chunk := await asyncio.to_thread(f.read, size):
            yield chunk
    finally:
        await asyncio.to_thread(f.close)


def _image_message(job: Job) -> FileMessage:
    """A delivered image's own message in its thread: the image with its buttons (one message,
    one call: the buttons ride on files.completeUploadExternal)."""
    return FileMessage(job.channel_id, job.root_ts, blocks.alt_text(job.params.prompt),
                       blocks=blocks.result_actions(job))


def _share_ts(info: dict, channel: str) -> str | None:
    for by_channel in (info.get("shares") or {}).values():
        if channel in by_channel:
            entries = by_channel[channel] or [{}]
            return entries[0].get("ts") or ""
    return None


def _metadata(job: Job, kind: PostKind, batch: BatchProgress | None = None) -> dict:
    """What a message lumabot posts for a job says about it (found again after a crash by
    `job_id` and `kind`; a batch's status is its first job's). Once the status message (the
    thread root) shows delivered images, also their provenance: the Luma generation(s), the
    image they were made from, how they were asked for, the preset in force."""
    payload: dict = {"job_id": (job.batch_id or job.id) if kind == "status" else job.id, "kind": kind}
    made = (list(batch.generations) if batch is not None
            else [(job.id, job.generation_id)] if job.state == JobState.DONE and job.generation_id else [])
    if kind == "status" and made:
        extra = {"parent_job_id": job.origin.parent_job_id, "batch_id": job.batch_id, "made_with": job.origin.via,
                 "preset": job.origin.preset}
        if batch is None:
            extra["generation_id"] = job.generation_id
        else:
            payload["images"] = [{"job_id": j, "generation_id": g} for j, g in made]
        payload.update({k: v for k, v in extra.items() if v})
    return {"event_type": METADATA_EVENT, "event_payload": payload}
