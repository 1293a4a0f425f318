"""Budget alerts: when the workspace's committed spend crosses 80 % or 100 % of its monthly or
daily budget, every admin who set policy (and everyone in LUMABOT_ADMINS) gets one DM per
threshold per period. The store's dedupe keys make "once" hold across replicas and restarts."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone
from typing import Awaitable, Literal

from ..jobs.models import Job
from ..jobs.admission import Admission
from ..jobs.text import money
from ..ports import AdminDirectory, DeliveryError, Notifier
from ..store import Store, StoreUnavailable

log = logging.getLogger(__name__)

THRESHOLDS = (100, 80)  # percent, highest first
Period = Literal["monthly", "daily"]


class BudgetAlerts:
    def __init__(self, store: Store, notifier: Notifier, admins: AdminDirectory):
        self.store = store
        self.notifier = notifier
        self.admins = admins
        self._tasks: set[asyncio.Task] = set()

    def after(self, job: Job, admission: Admission) -> None:
        """Check the thresholds after an admission, in the background (the ack does not wait)."""
        if admission.rules is None or (admission.rules.month_budget is None and admission.rules.day_budget is None):
            return
        self._spawn(self.check(job, admission))

    def _spawn(self, coro: Awaitable[list[str]]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def idle(self) -> None:
        """Wait for the checks under way (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def check(self, job: Job, admission: Admission) -> list[str]:
        """Send the alerts this admission crossed; the texts sent."""
        rules, counts = admission.rules, admission.counts
        if rules is None or counts is None:
            return []
        when = datetime.fromtimestamp(job.created_at, timezone.utc)
        sent: list[str] = []
        for period, budget, committed, label, span in (
                ("monthly", rules.month_budget, counts.committed_month, f"{when:%B %Y}", f"{when:%Y-%m}"),
                ("daily", rules.day_budget, counts.committed_today, f"{when:%Y-%m-%d} (UTC)", f"{when:%Y-%m-%d}")):
            if budget is None or budget <= 0:
                continue
            if admission.status == "created":
                used = committed + job.cost_usd
            elif admission.refusal == f"{period}_budget":
                used = max(committed + job.cost_usd, budget)  # the budget refused a request: reached
            else:
                continue
            crossed = [pct for pct in THRESHOLDS if used + 1e-9 >= budget * pct / 100]
            if not crossed:
                continue
            key = f"period:alert:{job.team_id}:{period}:{span}"
            # One DM per threshold per period: the highest crossed is sent; lower ones are spent too.
            fresh = [pct for pct in crossed if await self._claim(f"{key}:{pct}")]
            if crossed[0] not in fresh:
                continue
            shown = used if admission.status == "created" else committed
            text = (f"lumabot budget alert: the workspace has used {crossed[0]} % of its {period} Luma "
                    f"budget for {label}: {money(shown)} of "
                    f"{money(budget)} (estimated)." +
                    (" New requests are refused until it resets or an admin raises it with "
                     f"`/luma admin budget {'month' if period == 'monthly' else 'day'} <dollars>`."
                     if crossed[0] == 100 else ""))
            await self._send(job.team_id, text)
            sent.append(text)
        return sent

    async def _claim(self, key: str) -> bool:
        try:
            return await self.store.keys.claim(key)
        except StoreUnavailable as exc:
            log.warning("budget alert not checked: %s", exc)
            return False

    async def recipients(self, team_id: str) -> list[str]:
        """Admins who set policy, and LUMABOT_ADMINS."""
        setters = [c.user_id for c in await self.store.policy.log(team_id, limit=1000)]
        return sorted(set(setters) | set(self.admins.extra))

    async def _send(self, team_id: str, text: str) -> None:
        for user_id in await self.recipients(team_id):
            try:
                await self.notifier.send_dm(team_id, user_id, text)
            except DeliveryError as exc:
                log.warning("budget alert DM failed: %s", exc)
        log.info("budget alert: %s", text)
