"""Who is an admin: the workspace's admins and owners (users.info, cached a few minutes), plus
the user ids in LUMABOT_ADMINS."""

from __future__ import annotations

import logging
import time
from typing import Callable

from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)

CACHE_SECONDS = 300.0


class Admins:
    def __init__(self, client: AsyncWebClient, extra: frozenset[str] = frozenset(), *,
                 ttl: float = CACHE_SECONDS, clock: Callable[[], float] = time.monotonic):
        self.client = client
        self.extra = extra
        self.ttl = ttl
        self._clock = clock
        self._known: dict[str, tuple[bool, float]] = {}  # user id -> (admin?, when asked)

    async def is_admin(self, user_id: str) -> bool:
        """LUMABOT_ADMINS, or a workspace admin or owner; False when Slack cannot say (and
        then Slack is asked again next time)."""
        if user_id in self.extra:
            return True
        known = self._known.get(user_id)
        if known is not None and self._clock() - known[1] < self.ttl:
            return known[0]
        try:
            user = (await self.client.users_info(user=user_id))["user"]
        except Exception as exc:
            log.warning("users.info failed: %s", exc)
            return False
        admin = bool(user.get("is_admin") or user.get("is_owner") or user.get("is_primary_owner"))
        self._known[user_id] = (admin, self._clock())
        return admin
