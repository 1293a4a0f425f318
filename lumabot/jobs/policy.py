"""A workspace's admin policy: where lumabot works, who may use uni-1-max, budgets, per-person
limits and how long history is kept. It lives in the database (one row per workspace, changed
with `/luma admin`), so it takes effect at once on every replica; what it does not set falls
back to the environment defaults (`Limits`, built by `Settings.limits()`).

Pure domain: `Policy.resolve(limits)` gives the rules in force, and `Rules.refusal` decides
admission from what the store counted in the admitting transaction."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Sequence, TypeVar

from pydantic import BaseModel, Field

from .models import Job

MaxAccess = Literal["everyone", "admins", "nobody"]
Refusal = Literal["channel", "dms", "max_model", "web", "per_request", "waiting", "daily_images",
                  "daily_budget", "monthly_budget", "channel_budget"]
PLACE_REFUSALS: frozenset[str] = frozenset({"channel", "dms"})


@dataclass(frozen=True)
class Limits:
    """The environment's defaults (built by `Settings.limits()`); None: no such limit."""

    max_queued_per_user: int
    user_daily_images: int | None
    daily_budget_usd: float | None
    monthly_budget_usd: float | None = None
    retention_days: int = 90
    max_images_per_request: int = 4
    confirm_above_usd: float | None = 0.50   # a request estimated above it waits for a confirmation


class Policy(BaseModel):
    """What admins set. A budget or limit field that was never set (absent from
    `model_fields_set`) means "the environment's default"; set to None it means "none"."""

    channels: list[str] | None = None          # None: every channel lumabot is in
    dms: bool = True                           # direct messages with lumabot
    max_model: MaxAccess = "everyone"          # who may use uni-1-max
    month_budget: float | None = None          # US dollars per UTC calendar month
    day_budget: float | None = None            # US dollars per UTC day
    channel_budgets: dict[str, float] = Field(default_factory=dict)  # per channel per month
    user_limits: dict[str, int] = Field(default_factory=dict)        # images per person per day
    retention_days: int | None = None
    per_request: int | None = None             # images one request may make (`--n`, permutations)
    web: bool = True                           # Luma's web search (`--web`)
    default_preset: str | None = None          # a workspace preset every request starts from
    channel_presets: dict[str, str] = Field(default_factory=dict)  # channel -> its default preset

    def resolve(self, limits: Limits, org: "Policy | None" = None) -> "Rules":
        """The rules in force: this policy over the environment's defaults; on Enterprise Grid,
        never looser than its organisation's policy `org` (a workspace only tightens it)."""
        mine = self._resolve(limits)
        return mine.within(org._resolve(limits)) if org is not None else mine

    def _resolve(self, limits: Limits) -> "Rules":
        given = self.model_fields_set
        return Rules(
            channels=tuple(self.channels) if self.channels is not None else None,
            dms=self.dms, max_model=self.max_model,
            month_budget=self.month_budget if "month_budget" in given else limits.monthly_budget_usd,
            day_budget=self.day_budget if "day_budget" in given else limits.daily_budget_usd,
            channel_budgets=dict(self.channel_budgets), user_limits=dict(self.user_limits),
            default_daily_images=limits.user_daily_images, max_waiting=limits.max_queued_per_user,
            retention_days=self.retention_days if self.retention_days is not None else limits.retention_days,
            per_request=self.per_request if self.per_request is not None else limits.max_images_per_request,
            web=self.web, default_preset=self.default_preset, channel_presets=dict(self.channel_presets))


MAX_ACCESS_ORDER: tuple[str, ...] = ("everyone", "admins", "nobody")  # looser to stricter


N = TypeVar("N", int, float)


def _least(a: N | None, b: N | None) -> N | None:
    """The tighter of two limits (None: no limit)."""
    return b if a is None else a if b is None else min(a, b)


def is_dm(channel_id: str) -> bool:
    """A direct message with lumabot (Slack's DM channel ids start with D)."""
    return channel_id.startswith("D")


@dataclass(frozen=True)
class Rules:
    """The policy in force: the database's policy over the environment's defaults."""

    channels: tuple[str, ...] | None
    dms: bool
    max_model: MaxAccess
    month_budget: float | None
    day_budget: float | None
    channel_budgets: dict[str, float]
    user_limits: dict[str, int]
    default_daily_images: int | None
    max_waiting: int
    retention_days: int
    per_request: int = 4
    web: bool = True
    default_preset: str | None = None
    channel_presets: dict[str, str] = field(default_factory=dict)

    def within(self, org: "Rules") -> "Rules":
        """These rules, tightened to an organisation's wherever they are looser."""
        users = set(self.user_limits) | set(org.user_limits)
        budgets = set(self.channel_budgets) | set(org.channel_budgets)
        return Rules(
            channels=(org.channels if self.channels is None else self.channels if org.channels is None
                      else tuple(c for c in self.channels if c in org.channels)),
            dms=self.dms and org.dms,
            max_model=max(self.max_model, org.max_model, key=MAX_ACCESS_ORDER.index),
            month_budget=_least(self.month_budget, org.month_budget),
            day_budget=_least(self.day_budget, org.day_budget),
            channel_budgets={c: v for c in budgets
                             if (v := _least(self.channel_budgets.get(c), org.channel_budgets.get(c))) is not None},
            user_limits={u: v for u in users
                         if (v := _least(self.daily_images(u), org.daily_images(u))) is not None},
            default_daily_images=_least(self.default_daily_images, org.default_daily_images),
            max_waiting=min(self.max_waiting, org.max_waiting),
            retention_days=min(self.retention_days, org.retention_days),
            per_request=min(self.per_request, org.per_request),
            web=self.web and org.web,
            default_preset=self.default_preset or org.default_preset,
            channel_presets={**org.channel_presets, **self.channel_presets})

    def preset_of(self, channel_id: str) -> tuple[str | None, str | None]:
        """(the channel's default preset, the workspace's)."""
        return self.channel_presets.get(channel_id), self.default_preset

    def daily_images(self, user_id: str) -> int | None:
        """A person's images per day (their own limit, else everyone's)."""
        return self.user_limits.get(user_id, self.default_daily_images)

    def channel_budget(self, channel_id: str) -> float | None:
        return self.channel_budgets.get(channel_id)

    def place_refusal(self, channel_id: str) -> Refusal | None:
        """May lumabot work here at all?"""
        if is_dm(channel_id):
            return None if self.dms else "dms"
        if self.channels is not None and channel_id not in self.channels:
            return "channel"
        return None

    def model_refusal(self, model: str, is_admin: bool | None) -> Refusal | None:
        """May this person use this model? (`is_admin` None: not looked up, so not an admin.)"""
        if model != "uni-1-max" or self.max_model == "everyone":
            return None
        if self.max_model == "admins" and is_admin:
            return None
        return "max_model"

    def request_refusal(self, jobs: Sequence[Job], is_admin: bool | None) -> Refusal | None:
        """What refuses a request before anything is counted: the place, the model, web
        search, and how many images it makes."""
        first = jobs[0]
        refusal = self.place_refusal(first.channel_id)
        for job in jobs:
            refusal = refusal or self.model_refusal(job.params.model, is_admin)
            if refusal is None and job.params.web_search and not self.web:
                refusal = "web"
        if refusal is None and len(jobs) > self.per_request:
            refusal = "per_request"
        return refusal

    def refusal(self, jobs: Sequence[Job], counts: "AdmissionCounts", is_admin: bool | None) -> Refusal | None:
        """Admission of a request (all its images or none), in order: place, model, then the
        limits counted in the transaction."""
        refusal = self.request_refusal(jobs, is_admin)
        return refusal if refusal is not None else self.limit_refusal(jobs, counts)

    def limit_refusal(self, jobs: Sequence[Job], counts: "AdmissionCounts") -> Refusal | None:
        """Which counted limit the images of `jobs` would go over, if any."""
        if not jobs:
            return None
        n, cost, person = len(jobs), sum(job.cost_usd for job in jobs), jobs[0]
        if counts.waiting + n > self.max_waiting:
            return "waiting"
        daily = self.daily_images(person.user_id)
        if daily is not None and counts.requested_today + n > daily:
            return "daily_images"
        if self.day_budget is not None and counts.committed_today + cost > self.day_budget + 1e-9:
            return "daily_budget"
        if self.month_budget is not None and counts.committed_month + cost > self.month_budget + 1e-9:
            return "monthly_budget"
        channel = self.channel_budget(person.channel_id)
        if channel is not None and counts.committed_channel + cost > channel + 1e-9:
            return "channel_budget"
        return None

    def fitting(self, jobs: Sequence[Job], counts: "AdmissionCounts") -> int:
        """How many of the request's images the counted limits would let through."""
        return next(k for k in range(len(jobs), -1, -1) if self.limit_refusal(jobs[:k], counts) is None)


@dataclass(frozen=True)
class AdmissionCounts:
    """What the store counted, in the admitting transaction (spend includes the cost of jobs
    admitted but not sent yet). Counts a rule does not need are left at 0."""

    waiting: int = 0               # the person's jobs waiting for a Luma slot
    requested_today: int = 0       # the person's images today (delivered or under way)
    committed_today: float = 0.0   # the workspace's spend today
    committed_month: float = 0.0   # the workspace's spend this month
    committed_channel: float = 0.0  # the channel's spend this month (when it has a budget)


@dataclass(frozen=True)
class PolicyChange:
    """One line of `/luma admin log`."""

    team_id: str
    user_id: str
    at: float
    change: str
