"""Admission and cost: what a job is estimated to cost, whether a new job is admitted under the
workspace's policy and limits, and what a refused person is told. Pure: the store reads the
policy and the counts in the admitting transaction and hands them here (`AdmissionRules.needed`
says which counts; `decide` decides). Days and months are UTC calendar days and months."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal, Sequence

from .flags import PromptError
from .models import GenerationParams, Job
from .policy import PLACE_REFUSALS, AdmissionCounts, Limits, Policy, Refusal, Rules, is_dm
from .text import channel_ref, money

__all__ = ["Admission", "AdmissionCounts", "AdmissionRules", "LimitReached", "Limits", "Needed",
           "NeedsConfirmation", "NotEnabled", "Prices", "Refusal", "Usage", "Window", "day_start", "month_start", "refusal_error"]


class LimitReached(PromptError):
    """A limit stops this request; the message names it and when it resets."""


class NotEnabled(PromptError):
    """lumabot is not enabled where the person asked (the channel allow-list, or DMs off)."""


class NeedsConfirmation(PromptError):
    """The request is estimated above the preview threshold: it is held (nothing sent or
    counted) until its person confirms `request_id` or cancels it."""

    def __init__(self, request_id: str, jobs: Sequence[Job], total: float, threshold: float):
        first = jobs[0]
        what = f"{len(jobs)} images" if len(jobs) > 1 else "1 image"
        super().__init__(f"This request would make {what} ({first.params.describe()}) for about {money(total)}, "
                         f"more than {money(threshold)}. Nothing has been sent or counted yet: make it, or cancel.")
        self.request_id = request_id
        self.count = len(jobs)
        self.total = total


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
class Window:
    """A workspace's usage since a time, for one person or one channel (or all)."""

    since: float
    user_id: str | None = None
    channel_id: str | None = None


@dataclass(frozen=True)
class Needed:
    """What the store must count for a decision (only what the rules in force use)."""

    mine_today: Window | None = None      # the person's images today
    today: Window | None = None           # the workspace's spend today
    month: Window | None = None           # the workspace's spend this month
    channel_month: Window | None = None   # the channel's spend this month


@dataclass(frozen=True)
class AdmissionRules:
    """What a new job is admitted under: the environment's defaults (resolved against the
    workspace's policy, which the store reads in the admitting transaction) and the periods."""

    limits: Limits
    day_start: float
    month_start: float
    is_admin: bool | None = None   # looked up only when the policy reserves uni-1-max for admins

    def early(self, rules: Rules, jobs: Sequence[Job]) -> Refusal | None:
        """What refuses a request before anything is counted: the place, the model, web
        search, the number of images."""
        return rules.request_refusal(jobs, self.is_admin)

    def needed(self, rules: Rules, job: Job) -> Needed:
        return Needed(
            mine_today=Window(self.day_start, user_id=job.user_id) if rules.daily_images(job.user_id) is not None else None,
            today=Window(self.day_start) if rules.day_budget is not None else None,
            month=Window(self.month_start) if rules.month_budget is not None else None,
            channel_month=(Window(self.month_start, channel_id=job.channel_id)
                           if rules.channel_budget(job.channel_id) is not None else None))

    def decide(self, rules: Rules, jobs: Sequence[Job], counts: AdmissionCounts) -> "Admission":
        """All the request's images, or none (then how many would have fit)."""
        refusal = rules.refusal(jobs, counts, self.is_admin)
        if refusal is None:
            return Admission.created(counts, rules)
        return Admission.refused(refusal, counts, rules, asked=len(jobs), fits=rules.fitting(jobs, counts))


def admission_counts(waiting: int, needed: Needed, usage: dict[Window, Usage]) -> AdmissionCounts:
    """The counts a decision reads, from what the store counted for `needed`."""
    def of(window: Window | None) -> Usage:
        return usage[window] if window is not None else Usage()

    return AdmissionCounts(waiting=waiting, requested_today=of(needed.mine_today).requested,
                           committed_today=of(needed.today).committed, committed_month=of(needed.month).committed,
                           committed_channel=of(needed.channel_month).committed)


@dataclass(frozen=True)
class Admission:
    """The store's answer to a new job."""

    status: Literal["created", "duplicate", "refused"]
    refusal: Refusal | None = None
    counts: AdmissionCounts | None = None
    rules: Rules | None = None     # the policy in force when it was decided
    asked: int = 1                 # images the request makes
    fits: int = 0                  # of them, how many the limits would have let through

    @classmethod
    def created(cls, counts: AdmissionCounts | None = None, rules: Rules | None = None) -> "Admission":
        return cls("created", counts=counts, rules=rules)

    @classmethod
    def duplicate(cls) -> "Admission":
        return cls("duplicate")

    @classmethod
    def refused(cls, refusal: Refusal, counts: AdmissionCounts, rules: Rules | None = None, *,
                asked: int = 1, fits: int = 0) -> "Admission":
        return cls("refused", refusal, counts, rules, asked, fits)


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


def refusal_error(admission: Admission, job: Job, limits: Limits, now: float, *, cost: float | None = None) -> PromptError:
    """What the person is told when the policy or a limit refuses their request (`job`, the
    first of its images; `cost`, of them all)."""
    error = _refusal_error(admission, job, limits, now, job.cost_usd if cost is None else cost)
    if admission.asked > 1 and admission.refusal in COUNTED_REFUSALS:
        fits = f"{admission.fits} would fit now" if admission.fits else "none of them fits now"
        return type(error)(f"{error} This request makes {admission.asked} images and is made whole or not at "
                           f"all: {fits}. Nothing was started.", field=error.field)
    return error


COUNTED_REFUSALS = frozenset({"waiting", "daily_images", "daily_budget", "monthly_budget", "channel_budget"})


def _refusal_error(admission: Admission, job: Job, limits: Limits, now: float, total: float) -> PromptError:
    rules = admission.rules or Policy().resolve(limits)
    counts = admission.counts or AdmissionCounts()
    refusal = admission.refusal
    if refusal in PLACE_REFUSALS:
        return NotEnabled(not_enabled_text(job.channel_id, rules))
    if refusal == "max_model":
        who = "workspace admins" if rules.max_model == "admins" else "nobody"
        return LimitReached(f"In this workspace uni-1-max is for {who}. Leave out `--max` to "
                            "use uni-1.")
    if refusal == "web":
        return LimitReached("Web search is turned off in this workspace. Leave out `--web`.")
    if refusal == "per_request":
        return LimitReached(f"That request would make {admission.asked} images; one request may make at most "
                            f"{rules.per_request} here. Nothing was started: try a smaller `--n` or fewer options.",
                            field="n")
    if refusal == "waiting":
        return LimitReached(f"You already have {counts.waiting} images waiting in line (the limit "
                            f"is {rules.max_waiting}). Wait for one of them to start, then try again.")
    if refusal == "daily_images":
        limit = (f"your own daily limit of {rules.user_limits[job.user_id]} images" if job.user_id in rules.user_limits
                 else f"the daily limit of {rules.default_daily_images} images per person")
        left = (rules.daily_images(job.user_id) or 0) - counts.requested_today
        if admission.asked > 1 and left > 0:
            return LimitReached(f"That would go over {limit} ({left} left today). It resets {resets(now)}.")
        return LimitReached(f"You have reached {limit}. It resets {resets(now)}.")
    cost = (f"this request would cost about {money(total)}" if admission.asked > 1
            else f"this image would cost about {money(total)}")
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
