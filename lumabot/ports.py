"""The ports: every interface through which the core reaches Slack or Luma's output bytes.

The core (job domain, intake, sessions, quotas, runner, store, Luma client) imports nothing from
Slack; it talks to these protocols. The adapters live elsewhere:

- `Notifier`: everything a job or a session shows in Slack (`slack/notifier.py`);
- `InputFiles`: people's Slack files turned into image data Luma takes (`slack/files.py`);
- `OutputSource`: the bytes of a finished image, from Luma's presigned URL (`luma/output.py`);
- `LumaApi`: creating and reading generations (`luma/client.py`, over the official SDK);
- `AdminDirectory`: who is an admin (`slack/admins.py`).

Tests implement them in memory (`lumabot/testing/ports.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from .jobs.batches import BatchProgress
from .jobs.models import GenerationParams, Job, Session
from .luma.client import Generation, RateInfo

# The messages lumabot posts for a job, each tagged so that it is found again after a crash.
PostKind = Literal["status", "failure"]


class DeliveryError(Exception):
    """Slack did not take something lumabot posted. `transient` errors may be retried;
    `no_access`: the bot cannot post in that channel; `policy` names the workspace setting
    (Slack's error code) that forbids it."""

    def __init__(self, message: str, *, transient: bool, no_access: bool = False,
                 policy: str | None = None):
        super().__init__(message)
        self.transient = transient
        self.no_access = no_access
        self.policy = policy


class OutputExpired(Exception):
    """The presigned output URL answered 403: ask Luma for a fresh one."""


class InputError(Exception):
    """An input image cannot be used. `code` is a failure code (jobs/failures.py); `detail` a
    sentence for the person when the code's own message is not specific enough."""

    def __init__(self, code: str, detail: str | None = None, *, transient: bool = False):
        super().__init__(detail or code)
        self.code = code
        self.detail = detail
        self.transient = transient


@dataclass
class Output:
    """A finished image."""

    content: bytes
    media_type: str

    @property
    def ext(self) -> str:
        return "jpg" if "jpeg" in self.media_type or "jpg" in self.media_type else "png"


@dataclass
class SessionRules:
    """How sessions run (built by `Settings.session_rules()`); shown on banners and recaps."""

    idle_minutes: float
    max_images: int
    vote_emoji: str


@dataclass
class SessionRecap:
    """What a finished session made: shown under it with a contact sheet."""

    session: Session
    rules: SessionRules
    images: int
    people: list[str]                                   # user ids, shown as names
    top: list[tuple[Job, int]] = field(default_factory=list)  # the most voted images and votes
    spend: float = 0.0
    contact_sheet: bytes | None = None


class Notifier(Protocol):
    """What jobs and sessions show in Slack. Raises DeliveryError where noted."""

    async def post_status(self, job: Job) -> str:
        """Post the job's status message (the thread root); its ts. DeliveryError."""
        ...

    async def update_status(self, job: Job, batch: BatchProgress | None = None) -> None:
        """Show the job's current state on its status message (best effort); for a job of a
        batch, where the whole `batch` stands."""
        ...

    async def find_posted(self, job: Job, kind: PostKind) -> str | None:
        """The ts of the job's `kind` message if an earlier process posted it. DeliveryError."""
        ...

    async def post_failure(self, job: Job) -> None:
        """What went wrong, in the job's thread. DeliveryError."""
        ...

    async def tell_failure_privately(self, job: Job) -> bool:
        """What went wrong, to the requester only; False if no way worked."""
        ...

    # The image into the job's thread, exactly once: the runner records the file's id
    # (job.slack_file_id) between reserving it and sending the bytes; after a crash,
    # `image_uploaded` says whether that file reached the thread.
    async def image_uploaded(self, job: Job, *, deadline: float | None = None) -> bool:
        """Whether the upload recorded on the job (`job.slack_file_id`) is in its thread or on
        its way there (completed now if its bytes were sent); False if it never will be:
        upload anew. DeliveryError."""
        ...

    async def reserve_upload(self, job: Job, output: Output) -> str:
        """Room at Slack for the job's image: the new file's id, to record before the bytes go.
        DeliveryError."""
        ...

    async def send_upload(self, job: Job, output: Output, *, deadline: float | None = None) -> None:
        """The image's bytes into the file reserved as `job.slack_file_id`, then the upload
        completed into the job's thread, its buttons on the image's message. DeliveryError."""
        ...

    async def share_ts(self, team_id: str, file_id: str, channel: str, *, wait: float = 0.0) -> str | None:
        """The ts of the message that shares the file in `channel`, once Slack shows it."""
        ...

    async def delete_result(self, job: Job) -> None:
        """Remove a delivered image and its buttons. DeliveryError."""
        ...

    async def post_session_banner(self, session: Session, rules: SessionRules) -> str:
        """Announce a session in its channel; the banner's ts. DeliveryError."""
        ...

    async def reserve_recap_upload(self, recap: SessionRecap) -> str:
        """Room at Slack for the recap's contact sheet: the file id, to record (as the session's
        `recap_file_id`) before its bytes go. DeliveryError."""
        ...

    async def post_session_recap(self, recap: SessionRecap) -> bool:
        """The recap, with its contact sheet in the file reserved as `session.recap_file_id`
        (exactly once), and the banner marked ended; False if that file never reached Slack
        (reserve another). DeliveryError."""
        ...

    async def member_of(self, team_id: str, channel_id: str, user_id: str, note: str) -> bool | None:
        """Whether a person is a member of a channel (shown `note` there, privately, if so);
        None when Slack cannot say."""
        ...

    async def dm_channel(self, team_id: str, user_id: str) -> str:
        """The id of lumabot's direct message with a person (opened if need be). DeliveryError."""
        ...

    async def send_dm(self, team_id: str, user_id: str, text: str) -> None:
        """A direct message from lumabot to one person. DeliveryError."""
        ...

    async def reads_messages_in(self, team_id: str, channel_id: str) -> bool:
        """Whether lumabot gets the messages people post in this conversation of the workspace
        (not in channels when installed with the minimal scopes)."""
        ...

    async def send_file_dm(self, team_id: str, user_id: str, filename: str, content: bytes | Path,
                           comment: str) -> None:
        """A file (its bytes, or read from disk in chunks) uploaded into lumabot's direct
        messages with one person. DeliveryError."""
        ...


class AdminDirectory(Protocol):
    async def is_admin(self, team_id: str, user_id: str) -> bool:
        """An admin or owner of the workspace `team_id`, or one of LUMABOT_ADMINS."""
        ...

    async def is_org_admin(self, team_id: str, user_id: str) -> bool:
        """An admin or owner of the Enterprise Grid organisation of the workspace `team_id`, or
        one of LUMABOT_ADMINS."""
        ...

    @property
    def extra(self) -> frozenset[str]:
        """LUMABOT_ADMINS."""
        ...


class InputFiles(Protocol):
    async def materialize(self, params: GenerationParams, *, team_id: str) -> GenerationParams:
        """`params` ready to send: every Slack file (of the workspace `team_id`) downloaded and
        normalised. InputError."""
        ...


class OutputSource(Protocol):
    async def download(self, url: str) -> Output:
        """A finished image. OutputExpired on an expired URL; DeliveryError otherwise."""
        ...


class LumaApi(Protocol):
    async def create(self, params: GenerationParams, *, user_id: str) -> tuple[Generation, RateInfo]:
        """POST /v1/generations. Raises LumaRateLimited, LumaRejected or LumaUnavailable."""
        ...

    async def get(self, generation_id: str) -> Generation:
        """GET /v1/generations/{id}. Raises LumaNotFound, LumaRateLimited, LumaRejected or
        LumaUnavailable."""
        ...
