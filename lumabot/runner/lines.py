"""Place in line: "#N in line" on waiting jobs' status messages, kept up to date in batches
(chat.update is rate-limited, so only meaningful moves are shown, front of the line first)."""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

from ..jobs.models import Job
from .schedulers import AccountSchedulers

log = logging.getLogger("lumabot.runner")

LOOK_AHEAD = 2000  # places in line looked at per tick


class LineReporter:
    def __init__(self, scheduler: AccountSchedulers, show: Callable[[Job], Awaitable[None]],
                 live_job: Callable[[str], Job | None],
                 *, interval: float, per_tick: int,
                 load: Callable[[str], Awaitable[Job | None]] | None = None):
        self.scheduler = scheduler
        self.show = show          # updates a job's status message (runner/status.py)
        self.live_job = live_job
        self.load = load          # a waiting job without a live object (parked), from the store
        self.interval = interval
        self.per_tick = per_tick
        self._shown: dict[str, int] = {}  # the place shown on parked jobs' status messages

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.report_once()
            except Exception:
                log.exception("place-in-line update failed")

    def forget(self, job_id: str) -> None:
        self._shown.pop(job_id, None)

    async def report_once(self) -> int:
        """Update the status messages whose place in line changed meaningfully, front of the
        line first, at most `per_tick` of them. Returns how many were updated. Only the first
        `LOOK_AHEAD` places are looked at (a tick costs that at most, however long the line):
        further back a job shows no number until it comes that close."""
        due: list[tuple[int, str, Job | None]] = []
        for job_id, place in await self.scheduler.front(LOOK_AHEAD):
            job = self.live_job(job_id)
            if job is not None and not job.status_ts:
                continue
            shown = job.queue_position if job is not None else self._shown.get(job_id)
            if (job is not None or self.load is not None) and worth_showing(shown, place):
                due.append((place, job_id, job))
                if len(due) == self.per_tick:
                    break
        updated = 0
        for place, job_id, job in due:
            if job is None:
                assert self.load is not None
                job = await self.load(job_id)
                if job is None or not job.status_ts or job.state.finished:
                    continue
                self._shown[job_id] = place
            job.queue_position = place
            await self.show(job)
            updated += 1
        return updated


def worth_showing(shown: int | None, place: int) -> bool:
    """Is a new place in line worth a chat.update? Near the front every step counts; further
    back only a real move (a quarter of the way, either way) does."""
    if shown == place:
        return False
    if shown is None or place <= 3:
        return True
    return place <= shown * 0.75 or place >= shown * 1.25
