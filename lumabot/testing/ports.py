"""In-memory implementations of the core's ports (lumabot/ports.py), for unit tests of the
runner, sessions and intake without Slack, Luma or sockets.

Each one records what the core asked of it, as a user would see it (messages, uploads,
requests to Luma), and can be told to fail the way the real adapter does.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from pathlib import Path
from typing import Awaitable, Callable
from dataclasses import dataclass, field

from ..jobs.batches import BatchProgress
from ..jobs.models import GenerationParams, Job, Session
from ..luma.client import Generation, LumaError, RateInfo
from ..ports import (
    DeliveryError,
    InputError,
    Output,
    OutputExpired,
    PostKind,
    SessionRecap,
    SessionRules,
)


@dataclass
class Posted:
    kind: str            # "status", "failure", "actions", "private", "banner", "recap"
    job_id: str | None
    channel: str
    ts: str
    text: str = ""


@dataclass
class Upload:
    job_id: str
    file_id: str
    content: bytes
    remembered_before_share: bool


class MemoryNotifier:
    """The Notifier port: every message and upload kept in lists; `fail` queues DeliveryErrors
    for the next calls of a method (by name)."""

    def __init__(self) -> None:
        self.posted: list[Posted] = []
        self.dms: list[tuple[str, str]] = []
        self.dm_files: list[tuple[str, str, bytes, str]] = []
        self.status_updates: list[tuple[str, tuple[str, str | None, int | None]]] = []
        self.batch_updates: list[tuple[str, BatchProgress]] = []
        self.posted_shown: list[tuple[str, tuple[str, str | None, int | None]]] = []  # what each status said
        self.uploads: list[Upload] = []
        self.deleted: list[str] = []
        self.recaps: list[SessionRecap] = []
        self._faults: dict[str, deque[DeliveryError]] = {}
        self._ts = itertools.count(1)
        self.share_wait = 0.0  # files.info shows the share only after this many seconds
        self._reserved: dict[str, str] = {}   # file id -> the job it was reserved for
        # The file id the store has for a job (set by the rig): was it recorded before the bytes?
        self.recorded_file_id: Callable[[str], Awaitable[str | None]] | None = None

    def fail(self, method: str, error: DeliveryError, times: int = 1) -> None:
        self._faults.setdefault(method, deque()).extend([error] * times)

    def _maybe_fail(self, method: str) -> None:
        faults = self._faults.get(method)
        if faults:
            raise faults.popleft()

    def _post(self, kind: str, job_id: str | None, channel: str, text: str = "") -> str:
        ts = f"{1700000000 + next(self._ts)}.000100"
        self.posted.append(Posted(kind, job_id, channel, ts, text))
        return ts

    def of(self, kind: str, job_id: str | None = None) -> list[Posted]:
        return [p for p in self.posted if p.kind == kind and (job_id is None or p.job_id == job_id)]

    async def post_status(self, job: Job) -> str:
        self._maybe_fail("post_status")
        self.posted_shown.append((job.id, job.shown or job.shown_status()))
        return self._post("status", job.id, job.channel_id)

    async def update_status(self, job: Job, batch: BatchProgress | None = None) -> None:
        self.status_updates.append((job.id, job.shown_status()))
        if batch is not None:
            self.batch_updates.append((job.batch_id or job.id, batch))

    async def find_posted(self, job: Job, kind: PostKind) -> str | None:
        self._maybe_fail("find_posted")
        found = self.of(kind, job.id)
        return found[0].ts if found else None

    async def post_failure(self, job: Job) -> None:
        self._maybe_fail("post_failure")
        self._post("failure", job.id, job.channel_id, job.failure_code or "")

    async def tell_failure_privately(self, job: Job) -> bool:
        self._post("private", job.id, job.channel_id, job.failure_code or "")
        return True

    async def image_uploaded(self, job: Job, *, deadline: float | None = None) -> bool:
        return any(u.file_id == job.slack_file_id for u in self.uploads)

    async def reserve_upload(self, job: Job, output: Output) -> str:
        file_id = f"F{next(self._ts)}"
        self._reserved[file_id] = job.id
        return file_id

    async def send_upload(self, job: Job, output: Output, *, deadline: float | None = None) -> None:
        self._maybe_fail("upload_image")
        file_id = job.slack_file_id or ""
        if self._reserved.pop(file_id, None) != job.id:
            raise DeliveryError("no upload reserved for this file", transient=True)
        recorded = await self.recorded_file_id(job.id) if self.recorded_file_id is not None else None
        self.uploads.append(Upload(job.id, file_id, output.content, remembered_before_share=recorded == file_id))

    async def share_ts(self, team_id: str, file_id: str, channel: str, *, wait: float = 0.0) -> str | None:
        return f"share-{file_id}"

    async def delete_result(self, job: Job) -> None:
        self._maybe_fail("delete_result")
        self.deleted.append(job.id)

    async def post_session_banner(self, session: Session, rules: SessionRules) -> str:
        self._maybe_fail("post_session_banner")
        return self._post("banner", None, session.channel_id)

    async def reserve_recap_upload(self, recap: SessionRecap) -> str:
        return f"F{next(self._ts)}"

    async def post_session_recap(self, recap: SessionRecap) -> bool:
        self._maybe_fail("post_session_recap")
        self.recaps.append(recap)
        self._post("recap", None, recap.session.channel_id)
        return True

    async def member_of(self, team_id: str, channel_id: str, user_id: str, note: str) -> bool | None:
        return True

    async def dm_channel(self, team_id: str, user_id: str) -> str:
        return "D" + user_id[1:]

    async def send_dm(self, team_id: str, user_id: str, text: str) -> None:
        self._maybe_fail("send_dm")
        self.dms.append((user_id, text))

    async def reads_messages_in(self, team_id: str, channel_id: str) -> bool:
        return True

    async def send_file_dm(self, team_id: str, user_id: str, filename: str, content: bytes | Path,
                           comment: str) -> None:
        self._maybe_fail("send_file_dm")
        self.dm_files.append((user_id, filename, content if isinstance(content, bytes) else content.read_bytes(),
                              comment))


class MemoryInputs:
    """The InputFiles port: parameters pass through; `fail` queues InputErrors."""

    def __init__(self) -> None:
        self.materialized: list[GenerationParams] = []
        self._faults: deque[InputError] = deque()

    def fail(self, error: InputError, times: int = 1) -> None:
        self._faults.extend([error] * times)

    async def materialize(self, params: GenerationParams, *, team_id: str) -> GenerationParams:
        if self._faults:
            raise self._faults.popleft()
        self.materialized.append(params)
        return params


class MemoryOutputs:
    """The OutputSource port: every URL gives the same PNG-ish bytes, unless expired."""

    def __init__(self) -> None:
        self.downloads: list[str] = []
        self.expired: set[str] = set()

    async def download(self, url: str) -> Output:
        self.downloads.append(url)
        if url in self.expired:
            raise OutputExpired()
        return Output(content=f"image at {url}".encode(), media_type="image/png")


@dataclass
class _Gen:
    id: str
    params: GenerationParams
    user_id: str
    states: deque[Generation] = field(default_factory=deque)
    gets: int = 0


class MemoryLuma:
    """The LumaApi port. Each create is answered from `create_errors` (raised in turn) or
    accepted; each generation's GETs walk through the scripted states (`script`), staying on
    the last. Default: processing once, then completed with an output URL."""

    def __init__(self) -> None:
        self.creates: list[tuple[GenerationParams, str]] = []
        self.generations: dict[str, _Gen] = {}
        self.create_errors: deque[LumaError] = deque()
        self.get_errors: deque[LumaError] = deque()
        self._scripts: deque[list[Generation]] = deque()
        self._ids = itertools.count(1)
        self.rate = RateInfo()
        self.url_version = 0
        self.created = asyncio.Event()
        self.holding = False  # while True, every generation stays "processing"
        self.polled: list[str] = []  # generation ids, in the order of their GETs

    def script(self, *states: list[tuple[str, str | None]]) -> None:
        """For the next generations, in order: their states as (state, failure_code) pairs."""
        for one in states:
            self._scripts.append([Generation(id="", state=s, failure_code=code) for s, code in one])

    async def create(self, params: GenerationParams, *, user_id: str) -> tuple[Generation, RateInfo]:
        self.creates.append((params, user_id))
        self.created.set()
        if self.create_errors:
            raise self.create_errors.popleft()
        gid = f"gen-{next(self._ids)}"
        script = self._scripts.popleft() if self._scripts else [
            Generation(id="", state="processing"), Generation(id="", state="completed")]
        self.generations[gid] = _Gen(gid, params, user_id, deque(script))
        return Generation(id=gid, state="queued"), self.rate

    async def get(self, generation_id: str) -> Generation:
        if self.get_errors:
            raise self.get_errors.popleft()
        gen = self.generations[generation_id]
        gen.gets += 1
        self.polled.append(generation_id)
        if self.holding:
            return Generation(id=generation_id, state="processing")
        step = gen.states.popleft() if len(gen.states) > 1 else gen.states[0]
        url = (f"https://outputs.example/{generation_id}.png?v={self.url_version}"
               if step.state == "completed" else None)
        return Generation(id=generation_id, state=step.state, failure_code=step.failure_code,
                          failure_reason=step.failure_code, output_url=url)
