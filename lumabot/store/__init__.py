"""Persistence behind a small interface, so a PostgreSQL store can be added for multi-replica
deployments. `open_store(url)` picks the implementation from the URL."""

from __future__ import annotations

from typing import Protocol

from ..jobs.models import Job, KnownImage
from ..jobs.quotas import Usage


class Store(Protocol):
    async def open(self) -> None: ...
    async def close(self) -> None: ...

    async def create_job(self, job: Job, *, dedupe_key: str | None = None) -> bool:
        """Insert a new job. With a dedupe key (a Slack event id, an action id), a second job
        with the same key is not created and False is returned."""

    async def save_job(self, job: Job) -> None:
        """Write every field of an existing job."""

    async def get_job(self, job_id: str) -> Job | None: ...

    async def unfinished_jobs(self) -> list[Job]:
        """Jobs whose outcome the user has not been told yet (not settled), oldest first."""

    async def claim_key(self, key: str, *, window: float | None = None) -> bool:
        """Remember a dedupe key (e.g. a Slack event id); False if it was already claimed
        (within the last `window` seconds, when given)."""

    async def recent_jobs(self, team_id: str, user_id: str, limit: int = 20) -> list[Job]:
        """A person's latest jobs, newest first."""

    async def record_image(self, image: KnownImage) -> None:
        """Remember an image (idempotent per channel and Slack file)."""

    async def latest_image_in_thread(self, channel_id: str, thread_ts: str) -> KnownImage | None: ...
    async def latest_image_in_channel(self, channel_id: str) -> KnownImage | None: ...

    async def image_by_file(self, slack_file_id: str) -> KnownImage | None:
        """The image lumabot made that was uploaded as this Slack file."""

    async def is_lumabot_thread(self, channel_id: str, thread_ts: str) -> bool: ...

    async def count_waiting(self, team_id: str, user_id: str) -> int:
        """Jobs of this person waiting for a Luma slot."""

    async def usage(self, team_id: str, since: float, *, user_id: str | None = None,
                    refunded: frozenset[str] = frozenset()) -> Usage:
        """Images and estimated spend since a time (a workspace, or one person)."""


def open_store(database_url: str) -> Store:
    from .sqlite import SQLiteStore

    if database_url.startswith("sqlite:///"):
        return SQLiteStore(database_url[len("sqlite:///"):])
    raise ValueError("unsupported database URL scheme")


__all__ = ["Store", "open_store"]
