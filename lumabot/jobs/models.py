"""Pydantic models of the job domain."""

from __future__ import annotations

import time
import uuid
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field

ASPECT_RATIOS: tuple[str, ...] = ("3:1", "2:1", "16:9", "3:2", "1:1", "2:3", "9:16", "1:2", "1:3")
PORTRAIT_RATIOS: frozenset[str] = frozenset({"2:3", "9:16", "1:2", "1:3"})
MODELS: tuple[str, ...] = ("uni-1", "uni-1-max")
FORMATS: tuple[str, ...] = ("png", "jpeg")
STYLES: tuple[str, ...] = ("auto", "manga")
MAX_PROMPT_CHARS = 6000
# Images one request may make (`--n`, permutations): the most an admin may allow.
MAX_IMAGES_PER_REQUEST = 10

# How many times a generation may be submitted for one job when Luma fails it with a
# retryable failure code (the first try plus one retry).
MAX_GENERATION_ATTEMPTS = 2
# Luma has no idempotency key: a create whose answer a crash lost is sent again at most this
# many times in a job's life; after that the person is told the outcome is uncertain.
MAX_BLIND_RESENDS = 1
# The Luma account of the operator's key (LUMA_AGENTS_API_KEY); a workspace with its own key is
# an account of its own, named by its team id.
DEFAULT_ACCOUNT = "default"


class JobState(StrEnum):
    QUEUED = "queued"            # accepted, waiting for a Luma slot (no generation yet)
    SUBMITTING = "submitting"    # a create request is (or was, before a crash) in flight
    GENERATING = "generating"    # Luma has a generation id; polling
    DELIVERING = "delivering"    # the image is ready; downloading it and uploading into the thread
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"      # cancelled while it waited: nothing reached Luma

    @property
    def finished(self) -> bool:
        return self in (JobState.DONE, JobState.FAILED, JobState.CANCELLED)


MAX_EDIT_REFS = 8  # image_ref entries Luma accepts on an image_edit


class SlackFile(BaseModel):
    """A file as Slack described it in a signed payload or an API answer. Only these URLs ever
    receive the bot token (never a URL a user typed)."""

    id: str
    name: str | None = None
    mimetype: str | None = None
    url: str | None = None          # url_private_download (or url_private)
    size: int | None = None
    stub: bool = False              # Slack Connect `file_access` stub: resolve with files.info

    @property
    def maybe_image(self) -> bool:
        return self.stub or (self.mimetype or "").startswith("image/")


class ImageSource(BaseModel):
    """An input image for Luma. Sent as exactly one of generation_id or data+media_type; a
    `slack_file` is downloaded and normalised into data+media_type just before submitting, a
    `preset_ref` (a preset's reference image: its id and position) read from the store."""

    generation_id: str | None = None
    data: str | None = None          # base64
    media_type: str | None = None
    slack_file: SlackFile | None = None
    preset_ref: tuple[str, int] | None = None


class KnownImage(BaseModel):
    """An image lumabot has seen: one it made, or one a person shared where it could see it."""

    team_id: str                     # the installing workspace it was seen in
    channel_id: str
    thread_ts: str                   # the root of the thread that holds it
    message_ts: str | None = None
    origin: Literal["lumabot", "user"]
    job_id: str | None = None
    generation_id: str | None = None
    slack_file_id: str | None = None
    file: SlackFile | None = None
    user_id: str | None = None
    created_at: float = Field(default_factory=time.time)

    def as_source(self) -> ImageSource:
        if self.generation_id:
            return ImageSource(generation_id=self.generation_id)
        return ImageSource(slack_file=self.file)


class GenerationParams(BaseModel):
    """Everything that is sent to Luma for one generation (minus the end-user id)."""

    prompt: str
    type: Literal["image", "image_edit"] = "image"
    model: str = "uni-1"
    aspect_ratio: str | None = None
    style: str | None = None
    output_format: str | None = None
    source: ImageSource | None = None
    image_refs: list[ImageSource] = Field(default_factory=list)
    web_search: bool = False         # the model may look references up on the web (slower)

    @property
    def latency_class(self) -> tuple[str, str]:
        """Generations that take alike (the poll planner learns each class apart): the model,
        and the type, with web search apart (it looks references up first: slower)."""
        return (self.model, f"{self.type}+web" if self.web_search else self.type)

    def describe(self) -> str:
        """A one-line summary of the parameters, as a user would type them."""
        parts = [self.model]
        if self.aspect_ratio:
            parts.append(self.aspect_ratio)
        if self.style and self.style != "auto":
            parts.append(self.style)
        if self.output_format:
            parts.append(self.output_format)
        if self.web_search:
            parts.append("web")
        if self.type == "image_edit":
            parts.insert(0, "edit")
        return " · ".join(parts)


class Origin(BaseModel):
    """Where a job came from, as its Info (provenance) tells it."""

    typed: str | None = None          # the request as the person typed it (flags and all)
    via: str | None = None            # imagine, form, mention, reply, edit, shortcut, session, reroll, vary, max
    flags: dict[str, str] = Field(default_factory=dict)  # a parameter -> where its value came from
    parent_job_id: str | None = None  # the lumabot image it was made from (an edit, a variation)
    parent_ts: str | None = None      # the message that holds the image it was made from
    preset: str | None = None         # the preset in force
    share_to: str | None = None       # made in private: the channel it may be shared to in one click


GENERATING_SHOWN: tuple[str, str | None, int | None] = ("generating", None, None)


def new_job_id() -> str:
    return uuid.uuid4().hex


class Job(BaseModel):
    """One request from a user, from the slash command to the image in the thread."""

    id: str = Field(default_factory=new_job_id)
    team_id: str
    user_id: str
    channel_id: str
    # Where the status message goes: None = top level of the channel (it becomes the thread
    # root); otherwise the ts of the thread's parent message.
    thread_ts: str | None = None
    response_url: str | None = None
    params: GenerationParams
    state: JobState = JobState.QUEUED
    status_ts: str | None = None          # the status message; its thread holds the image
    generation_id: str | None = None
    attempts: int = 0                     # generations submitted (a retry after failure adds one)
    submit_tries: int = 0                 # create requests sent (incl. after a crash)
    waiting_reason: str | None = None     # e.g. "capacity": Luma refused with 429, we wait
    failure_code: str | None = None
    failure_detail: str | None = None
    slack_file_id: str | None = None
    created_at: float = Field(default_factory=time.time)
    submitted_at: float | None = None
    completed_at: float | None = None     # Luma reported completed
    # The age (seconds after submitted_at) of the last poll that saw the generation running: it
    # finished between then and completed_at (what the poll planner learns, again after a restart).
    running_seen: float | None = None
    polled_densely: bool = False          # ... from its first poll on (runner/polling.py keeps those longer)
    finished_at: float | None = None      # done or failed, as the user sees it
    settled: bool = False                 # the user has been told the outcome
    cost_usd: float = 0.0                 # estimated price of one generation of this job
    actions_ts: str | None = None         # the image's message, its buttons on it (once delivered)
    deleted: bool = False                 # the requester (or an admin) deleted the result
    session_id: str | None = None         # the creative session it belongs to
    queue_position: int | None = Field(default=None, exclude=True)  # shown, not stored
    # What the status message shows when that is not what the state says: "generating" when it
    # was posted for a job about to be sent at once (no "Generating…" update then). Not stored.
    shown: tuple[str, str | None, int | None] | None = Field(default=None, exclude=True)
    deadline: float | None = None         # generation must be completed by then
    blind_resends: int = 0                # creates re-sent after a crash lost their answer
    cancelled_by: str | None = None       # who cancelled it while it waited (requester or admin)
    owner: str | None = None              # the replica running the job (None: nobody yet)
    epoch: int = 0                        # bumped at every takeover: writes of older owners fail
    # Several images from one request (`--n`, permutations): one job each, sharing the first
    # one's status message. `batch_id` is the first job's id (None: a request of one image).
    batch_id: str | None = None
    batch_index: int = 0
    batch_size: int = 1
    origin: Origin = Field(default_factory=Origin)   # where it came from (its Info)
    # The Luma account its generation goes to: DEFAULT_ACCOUNT (the operator's key) or the id of
    # the workspace whose own key it uses. Decided when the job is recorded, kept for its life.
    account: str = DEFAULT_ACCOUNT

    @property
    def in_batch(self) -> bool:
        return self.batch_id is not None and self.batch_size > 1

    @property
    def leads(self) -> bool:
        """Posts the status message: a job of its own, or the first of its batch."""
        return self.batch_id is None or self.batch_id == self.id

    @property
    def charged(self) -> bool:
        """Does Luma charge for this job? Once it reached Luma, unless its last failure is one
        Luma refunds. (The store's usage query says the same in SQL.)"""
        from .failures import REFUNDED_FAILURE_CODES

        return self.attempts > 0 and not (
            self.state == JobState.FAILED and (self.failure_code or "") in REFUNDED_FAILURE_CODES)

    @property
    def root_ts(self) -> str | None:
        """The ts of the thread parent the image goes under."""
        return self.thread_ts or self.status_ts

    @property
    def shown_generating(self) -> bool:
        """Its status message says "Generating…" although it has not reached Luma yet (it was
        posted as it went straight to Luma), unless it came to wait since."""
        return (self.state == JobState.QUEUED and self.shown == GENERATING_SHOWN
                and self.queue_position is None and self.waiting_reason is None)

    def shown_status(self) -> tuple[str, str | None, int | None]:
        """What the status message shows: the phase a person sees, and while the job waits,
        why and its place in line. The runner updates the message only when this changes."""
        if self.state.finished:
            return (self.state.value, None, None)
        if self.state in (JobState.GENERATING, JobState.DELIVERING):
            return ("generating", None, None)
        return ("queued", self.waiting_reason, self.queue_position)


class Session(BaseModel):
    """A creative session: for a while, every message in a channel becomes a prompt."""

    id: str = Field(default_factory=new_job_id)
    team_id: str
    channel_id: str
    started_by: str
    started_at: float = Field(default_factory=time.time)
    flags: dict[str, Any] = Field(default_factory=dict)   # default flags (jobs.flags.Flags as a dict)
    theme: str | None = None
    banner_ts: str | None = None
    last_prompt_at: float = Field(default_factory=time.time)
    ended_at: float | None = None
    end_reason: str | None = None               # "stopped:<user>", "idle", "max_images"
    recap_file_id: str | None = None
    recap_posted: bool = False

    @property
    def running(self) -> bool:
        return self.ended_at is None
