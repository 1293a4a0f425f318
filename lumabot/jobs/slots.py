"""Admission to Luma: which waiting job may be sent now, and when the next may. One rule for one
process (runner/scheduler.py keeps the state in memory) and for several replicas (store/slots.py
keeps it in the database, runner/shared_scheduler.py drives it); each only loads and saves the
state these functions decide on.

Luma refuses (does not queue) requests over its per-account limits. A job holds a slot from its
create until its generation is terminal at Luma. At most the concurrency, or the lower ceiling
learned from a 429 "Too many concurrent jobs", is held; that ceiling is probed one higher after
a probe period. Submissions are paced under the requests-per-minute allowance learned from
Luma's X-RateLimit-* headers; after a 429 "Rate limit exceeded" nobody submits until the pause
ends. Waiting jobs are served round-robin between workspaces, then between the people of each:
the workspace served longest ago goes next, and in it the person served longest ago; a workspace
(a person) that starts waiting joins the back of the line of workspaces (of its people), a
retry the front; a person's own line is retries first (the latest first), then the rest in the
order they came. So one busy workspace cannot starve another, nor one person their colleagues.

A waiting job is known by its line key, `workspace/person` (`line_key`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


def line_key(team_id: str, user_id: str) -> str:
    """The line a job waits in: its person's, within its workspace's."""
    return f"{team_id}/{user_id}"


def team_of(key: str) -> str:
    """The workspace of a line key (a key without one is a workspace of its own)."""
    return key.split("/", 1)[0]


def probe_period(rate_window: float) -> float:
    """How long a concurrency ceiling learned from a 429 is trusted before probing one slot
    higher: 15 rate windows (15 minutes at Luma's scale), so probing costs at most a few 429s
    an hour."""
    return 15 * rate_window


@dataclass(frozen=True)
class Ceiling:
    """The concurrency learned from a 429 (None: the configured one), until when it holds."""

    estimate: int | None = None
    until: float | None = None

    def now(self, concurrency: int, at: float, probe: float) -> "Ceiling":
        """The ceiling at `at`: once its time has passed, one slot higher (probing), back to
        none when that reaches the configured concurrency."""
        if self.estimate is None or self.until is None or at < self.until:
            return self
        raised = self.estimate + 1
        return Ceiling() if raised >= concurrency else Ceiling(raised, at + probe)

    def limit(self, concurrency: int) -> int:
        return concurrency if self.estimate is None else min(self.estimate, concurrency)


@dataclass(frozen=True)
class Grant:
    """How many waiting jobs may be sent now, and (when that holds some back) the seconds until
    one more may: the end of a pause, or of the oldest submission's rate window."""

    count: int
    wait: float = 0.0


def grant(*, in_flight: int, limit: int, recent: Sequence[float], rate_limit: int | None,
          paused_until: float, now: float, rate_window: float) -> Grant:
    """`recent`: when the submissions still in the rate window were let through, oldest first."""
    if paused_until > now:
        return Grant(0, paused_until - now)
    free = max(0, limit - in_flight)
    if not rate_limit or len(recent) + free <= rate_limit:
        return Grant(free)
    count = max(0, rate_limit - len(recent))
    index = len(recent) + count - rate_limit  # the submission whose window must end first
    return Grant(count, recent[index] + rate_window - now if index < len(recent) else rate_window)


def paused(paused_until: float, now: float, seconds: float) -> float:
    """Luma said "Rate limit exceeded": nobody submits until the later of both."""
    return max(paused_until, now + max(0.0, seconds))


def too_many_concurrent(ceiling: Ceiling, *, others_in_flight: int, now: float, retry_after: float,
                        probe: float) -> tuple[Ceiling, float | None]:
    """Luma said "Too many concurrent jobs" (the job's own slot freed): the account holds no more
    than the others in flight, for a probe period; with none in flight, someone else uses the
    account: (the ceiling, seconds to pause)."""
    if others_in_flight == 0:
        return ceiling, retry_after
    lowest = others_in_flight if ceiling.estimate is None else min(ceiling.estimate, others_in_flight)
    return Ceiling(max(1, lowest), now + max(retry_after, probe)), None


def rate_headers(limit: int | None, remaining: int | None, reset_at_unix: float | None, now_unix: float,
                 rate_window: float) -> tuple[int | None, float | None]:
    """From a create's X-RateLimit-* headers: (the allowance to learn, seconds to pause: none left
    until the window resets)."""
    learned = limit if limit is not None and limit > 0 else None
    wait = None
    if remaining is not None and remaining <= 0 and reset_at_unix is not None and reset_at_unix > now_unix:
        wait = min(reset_at_unix - now_unix, rate_window)
    return learned, wait


def joins(turn: int, *, front: bool) -> int:
    """The place in the line of people of a person who starts waiting at `turn` (the account's
    counter): the back, or for a retry the front. The person with the lowest goes next."""
    return -turn if front else turn
