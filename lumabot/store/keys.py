"""Dedupe keys: a Slack event, an action or a message answered once; a lease held while some work
runs (an export, a day's sweep)."""

from __future__ import annotations

import functools
import time
from typing import Any

import sqlalchemy as sa

from .schema import dedupe_keys
from .sql import Database, param

_DELETE = sa.delete(dedupe_keys).where(dedupe_keys.c.key == param("key"))


@functools.cache
def new_key(insert: Any) -> Any:
    """Record a dedupe key (`key`, `now`) unless it is there: a rowcount of 0 is a duplicate."""
    return insert(dedupe_keys).values(key=param("key"), created_at=param("now")).on_conflict_do_nothing()


@functools.cache
def _upserts(insert: Any) -> tuple[Any, Any]:
    """(claim, claim again once the window has passed), in the dialect's INSERT (built once)."""
    again = insert(dedupe_keys).values(key=param("key"), created_at=param("now"))
    return new_key(insert), again.on_conflict_do_update(index_elements=[dedupe_keys.c.key],
                                              set_={"created_at": again.excluded.created_at},
                                              where=dedupe_keys.c.created_at < param("older_than"))


class KeyStore:
    def __init__(self, db: Database):
        self.db = db
        self._claim, self._claim_in_window = _upserts(db.insert)

    async def claim(self, key: str, *, window: float | None = None) -> bool:
        """Remember a key; False if it was already claimed (within the last `window` seconds,
        when given)."""
        now = time.time()
        async with self.db.write() as tx:
            if window is None:
                return await tx.execute(self._claim, key=key, now=now) == 1
            return await tx.execute(self._claim_in_window, key=key, now=now, older_than=now - window) == 1

    async def release(self, key: str) -> None:
        """Forget a claimed key (a lease held while some work ran)."""
        async with self.db.write() as tx:
            await tx.execute(_DELETE, key=key)
