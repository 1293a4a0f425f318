"""Luma's limits are per account (concurrency, the requests-per-minute window, 429 pauses, the
learned estimate), so each account has its own scheduler and its own line: a workspace with its
own key never waits behind the shared account's line, nor the shared account behind it. Within
an account, the scheduler's round-robin between workspaces and then people applies.

`AccountSchedulers` makes each account's scheduler when it is first needed (`make(account)`:
scheduler.Scheduler in one process, shared_scheduler.SharedScheduler on a shared database) and
remembers which account each job was given to, so that what only names the job (a release, a
cancel) reaches the right one."""

from __future__ import annotations

from itertools import islice
from typing import Callable

from ..jobs.models import DEFAULT_ACCOUNT
from .scheduler import SlotScheduler, interleave


class AccountSchedulers:
    def __init__(self, make: Callable[[str], SlotScheduler]):
        self._make = make
        self._of: dict[str, SlotScheduler] = {}
        self._account_of: dict[str, str] = {}   # job id -> its account (other than the default)
        self._on_grant: Callable[[str], None] | None = None
        self._on_backlog: Callable[[], None] | None = None
        self.default = self.of(DEFAULT_ACCOUNT)

    @classmethod
    def single(cls, scheduler: SlotScheduler) -> AccountSchedulers:
        """Every account on one scheduler (tests and benchmarks of one account)."""
        return cls(lambda _account: scheduler)

    def listen(self, *, on_grant: Callable[[str], None], on_backlog: Callable[[], None]) -> None:
        """Set the runner's hooks on every account's scheduler, now and to come."""
        self._on_grant, self._on_backlog = on_grant, on_backlog
        for scheduler in self._of.values():
            scheduler.on_grant, scheduler.on_backlog = on_grant, on_backlog

    def of(self, account: str) -> SlotScheduler:
        scheduler = self._of.get(account)
        if scheduler is None:
            scheduler = self._of[account] = self._make(account)
            if self._on_grant is not None:
                scheduler.on_grant, scheduler.on_backlog = self._on_grant, self._on_backlog
        return scheduler

    def for_job(self, job_id: str, account: str) -> SlotScheduler:
        """The scheduler of the job's account (remembered for `release` and `unpark`)."""
        if account != DEFAULT_ACCOUNT:
            self._account_of[job_id] = account
        return self.of(account)

    def of_job(self, job_id: str) -> SlotScheduler:
        return self.of(self._account_of.get(job_id, DEFAULT_ACCOUNT))

    def release(self, job_id: str) -> None:
        self.of_job(job_id).release(job_id)

    def unpark(self, job_id: str) -> bool:
        return self.of_job(job_id).unpark(job_id)

    def forget(self, job_id: str) -> None:
        """The job's task ended: its account need not be remembered (a later grant or resume
        gives it again)."""
        self._account_of.pop(job_id, None)

    def _all(self) -> list[SlotScheduler]:
        return list({id(s): s for s in self._of.values()}.values())

    @property
    def parks(self) -> bool:
        return self.default.parks

    @property
    def waiting(self) -> int:
        return sum(s.waiting for s in self._all())

    @property
    def in_flight(self) -> int:
        return sum(s.in_flight for s in self._all())

    @property
    def parked(self) -> int:
        return sum(s.parked for s in self._all())

    async def front(self, limit: int) -> list[tuple[str, int]]:
        """The first `limit` waiting jobs of every account, each with its place in its own
        account's line (the accounts' lines taken in turn)."""
        lines = [await s.front(limit) for s in self._all()]
        return list(islice(interleave(lines), limit))

    async def stop(self) -> None:
        for scheduler in self._all():
            await scheduler.stop()

