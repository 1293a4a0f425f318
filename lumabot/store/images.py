"""Images and their lineage: the images lumabot made and those people shared where it could see
them, so that a reply, `/edit` or a shortcut finds the image to edit (lumabot's own are edited by
Luma generation id, with nothing uploaded again)."""

from __future__ import annotations

import functools
from typing import Any

import sqlalchemy as sa

from ..jobs.models import KnownImage
from .rows import IMAGE_COLUMNS, IMAGE_SELECT, image_from_row, image_row
from .schema import images, jobs
from .sql import Database, Tx, param


def _latest(*where: sa.ColumnElement[bool]) -> sa.Select[tuple[object, ...]]:
    return sa.select(*IMAGE_SELECT).where(*where).order_by(images.c.id.desc()).limit(1)


# Every lookup is within one workspace (tenant): the same ids in another are other things.
_IN_TEAM = images.c.team_id == param("team")
_IN_THREAD = _latest(_IN_TEAM, images.c.channel_id == param("channel"), images.c.thread_ts == param("thread"))
_IN_CHANNEL = _latest(_IN_TEAM, images.c.channel_id == param("channel"))
_BY_FILE = _latest(_IN_TEAM, images.c.slack_file_id == param("file"), images.c.origin == "lumabot")
_LUMABOT_THREAD = sa.union_all(
    sa.select(sa.literal(1)).select_from(jobs).where(
        jobs.c.team_id == param("team"), jobs.c.channel_id == param("channel"), jobs.c.status_ts == param("thread"),
        jobs.c.thread_ts.is_(None)),
    sa.select(sa.literal(1)).select_from(images).where(
        _IN_TEAM, images.c.channel_id == param("channel"), images.c.thread_ts == param("thread"),
        images.c.origin == "lumabot"),
).limit(1)


@functools.cache
def _record(insert: Any) -> Any:
    return insert(images).values({c: param(c) for c in IMAGE_COLUMNS}).on_conflict_do_nothing()


class ImageStore:
    def __init__(self, db: Database):
        self.db = db
        self._record = _record(db.insert)

    async def record(self, image: KnownImage) -> None:
        """Remember an image (once per Slack file and channel)."""
        async with self.db.write() as tx:
            await self.record_in(tx, image)

    async def record_in(self, tx: Tx, image: KnownImage) -> None:
        await tx.execute(self._record, **image_row(image))

    async def _one(self, stmt: sa.Select[tuple[object, ...]], **params: object) -> KnownImage | None:
        row = await self.db.row(stmt, **params)
        return image_from_row(row) if row else None

    async def latest_in_thread(self, team_id: str, channel_id: str, thread_ts: str) -> KnownImage | None:
        return await self._one(_IN_THREAD, team=team_id, channel=channel_id, thread=thread_ts)

    async def latest_in_channel(self, team_id: str, channel_id: str) -> KnownImage | None:
        return await self._one(_IN_CHANNEL, team=team_id, channel=channel_id)

    async def by_file(self, team_id: str, slack_file_id: str) -> KnownImage | None:
        """The image lumabot made that was uploaded as this Slack file."""
        return await self._one(_BY_FILE, team=team_id, file=slack_file_id)

    async def is_lumabot_thread(self, team_id: str, channel_id: str, thread_ts: str) -> bool:
        """A thread whose root is a lumabot status message, or that holds an image lumabot made."""
        return await self.db.row(_LUMABOT_THREAD, team=team_id, channel=channel_id, thread=thread_ts) is not None
