"""Creative sessions and their votes, and the thumbnails their contact sheets are made of."""

from __future__ import annotations

import functools
import time
from typing import Any

import sqlalchemy as sa

from ..jobs.models import Job, Session
from .rows import JOB_SELECT, SESSION_COLUMNS, SESSION_SELECT, job_from_row, session_from_row, session_row
from .schema import jobs, sessions, thumbnails, votes
from .sql import Database, Duplicate, param

_INSERT = sa.insert(sessions).values({c: param(c) for c in SESSION_COLUMNS})
_SAVE = sa.update(sessions).where(sessions.c.id == param("id_")).values(
    {c: param(c) for c in SESSION_COLUMNS if c != "id"})
_TOUCH = sa.update(sessions).where(sessions.c.id == param("id"), sessions.c.ended_at.is_(None)).values(
    last_prompt_at=param("at"))
_END = sa.update(sessions).where(sessions.c.id == param("id"), sessions.c.ended_at.is_(None)).values(
    ended_at=param("at"), end_reason=param("reason"))
_GET = sa.select(*SESSION_SELECT).where(sessions.c.id == param("id"))
_RUNNING = sa.select(*SESSION_SELECT).where(sessions.c.team_id == param("team"), sessions.c.channel_id == param("channel"),
                                            sessions.c.ended_at.is_(None))
_UNFINISHED = sa.select(*SESSION_SELECT).where(sa.or_(sessions.c.ended_at.is_(None), sessions.c.recap_posted == sa.false()))
_JOBS = sa.select(*JOB_SELECT).where(jobs.c.session_id == param("session")).order_by(jobs.c.created_at, jobs.c.id)
_UNVOTE = sa.delete(votes).where(votes.c.job_id == param("job"), votes.c.user_id == param("user"))
_VOTES = sa.select(votes.c.job_id, sa.func.count()).where(votes.c.session_id == param("session")).group_by(votes.c.job_id)


@functools.cache
def _upserts(insert: Any) -> tuple[Any, Any]:
    """(a vote, a thumbnail), in the dialect's INSERT (built once). A thumbnail is not saved
    for a job that is gone (one forgotten as it settled)."""
    vote = insert(votes).values(job_id=param("job"), user_id=param("user"), session_id=param("session"),
                                created_at=param("at")).on_conflict_do_nothing()
    thumbnail = insert(thumbnails).from_select(["job_id", "data"], sa.select(
        param("job", sa.Text()), param("data", sa.LargeBinary())).where(
        sa.exists().where(jobs.c.id == param("job", sa.Text()))))
    return vote, thumbnail.on_conflict_do_update(index_elements=[thumbnails.c.job_id],
                                                 set_={"data": thumbnail.excluded.data})


class SessionStore:
    def __init__(self, db: Database):
        self.db = db
        self._vote, self._thumbnail = _upserts(db.insert)

    async def create(self, session: Session) -> bool:
        """False if the channel already has a running session."""
        try:
            async with self.db.write() as tx:
                await tx.execute(_INSERT, **session_row(session))
        except Duplicate:
            return False
        return True

    async def save(self, session: Session) -> None:
        row = session_row(session)
        async with self.db.write() as tx:
            await tx.execute(_SAVE, id_=row.pop("id"), **row)

    async def touch(self, session_id: str, at: float) -> None:
        """A prompt arrived: only a running session's last_prompt_at changes."""
        async with self.db.write() as tx:
            await tx.execute(_TOUCH, id=session_id, at=at)

    async def end(self, session_id: str, at: float, reason: str) -> bool:
        """End a session if it is still running; False if it had ended already."""
        async with self.db.write() as tx:
            return await tx.execute(_END, id=session_id, at=at, reason=reason) == 1

    async def get(self, session_id: str) -> Session | None:
        row = await self.db.row(_GET, id=session_id)
        return session_from_row(row) if row else None

    async def running(self, team_id: str, channel_id: str) -> Session | None:
        row = await self.db.row(_RUNNING, team=team_id, channel=channel_id)
        return session_from_row(row) if row else None

    async def unfinished(self) -> list[Session]:
        """Running sessions, and ended ones whose recap is not posted yet."""
        return [session_from_row(r) for r in await self.db.rows(_UNFINISHED)]

    async def jobs(self, session_id: str) -> list[Job]:
        return [job_from_row(r) for r in await self.db.rows(_JOBS, session=session_id)]

    async def set_vote(self, session_id: str, job_id: str, user_id: str, on: bool) -> None:
        async with self.db.write() as tx:
            if on:
                await tx.execute(self._vote, job=job_id, user=user_id, session=session_id, at=time.time())
            else:
                await tx.execute(_UNVOTE, job=job_id, user=user_id)

    async def votes(self, session_id: str) -> dict[str, int]:
        return {job_id: int(n) for job_id, n in await self.db.rows(_VOTES, session=session_id)}

    async def save_thumbnail(self, job_id: str, data: bytes) -> None:
        async with self.db.write() as tx:
            await tx.execute(self._thumbnail, job=job_id, data=data)

    async def thumbnails(self, job_ids: list[str]) -> dict[str, bytes]:
        if not job_ids:
            return {}
        rows = await self.db.rows(sa.select(thumbnails.c.job_id, thumbnails.c.data).where(
            thumbnails.c.job_id.in_(job_ids)))
        return {job_id: bytes(data) for job_id, data in rows}
