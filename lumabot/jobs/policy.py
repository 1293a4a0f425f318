"""A workspace's admin policy: where lumabot works, who may use uni-1-max, budgets, per-person
limits and how long history is kept. It lives in the database (one row per workspace, changed
with `/luma admin`), so it takes effect at once on every replica; what it does not set falls
back to the environment defaults (`Limits`, built by `Settings.limits()`).

Pure domain: `Policy.resolve(limits)` gives the rules in force, and `Rules.refusal` decides
admission from what the store counted in the admitting transaction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, Field

from .models import Job

MaxAccess = Literal["everyone", "admins", "nobody"]
Refusal = Literal["channel", "dms", "max_model", "waiting", "daily_images", "daily_budget",
                  "monthly_budget", "channel_budget"]
PLACE_REFUSALS: frozenset[str] = frozenset({"channel", "dms"})


@dataclass(frozen=True)
class Limits:
    """The environment's defaults (built by `Settings.limits()`); None: no such limit."""

    max_queued_per_user: int
    user_daily_images: int | None
    daily_budget_usd: float | None
    monthly_budget_usd: float | None = None
    retention_days: int = 90


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

    def resolve(self, limits: Limits) -> "Rules":
        given = self.model_fields_set
        return Rules(
            channels=tuple(self.channels) if self.channels is not None else None,
            dms=self.dms, max_model=self.max_model,
            month_budget=self.month_budget if "month_budget" in given else limits.monthly_budget_usd,
            day_budget=self.day_budget if "day_budget" in given else limits.daily_budget_usd,
            channel_budgets=dict(self.channel_budgets), user_limits=dict(self.user_limits),
            default_daily_images=limits.user_daily_images, max_waiting=limits.max_queued_per_user,
            retention_days=self.retention_days if self.retention_days is not None else limits.retention_days)


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

    def refusal(self, job: Job, counts: "AdmissionCounts", is_admin: bool | None) -> Refusal | None:
        """Admission, in order: place, model, then the limits counted in the transaction."""
        refusal = self.place_refusal(job.channel_id) or self.model_refusal(job.params.model, is_admin)
        if refusal is not None:
            return refusal
        if counts.waiting >= self.max_waiting:
            return "waiting"
        daily = self.daily_images(job.user_id)
        if daily is not None and counts.requested_today >= daily:
            return "daily_images"
        cost = job.cost_usd
        if self.day_budget is not None and counts.committed_today + cost > self.day_budget + 1e-9:
            return "daily_budget"
        if self.month_budget is not None and counts.committed_month + cost > self.month_budget + 1e-9:
            return "monthly_budget"
        channel = self.channel_budget(job.channel_id)
        if channel is not None and counts.committed_channel + cost > channel + 1e-9:
            return "channel_budget"
        return None


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
