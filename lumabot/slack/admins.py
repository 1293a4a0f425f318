"""Who is an admin: admins and owners of the workspace that installed lumabot (on Enterprise
Grid, when the organisation installed it: of that organisation), from users.info, cached a few
minutes; plus the user ids in LUMABOT_ADMINS.

A person's `is_admin` in users.info says nothing about *which* workspace: a Slack Connect guest
who administers their own organisation comes with `is_admin: true`. So the person's workspace
(`team_id`, or their Grid organisation, `enterprise_user.enterprise_id`) must be the
installing one before their flags count."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from .workspaces import Workspace, Workspaces

log = logging.getLogger(__name__)

CACHE_SECONDS = 300.0


@dataclass(frozen=True)
class Installation:
    """Where lumabot is installed (auth.test of its bot token)."""

    team_id: str | None
    enterprise_id: str | None = None
    enterprise_install: bool = False   # installed org-wide on Enterprise Grid


def admin_here(user: dict[str, Any], home: Installation) -> bool:
    """Is this users.info `user` an admin or owner of the installation `home`?"""
    grid = user.get("enterprise_user") or {}
    same_org = bool(home.enterprise_id) and grid.get("enterprise_id") == home.enterprise_id
    if home.enterprise_install:
        # Installed by the organisation: its org admins and owners.
        return same_org and bool(grid.get("is_admin") or grid.get("is_owner"))
    flags = bool(user.get("is_admin") or user.get("is_owner") or user.get("is_primary_owner"))
    if not flags or not home.team_id:
        return False
    if user.get("team_id") == home.team_id:
        return True
    # A Grid member whose home workspace is another of the same organisation, but who is a
    # member of the installing workspace (its flags are then this workspace's).
    return same_org and home.team_id in (grid.get("teams") or [])


class Admins:
    def __init__(self, workspaces: "Workspaces", extra: frozenset[str] = frozenset(), *,
                 ttl: float = CACHE_SECONDS, clock: Callable[[], float] = time.monotonic):
        self.workspaces = workspaces  # each installation, and its client
        self.extra = extra
        self.ttl = ttl
        self._clock = clock
        self._known: dict[tuple[str, str], tuple[bool, float]] = {}  # (team, user) -> (admin?, when asked)

    async def is_admin(self, team_id: str, user_id: str) -> bool:
        """LUMABOT_ADMINS, or an admin or owner of the installing workspace `team_id` (or its
        organisation); False when Slack cannot say (and then Slack is asked again next time)."""
        if user_id in self.extra:
            return True
        known = self._known.get((team_id, user_id))
        if known is not None and self._clock() - known[1] < self.ttl:
            return known[0]
        found = await self._user(team_id, user_id)
        if found is None:
            return False
        workspace, user = found
        admin = admin_here(user, workspace.installation)
        if not admin and (user.get("is_admin") or user.get("is_owner")):
            log.info("an admin of another workspace is not an admin here", extra={"user": user_id})
        self._known[team_id, user_id] = (admin, self._clock())
        return admin

    async def is_org_admin(self, team_id: str, user_id: str) -> bool:
        """LUMABOT_ADMINS, or an admin or owner of the Grid organisation of the workspace
        `team_id` (users.info's `enterprise_user`); False off Grid or when Slack cannot say."""
        if user_id in self.extra:
            return True
        found = await self._user(team_id, user_id)
        if found is None:
            return False
        workspace, user = found
        grid, org = user.get("enterprise_user") or {}, workspace.installation.enterprise_id
        return bool(org) and grid.get("enterprise_id") == org and bool(grid.get("is_admin") or grid.get("is_owner"))

    async def _user(self, team_id: str, user_id: str) -> tuple["Workspace", dict[str, Any]] | None:
        """The workspace `team_id` and users.info's person; None when Slack cannot say."""
        try:
            workspace = await self.workspaces.get(team_id)
            return workspace, (await workspace.client.users_info(user=user_id))["user"]
        except Exception as exc:
            log.warning("users.info failed: %s", type(exc).__name__)
            return None
