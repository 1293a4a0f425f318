"""The threads of lumabot's private studio (Slack's AI split view): who opened each, the channel
they are looking at (what Bolt calls the thread context), whether its title is set."""

from __future__ import annotations

import functools
import json
import time
from typing import Any

import sqlalchemy as sa

from .schema import studio_threads
from .sql import Database, param

_THREAD = sa.and_(studio_threads.c.channel_id == param("channel"), studio_threads.c.thread_ts == param("ts"))
_CONTEXT = sa.select(studio_threads.c.context).where(_THREAD)
_TITLE = sa.update(studio_threads).where(_THREAD, studio_threads.c.titled == sa.false()).values(titled=True)


@functools.cache
def _save(insert: Any) -> Any:
    save = insert(studio_threads).values(channel_id=param("channel"), thread_ts=param("ts"), team_id=param("team"),
                                         user_id=param("user"), context=param("context"), created_at=param("now"))
    return save.on_conflict_do_update(index_elements=[studio_threads.c.channel_id, studio_threads.c.thread_ts],
                                      set_={"context": save.excluded.context})


class StudioStore:
    def __init__(self, db: Database):
        self.db = db
        self._save = _save(db.insert)

    async def save(self, *, channel_id: str, thread_ts: str, context: dict[str, str], team_id: str = "",
                   user_id: str = "") -> None:
        """A studio thread opened, or the channel its person looks at changed."""
        async with self.db.write() as tx:
            await tx.execute(self._save, channel=channel_id, ts=thread_ts, team=team_id or context.get("team_id", ""),
                             user=user_id, context=json.dumps(context), now=time.time())

    async def context(self, channel_id: str, thread_ts: str) -> dict[str, str] | None:
        """The thread's context; None for a thread that is no studio thread (a plain DM thread)."""
        data = await self.db.scalar(_CONTEXT, channel=channel_id, ts=thread_ts)
        return json.loads(data) if data is not None else None

    async def title_once(self, channel_id: str, thread_ts: str) -> bool:
        """True the first time only: the thread's title is its first prompt."""
        async with self.db.write() as tx:
            return await tx.execute(_TITLE, channel=channel_id, ts=thread_ts) == 1
