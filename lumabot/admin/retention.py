"""Retention: a daily sweep deletes prompts, parameters, thumbnails, image lineage and dedupe
keys older than the retention period, keeping only what usage reports need (daily totals per
person, channel, model and type); `forget` does the same for one person at once. Each workspace
is swept with its own period (`/luma admin retention`, else LUMABOT_RETENTION_DAYS): a workspace
that uninstalled lumabot goes the same way, or at once with `forget_workspace`.

Every replica runs the loop; a dated dedupe key makes one of them sweep each day."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from datetime import datetime, timezone
from typing import Awaitable, Callable

from ..jobs.failures import REFUNDED_FAILURE_CODES
from ..quotas import Quotas
from ..jobs.usage import Removed
from ..store import Store, StoreUnavailable
from .reports import FORGOTTEN

log = logging.getLogger(__name__)

DAY = 86400.0
CHECK_EVERY = 3600.0           # how often a replica asks whether today's sweep has run
PERIOD_KEYS_KEPT = 40 * DAY    # `period:` dedupe keys (alerts sent this month) outlive a short retention


def removed_text(removed: Removed) -> str:
    parts = [(removed.jobs, "job"), (removed.images, "image record"), (removed.thumbnails, "thumbnail"),
             (removed.sessions, "session"), (removed.votes, "vote"), (removed.dedupe_keys, "dedupe key")]
    listed = ", ".join(f"{n} {word}{'s' if n != 1 else ''}" for n, word in parts if n)
    text = f"{removed.total} row{'s' if removed.total != 1 else ''}" + (f" ({listed})" if listed else "")
    if removed.copies:
        text += (f"; removed their text from {removed.copies} of other people's image"
                 f"{'s' if removed.copies != 1 else ''} (rerolls of theirs, prompts in their sessions)")
    if removed.running:
        one = removed.running == 1
        text += (f"; {removed.running} of their images {'is' if one else 'are'} still being made and will be "
                 f"forgotten as soon as {'it is' if one else 'they are'} done")
    return text


def anonymous_id(team_id: str, user_id: str) -> str:
    """The id a forgotten person's spend is kept under: the same for the same person, and not
    theirs."""
    return FORGOTTEN + hashlib.sha256(f"{team_id}:{user_id}".encode()).hexdigest()[:12]


class Retention:
    def __init__(self, store: Store, quotas: Quotas, *,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep):
        self.store = store
        self.quotas = quotas
        self._clock = clock
        self._sleep = sleep
        self._task: asyncio.Task | None = None

    async def sweep(self, team_id: str | None = None) -> Removed:
        """Delete what is older than the retention period, now: of one workspace, or of every
        workspace (each with its own period) and the dedupe keys."""
        now = self._clock()
        teams = [team_id] if team_id is not None else await self.store.policy.teams()
        removed, shortest = Removed(), self.quotas.limits.retention_days
        for team in teams:
            days = (await self.quotas.rules_in_force(team)).retention_days
            shortest = min(shortest, days)
            removed = removed + await self.store.policy.sweep(team, now - days * DAY)
        if team_id is None:
            keys = await self.store.policy.sweep_keys(now - shortest * DAY,
                                                      period_cutoff=now - max(PERIOD_KEYS_KEPT, shortest * DAY))
            await self.store.pending.sweep(now - DAY)  # previews expire after an hour: their prompts go
            removed = removed + Removed(dedupe_keys=keys)
        log.info("retention sweep of %d workspace%s: removed %s", len(teams), "" if len(teams) == 1 else "s",
                 removed_text(removed))
        return removed

    async def sweep_if_due(self) -> Removed | None:
        """Today's sweep, unless a replica (or this one, before a restart) already did it."""
        day = datetime.fromtimestamp(self._clock(), timezone.utc).strftime("%Y-%m-%d")
        if not await self.store.keys.claim(f"period:sweep:{day}"):
            return None
        return await self.sweep()

    async def forget_workspace(self, team_id: str) -> Removed | int:
        """Delete everything lumabot keeps about the workspace, now; or (nothing deleted) the
        number of its images still waiting or being made."""
        unsettled = await self.store.policy.unsettled(team_id)
        if unsettled:
            return unsettled
        removed = await self.store.policy.forget_workspace(team_id)
        log.info("forgot a workspace: removed %s", removed_text(removed), extra={"team": team_id})
        return removed

    async def forget(self, team_id: str, user_id: str) -> Removed:
        removed = await self.store.policy.forget(team_id, user_id, anonymous_id(team_id, user_id))
        log.info("forgot a person: removed %s", removed_text(removed))
        return removed

    # -- the daily loop ------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.ensure_future(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                await self.sweep_if_due()
            except StoreUnavailable as exc:
                log.warning("retention sweep failed, retried within the hour: %s", exc)
            await self._sleep(CHECK_EVERY)
