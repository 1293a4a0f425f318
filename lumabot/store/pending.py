"""Requests held for a confirmation (a cost preview): nothing of them is counted or sent until
their person confirms; a confirmation takes the request once, however often it is clicked."""

from __future__ import annotations

import json
import time

import sqlalchemy as sa

from ..jobs.models import Job
from .keys import new_key
from .schema import pending_requests
from .sql import Database, param

_INSERT = sa.insert(pending_requests).values(id=param("id"), team_id=param("team"), user_id=param("user"),
                                             created_at=param("now"), jobs=param("jobs"))
_EXPIRED = sa.delete(pending_requests).where(pending_requests.c.created_at < param("before"))
_TAKE = (sa.delete(pending_requests)
         .where(pending_requests.c.id == param("id"), pending_requests.c.team_id == param("team"),
                pending_requests.c.user_id == param("user"), pending_requests.c.created_at >= param("since"))
         .returning(pending_requests.c.jobs))


class PendingStore:
    def __init__(self, db: Database):
        self.db = db
        self._new_key = new_key(db.insert)

    async def hold(self, request_id: str, jobs: list[Job], *, dedupe_key: str | None, keep: float) -> bool:
        """Keep a request's jobs until their person confirms (at most `keep` seconds); False
        for a duplicate `dedupe_key` (a retried Slack event: held once already)."""
        now, first = time.time(), jobs[0]
        async with self.db.write() as tx:
            if dedupe_key is not None and not await tx.execute(self._new_key, key=dedupe_key, now=now):
                return False
            await tx.execute(_EXPIRED, before=now - keep)
            await tx.execute(_INSERT, id=request_id, team=first.team_id, user=first.user_id, now=now,
                             jobs=json.dumps([job.model_dump(mode="json") for job in jobs]))
        return True

    async def sweep(self, before: float) -> int:
        """Delete the requests held since before `before` (expired previews: their prompts go)."""
        async with self.db.write() as tx:
            return await tx.execute(_EXPIRED, before=before)

    async def take(self, request_id: str, *, team_id: str, user_id: str, keep: float) -> list[Job] | None:
        """The held request of this person, removed (a second click finds nothing); None if it
        was taken or cancelled already, is someone else's, or is older than `keep` seconds."""
        async with self.db.write() as tx:
            rows = await tx.rows(_TAKE, id=request_id, team=team_id, user=user_id, since=time.time() - keep)
        return [Job.model_validate(j) for j in json.loads(rows[0][0])] if rows else None
