"""Cost and limits: what a job is estimated to cost, whether a person may start one more, and
the usage report of `/luma usage`. Days are UTC days."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Callable, Literal

from .failures import REFUNDED_FAILURE_CODES
from .flags import PromptError
from .models import GenerationParams, Job

if TYPE_CHECKING:  # the store imports this module's admission types
    from ..store import Store


class LimitReached(PromptError):
    """A limit stops this request; the message names it and when it resets."""


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


@dataclass(frozen=True)
class Limits:
    """Built by `Settings.limits()`; None: no such limit."""

    max_queued_per_user: int
    user_daily_images: int | None
    daily_budget_usd: float | None


@dataclass
class Usage:
    images: int = 0          # delivered
    requested: int = 0       # delivered or still under way (what counts against a daily limit)
    spend: float = 0.0       # estimated, for generations Luma charges for
    pending: float = 0.0     # estimated cost of jobs not submitted yet


Refusal = Literal["waiting", "daily_images", "daily_budget"]


@dataclass(frozen=True)
class AdmissionCounts:
    """What the store counted, in the admitting transaction."""

    waiting: int = 0               # the person's jobs waiting for a Luma slot
    requested_today: int = 0       # the person's images today (delivered or under way)
    committed_today: float = 0.0   # the workspace's spend today plus the cost of jobs waiting


@dataclass(frozen=True)
class AdmissionRules:
    """The limits a new job is admitted under; the store applies them atomically."""

    max_waiting: int
    daily_images: int | None
    daily_budget: float | None
    day_start: float
    refunded: frozenset[str] = REFUNDED_FAILURE_CODES

    def refusal(self, counts: AdmissionCounts, cost: float) -> Refusal | None:
        if counts.waiting >= self.max_waiting:
            return "waiting"
        if self.daily_images is not None and counts.requested_today >= self.daily_images:
            return "daily_images"
        if self.daily_budget is not None and counts.committed_today + cost > self.daily_budget + 1e-9:
            return "daily_budget"
        return None


@dataclass(frozen=True)
class Admission:
    """The store's answer to a new job."""

    status: Literal["created", "duplicate", "refused"]
    refusal: Refusal | None = None
    counts: AdmissionCounts | None = None

    @classmethod
    def created(cls) -> "Admission":
        return cls("created")

    @classmethod
    def duplicate(cls) -> "Admission":
        return cls("duplicate")

    @classmethod
    def refused(cls, refusal: Refusal, counts: AdmissionCounts) -> "Admission":
        return cls("refused", refusal, counts)


def day_start(now: float) -> float:
    d = datetime.fromtimestamp(now, timezone.utc)
    return d.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


def resets(now: float) -> str:
    """When the daily limits reset, as a user reads it."""
    left = int(day_start(now) + 86400 - now)
    hours, minutes = divmod(left // 60, 60)
    return f"at 00:00 UTC (in {hours} h {minutes:02d} min)" if hours else f"at 00:00 UTC (in {minutes} min)"


def _money(v: float) -> str:
    return f"${v:,.2f}"


class Quotas:
    def __init__(self, store: Store, prices: Prices, limits: Limits, *,
                 clock: Callable[[], float] = time.time):
        self.store = store
        self.prices = prices
        self.limits = limits
        self._clock = clock

    async def usage(self, team_id: str, since: float, user_id: str | None = None) -> Usage:
        return await self.store.usage(team_id, since, user_id=user_id, refunded=REFUNDED_FAILURE_CODES)

    def rules(self, job: Job) -> AdmissionRules:
        """Price the job; the limits it is admitted under (applied by the store, atomically)."""
        job.cost_usd = self.prices.of(job.params)
        limits = self.limits
        return AdmissionRules(max_waiting=limits.max_queued_per_user,
                              daily_images=limits.user_daily_images,
                              daily_budget=limits.daily_budget_usd,
                              day_start=day_start(self._clock()))

    def refusal_message(self, admission: Admission, job: Job) -> str:
        """What the person is told when a limit refuses their request."""
        limits, now = self.limits, self._clock()
        counts = admission.counts or AdmissionCounts()
        if admission.refusal == "waiting":
            return (f"You already have {counts.waiting} images waiting in line (the limit is "
                    f"{limits.max_queued_per_user}). Wait for one of them to start, then try again.")
        if admission.refusal == "daily_images":
            return (f"You have reached the daily limit of {limits.user_daily_images} images per "
                    f"person. It resets {resets(now)}.")
        budget = limits.daily_budget_usd or 0.0
        return (f"The workspace has reached its daily Luma budget of {_money(budget)} "
                f"({_money(counts.committed_today)} spent or committed today; this image would cost "
                f"about {_money(job.cost_usd)}). It resets {resets(now)}.")

    def limits_text(self) -> str:
        parts = [f"at most {self.limits.max_queued_per_user} images waiting in line per person"]
        if self.limits.user_daily_images is not None:
            parts.append(f"{self.limits.user_daily_images} images per person per day")
        if self.limits.daily_budget_usd is not None:
            parts.append(f"{_money(self.limits.daily_budget_usd)} of estimated Luma spend per day "
                         "for the workspace")
        text = "; ".join(parts) + "."
        if len(parts) > 1:
            text += " Daily limits reset at 00:00 UTC."
        return text + (" Prompts up to 6,000 characters; images to edit up to 50 MB (10 MB each "
                       "in the `/imagine` form, Slack's limit for forms).")

    async def report(self, team_id: str, user_id: str) -> str:
        """`/luma usage`: the person's and the workspace's images and estimated spend."""
        now = self._clock()
        today, month = day_start(now), now - 30 * 86400
        me_day, me_month = await self.usage(team_id, today, user_id), await self.usage(team_id, month, user_id)
        ws_day, ws_month = await self.usage(team_id, today), await self.usage(team_id, month)

        def line(day: Usage, month_: Usage) -> str:
            return (f"today {day.images} images · {_money(day.spend)} · last 30 days "
                    f"{month_.images} images · {_money(month_.spend)}")

        limits = []
        if self.limits.user_daily_images is not None:
            left = max(0, self.limits.user_daily_images - me_day.requested)
            limits.append(f"{self.limits.user_daily_images} images per person per day ({left} left for you)")
        if self.limits.daily_budget_usd is not None:
            money_left = max(0.0, self.limits.daily_budget_usd - ws_day.spend - ws_day.pending)
            limits.append(f"{_money(self.limits.daily_budget_usd)} per day for the workspace "
                          f"({_money(money_left)} left)")
        limits.append(f"at most {self.limits.max_queued_per_user} images waiting in line per person")
        lines = [
            f"*You:* {line(me_day, me_month)}",
            f"*Workspace:* {line(ws_day, ws_month)}",
            "*Limits:* " + "; ".join(limits) + (f". Daily limits reset {resets(now)}."
                                                if len(limits) > 1 else ". No daily limits are set."),
            "_Spend is estimated from Luma's price list; failed images Luma refunds are not counted._",
        ]
        return "\n".join(lines)

