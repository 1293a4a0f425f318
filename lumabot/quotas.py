"""The workspace's quotas as the database has them: the rules in force (its policy over the
environment's defaults), its usage, what a new job is admitted under, and the texts of
`/luma usage` and `/luma help`. The decisions themselves are pure (jobs/admission.py)."""

from __future__ import annotations

import time
from typing import Callable

from .jobs.admission import (
    Admission,
    AdmissionRules,
    Prices,
    Usage,
    day_start,
    month_start,
    refusal_error,
    resets,
)
from .jobs.flags import PromptError
from .jobs.models import Job
from .jobs.policy import Limits, Rules
from .jobs.text import money
from .store import Store


class Quotas:
    def __init__(self, store: Store, prices: Prices, limits: Limits, *,
                 clock: Callable[[], float] = time.time):
        self.store = store
        self.prices = prices
        self.limits = limits
        self._clock = clock

    async def rules_in_force(self, team_id: str) -> Rules:
        """The workspace's policy over the environment's defaults, as the database has it now
        (on Enterprise Grid, never looser than its organisation's)."""
        own, organisation = await self.store.policy.with_organisation(team_id)
        return own.resolve(self.limits, organisation)

    async def usage(self, team_id: str, since: float, user_id: str | None = None) -> Usage:
        return await self.store.policy.usage(team_id, since, user_id=user_id)

    def admission(self, job: Job, *, is_admin: bool | None = None) -> AdmissionRules:
        """Price the job; what it is admitted under (resolved and applied by the store, atomically)."""
        job.cost_usd = self.prices.of(job.params)
        now = self._clock()
        return AdmissionRules(limits=self.limits, day_start=day_start(now), month_start=month_start(now),
                              is_admin=is_admin)

    def refusal(self, admission: Admission, job: Job, *, cost: float | None = None) -> PromptError:
        """What the person is told when the policy or a limit refuses their request (`job`,
        its first image; `cost`, of them all)."""
        return refusal_error(admission, job, self.limits, self._clock(), cost=cost)

    async def limits_text(self, team_id: str) -> str:
        """The limits in force, for `/luma help`."""
        rules = await self.rules_in_force(team_id)
        parts = [f"at most {rules.max_waiting} images waiting in line per person"]
        if rules.default_daily_images is not None:
            parts.append(f"{rules.default_daily_images} images per person per day")
        if rules.day_budget is not None:
            parts.append(f"{money(rules.day_budget)} of estimated Luma spend per day for the workspace")
        if rules.month_budget is not None:
            parts.append(f"{money(rules.month_budget)} per month for the workspace")
        text = "; ".join(parts) + "."
        if len(parts) > 1:
            text += " Days and months are UTC."
        return text + (" Prompts up to 6,000 characters; images to edit up to 50 MB (10 MB each "
                       "in the `/imagine` form, Slack's limit for forms).")

    async def report(self, team_id: str, user_id: str) -> str:
        """`/luma usage`: the person's and the workspace's images and estimated spend, and the
        limits that apply to this person now (their own limit where an admin set one)."""
        now = self._clock()
        today, month = day_start(now), month_start(now)
        rules = await self.rules_in_force(team_id)
        me_day, me_month = await self.usage(team_id, today, user_id), await self.usage(team_id, month, user_id)
        ws_day, ws_month = await self.usage(team_id, today), await self.usage(team_id, month)

        def line(day: Usage, month_: Usage) -> str:
            return (f"today {day.images} images · {money(day.spend)} · this month "
                    f"{month_.images} images · {money(month_.spend)}")

        limits = []
        daily = rules.daily_images(user_id)
        if daily is not None:
            own = " (your own limit)" if user_id in rules.user_limits else " per person"
            limits.append(f"{daily} images a day{own} ({max(0, daily - me_day.requested)} left for you today)")
        if rules.day_budget is not None:
            limits.append(f"{money(rules.day_budget)} per day for the workspace "
                          f"({money(max(0.0, rules.day_budget - ws_day.committed))} left)")
        if rules.month_budget is not None:
            limits.append(f"{money(rules.month_budget)} per month for the workspace "
                          f"({money(max(0.0, rules.month_budget - ws_month.committed))} left)")
        limits.append(f"at most {rules.max_waiting} images waiting in line per person")
        if rules.max_model != "everyone":
            limits.append("uni-1-max: " + ("workspace admins only" if rules.max_model == "admins" else "off"))
        daily_set = daily is not None or rules.day_budget is not None
        lines = [
            f"*You:* {line(me_day, me_month)}",
            f"*Workspace:* {line(ws_day, ws_month)}",
            "*Limits:* " + "; ".join(limits) + (f". Daily limits reset {resets(now)}." if daily_set
                                                else ". No daily limits are set."),
            "_Spend is estimated from Luma's price list; failed images Luma refunds are not counted._",
        ]
        return "\n".join(lines)
