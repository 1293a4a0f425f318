"""The workspaces lumabot serves, and the Enterprise Grid organisation each belongs to."""

from __future__ import annotations

import functools
import time
from typing import Any

import sqlalchemy as sa

from .schema import tenants
from .sql import Database, param

_ORG_OF = sa.select(tenants.c.enterprise_id).where(tenants.c.team_id == param("team"))
_IN_ORG = sa.select(tenants.c.team_id).where(tenants.c.enterprise_id == param("enterprise")).order_by(
    tenants.c.team_id)


@functools.cache
def _remember(insert: Any) -> Any:
    new = insert(tenants).values(team_id=param("team"), enterprise_id=param("enterprise", sa.Text()),
                                 seen_at=param("now"))
    return new.on_conflict_do_update(index_elements=[tenants.c.team_id],
                                     set_={"enterprise_id": new.excluded.enterprise_id, "seen_at": new.excluded.seen_at})


class TenantStore:
    def __init__(self, db: Database):
        self.db = db
        self._remember = _remember(db.insert)

    async def remember(self, team_id: str, enterprise_id: str | None) -> None:
        """Lumabot serves the workspace `team_id`, of the organisation `enterprise_id` (None: not
        on Enterprise Grid)."""
        async with self.db.write() as tx:
            await tx.execute(self._remember, team=team_id, enterprise=enterprise_id, now=time.time())

    async def enterprise_of(self, team_id: str) -> str | None:
        """The workspace's organisation (None: not on Grid, or never seen)."""
        row = await self.db.row(_ORG_OF, team=team_id)
        return str(row[0]) if row and row[0] else None

    async def in_enterprise(self, enterprise_id: str) -> list[str]:
        """The workspaces of an organisation lumabot has served."""
        return [str(r[0]) for r in await self.db.rows(_IN_ORG, enterprise=enterprise_id)]
