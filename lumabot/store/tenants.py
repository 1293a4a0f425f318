"""The workspaces lumabot serves, and the Enterprise Grid organisation each belongs to."""

from __future__ import annotations

import functools
import time
from typing import Any

import sqlalchemy as sa

from .schema import slack_bots, tenants
from .sql import INSTALLATIONS_CHANGED, Database, param

_INSTALLED = sa.select(slack_bots.c.enterprise_id, slack_bots.c.team_id, slack_bots.c.bot_token).where(
    slack_bots.c.bot_token.is_not(None)).order_by(slack_bots.c.installed_at.desc())
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

    async def installations_changed(self) -> None:
        """A workspace's installation was saved or deleted: the other replicas drop what they
        cached of installations (`wait_for_installations`)."""
        if self.db.shared:
            async with self.db.write() as tx:
                await self.db.wake_replicas(tx, INSTALLATIONS_CHANGED)

    async def wait_for_installations(self, timeout: float) -> None:
        """Return when another replica changed an installation, or after `timeout` seconds."""
        await self.db.wait_for_notice(INSTALLATIONS_CHANGED, timeout)

    async def installations(self) -> tuple[int, str | None]:
        """OAuth mode: (how many workspaces or organisations have lumabot's bot installed, the
        stored token of the latest, as stored: sealed or not)."""
        rows = await self.db.rows(_INSTALLED)
        return len({(r[0], r[1]) for r in rows}), (str(rows[0][2]) if rows else None)

    async def in_enterprise(self, enterprise_id: str) -> list[str]:
        """The workspaces of an organisation lumabot has served."""
        return [str(r[0]) for r in await self.db.rows(_IN_ORG, enterprise=enterprise_id)]
