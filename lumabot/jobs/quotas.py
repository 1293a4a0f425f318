"""Cost and limits: what a job is estimated to cost, the rules a new job is admitted under
(the workspace's policy over the environment's defaults, applied atomically by the store), what
a refused person is told, and `/luma usage`. Days and months are UTC calendar days and months."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Awaitable, Callable, Literal

from .failures import REFUNDED_FAILURE_CODES
from .flags import PromptError
from .models import GenerationParams, Job
from .policy import PLACE_REFUSALS, AdmissionCounts, Limits, Policy, Refusal, Rules, is_dm
from .text import channel_ref, money

if TYPE_CHECKING:  # the store imports this module's admission types
    from ..store import Store

__all__ = ["Admission", "AdmissionCounts", "AdmissionRules", "LimitReached", "Limits", "NotEnabled",
           "Prices", "Quotas", "Refusal", "Usage", "day_start", "month_start"]


class LimitReached(PromptError):
    """A limit stops this request; the message names it and when it resets."""


class NotEnabled(PromptError):
    """lumabot is not enabled where the person asked (the channel allow-list, or DMs off)."""


@dataclass(frozen=True)
class Prices:
    """US dollars per image (built by `Settings.prices()`, where the defaults live)."""

    uni_1: float
    uni_1_edit: float
    uni_1_max: float
    uni_1_max_edit: float
    extra_reference: float

    def of(self, params: GenerationParams) -> float:
        """Estimated price of one generation (each reference beyond the first costs extra)."""
        edit = params.type == "image_edit"
        if params.model == "uni-1-max":
            base = self.uni_1_max_edit if edit else self.uni_1_max
        else:
            base = self.uni_1_edit if edit else self.uni_1
        return round(base + self.extra_reference * max(0, len(params.image_refs) - 1), 6)


@dataclass
class Usage:
    images: int = 0          # delivered
    requested: int = 0       # delivered or still under way (what counts against a daily limit)
    spend: float = 0.0       # estimated, for generations Luma charges for
    pending: float = 0.0     # estimated cost of jobs not submitted yet

    @property
    def committed(self) -> float:
        return self.spend + self.pending


@dataclass(frozen=True)
class AdmissionRules:
    """What a new job is admitted under: the environment's defaults, which the store resolves
    against the workspace's policy inside the admitting transaction."""

    limits: Limits
    day_start: float
    month_start: float
    is_admin: bool | None = None   # looked up only when the policy reserves uni-1-max for admins
    refunded: frozenset[str] = REFUNDED_FAILURE_CODES

    async def decide(self, policy: Policy, job: Job,
                     count: Callable[[Rules], Awaitable[AdmissionCounts]]) -> "Admission":
        """Admission under `policy` (read in the admitting transaction): the place and the
        model first, then the limits, with the counts `count` takes in the same transaction
        (only those the rules in force need)."""
        rules = policy.resolve(self.limits)
        refusal = rules.place_refusal(job.channel_id) or rules.model_refusal(job.params.model, self.is_admin)
        if refusal is not None:
            return Admission.refused(refusal, AdmissionCounts(), rules)
        counts = await count(rules)
        refusal = rules.refusal(job, counts, self.is_admin)
        return Admission.refused(refusal, counts, rules) if refusal else Admission.created(counts, rules)

    async def count(self, job: Job, rules: Rules, *, waiting: int,
                    usage: Callable[[float, str | None, str | None], Awaitable[Usage]]) -> AdmissionCounts:
        """The counts `rules` need, taken with the store's `usage(since, user_id, channel_id)`
        inside its admitting transaction (`waiting`: the person's jobs waiting for a slot)."""
        none = Usage()
        mine = await usage(self.day_start, job.user_id, None) if rules.daily_images(job.user_id) is not None else none
        today = await usage(self.day_start, None, None) if rules.day_budget is not None else none
        month = await usage(self.month_start, None, None) if rules.month_budget is not None else none
        channel = (await usage(self.month_start, None, job.channel_id)
                   if rules.channel_budget(job.channel_id) is not None else none)
        return AdmissionCounts(waiting=waiting, requested_today=mine.requested, committed_today=today.committed,
                               committed_month=month.committed, committed_channel=channel.committed)


@dataclass(frozen=True)
class Admission:
    """The store's answer to a new job."""

    status: Literal["created", "duplicate", "refused"]
    refusal: Refusal | None = None
    counts: AdmissionCounts | None = None
    rules: Rules | None = None     # the policy in force when it was decided

    @classmethod
    def created(cls, counts: AdmissionCounts | None = None, rules: Rules | None = None) -> "Admission":
        return cls("created", counts=counts, rules=rules)

    @classmethod
    def duplicate(cls) -> "Admission":
        return cls("duplicate")

    @classmethod
    def refused(cls, refusal: Refusal, counts: AdmissionCounts, rules: Rules | None = None) -> "Admission":
        return cls("refused", refusal, counts, rules)


def day_start(now: float) -> float:
    d = datetime.fromtimestamp(now, timezone.utc)
    return d.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


def month_start(now: float) -> float:
    d = datetime.fromtimestamp(now, timezone.utc)
    return d.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()


def next_month_start(now: float) -> float:
    d = datetime.fromtimestamp(month_start(now), timezone.utc)
    return (d.replace(year=d.year + 1, month=1) if d.month == 12 else d.replace(month=d.month + 1)).timestamp()


def resets(now: float) -> str:
    """When the daily limits reset, as a user reads it."""
    left = int(day_start(now) + 86400 - now)
    hours, minutes = divmod(left // 60, 60)
    return f"at 00:00 UTC (in {hours} h {minutes:02d} min)" if hours else f"at 00:00 UTC (in {minutes} min)"


def month_resets(now: float) -> str:
    return f"on {datetime.fromtimestamp(next_month_start(now), timezone.utc):%B 1} (UTC)"


def not_enabled_text(channel_id: str, rules: Rules) -> str:
    """What a person is told where lumabot does not work."""
    where = "in direct messages" if is_dm(channel_id) else f"in {channel_ref(channel_id)}"
    places = [channel_ref(c) for c in rules.channels] if rules.channels is not None else ["every channel it is in"]
    if rules.dms:
        places.append("direct messages with lumabot")
    works = f"it works in {', '.join(places)}" if places else "it is not enabled anywhere right now"
    return f"lumabot is not enabled {where}; {works}. Ask a workspace admin if you need it here."


class Quotas:
    def __init__(self, store: Store, prices: Prices, limits: Limits, *,
                 clock: Callable[[], float] = time.time):
        self.store = store
        self.prices = prices
        self.limits = limits
        self._clock = clock

    async def rules_in_force(self, team_id: str) -> Rules:
        """The workspace's policy over the environment's defaults, as the database has it now."""
        return (await self.store.get_policy(team_id)).resolve(self.limits)

    async def usage(self, team_id: str, since: float, user_id: str | None = None) -> Usage:
        return await self.store.usage(team_id, since, user_id=user_id, refunded=REFUNDED_FAILURE_CODES)

    def admission(self, job: Job, *, is_admin: bool | None = None) -> AdmissionRules:
        """Price the job; what it is admitted under (resolved and applied by the store, atomically)."""
        job.cost_usd = self.prices.of(job.params)
        now = self._clock()
        return AdmissionRules(limits=self.limits, day_start=day_start(now), month_start=month_start(now),
                              is_admin=is_admin)

    def refusal(self, admission: Admission, job: Job) -> PromptError:
        """What the person is told when the policy or a limit refuses their request."""
        now = self._clock()
        rules = admission.rules or Policy().resolve(self.limits)
        counts = admission.counts or AdmissionCounts()
        refusal = admission.refusal
        if refusal in PLACE_REFUSALS:
            return NotEnabled(not_enabled_text(job.channel_id, rules))
        if refusal == "max_model":
            who = "workspace admins" if rules.max_model == "admins" else "nobody"
            return LimitReached(f"In this workspace uni-1-max is for {who}. Leave out `--max` to "
                                "use uni-1.")
        if refusal == "waiting":
            return LimitReached(f"You already have {counts.waiting} images waiting in line (the limit "
                                f"is {rules.max_waiting}). Wait for one of them to start, then try again.")
        if refusal == "daily_images":
            limit = (f"your own daily limit of {rules.user_limits[job.user_id]} images" if job.user_id in rules.user_limits
                     else f"the daily limit of {rules.default_daily_images} images per person")
            return LimitReached(f"You have reached {limit}. It resets {resets(now)}.")
        cost = f"this image would cost about {money(job.cost_usd)}"
        if refusal == "daily_budget":
            return LimitReached(
                f"The workspace has reached its daily Luma budget of {money(rules.day_budget or 0)} "
                f"({money(counts.committed_today)} spent or committed today; {cost}). It resets {resets(now)}.")
        if refusal == "monthly_budget":
            return LimitReached(
                f"The workspace has reached its monthly Luma budget of {money(rules.month_budget or 0)} "
                f"({money(counts.committed_month)} spent or committed this month; {cost}). It resets "
                f"{month_resets(now)}.")
        return LimitReached(
            f"This channel has reached its monthly Luma budget of "
            f"{money(rules.channel_budget(job.channel_id) or 0)} ({money(counts.committed_channel)} spent "
            f"or committed this month; {cost}). It resets {month_resets(now)}.")

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
