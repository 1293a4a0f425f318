"""Workspaces' own Luma keys (`/luma admin luma-key`), stored as the caller hands them over
(sealed by luma/accounts.py when LUMABOT_ENCRYPTION_KEY is set)."""

from __future__ import annotations

import functools
from typing import Any

import sqlalchemy as sa

from .schema import luma_keys
from .sql import Database, param

_KEY = sa.select(luma_keys.c.api_key, luma_keys.c.set_by, luma_keys.c.set_at).where(luma_keys.c.team_id == param("team"))
_REMOVE = sa.delete(luma_keys).where(luma_keys.c.team_id == param("team"))
_TEAMS = sa.select(luma_keys.c.team_id)
_ALL = sa.select(luma_keys.c.team_id, luma_keys.c.api_key, luma_keys.c.set_by, luma_keys.c.set_at).order_by(
    luma_keys.c.team_id)


@functools.cache
def _set(insert: Any) -> Any:
    new = insert(luma_keys).values(team_id=param("team"), api_key=param("key"), set_by=param("by"),
                                   set_at=param("at"))
    return new.on_conflict_do_update(index_elements=[luma_keys.c.team_id], set_={
        "api_key": new.excluded.api_key, "set_by": new.excluded.set_by, "set_at": new.excluded.set_at})


class LumaKeyStore:
    def __init__(self, db: Database):
        self.db = db
        self._set = _set(db.insert)

    async def get(self, team_id: str) -> tuple[str, str, float] | None:
        """(the stored key, who set it, when) of the workspace, or None: it uses the operator's."""
        row = await self.db.row(_KEY, team=team_id)
        return (str(row[0]), str(row[1]), float(row[2])) if row else None

    async def teams(self) -> set[str]:
        """The workspaces that have a key of their own (few: read whole, not per request)."""
        return {str(r[0]) for r in await self.db.rows(_TEAMS)}

    async def all(self) -> list[tuple[str, str, str, float]]:
        """Every workspace's (team id, stored key, who set it, when)."""
        return [(str(r[0]), str(r[1]), str(r[2]), float(r[3])) for r in await self.db.rows(_ALL)]

    async def set(self, team_id: str, stored_key: str, *, by: str, at: float) -> None:
        async with self.db.write() as tx:
            await tx.execute(self._set, team=team_id, key=stored_key, by=by, at=at)

    async def remove(self, team_id: str) -> bool:
        """Forget the workspace's key; False if it had none."""
        async with self.db.write() as tx:
            return bool(await tx.execute(_REMOVE, team=team_id))
