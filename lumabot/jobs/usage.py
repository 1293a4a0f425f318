"""What usage reports, exports and retention work with: rows as the store gives them."""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class UsageLine:
    """Images and estimated spend of one person in one channel with one model and type, over a
    period (jobs still in the database and the daily totals of swept ones, together)."""

    user_id: str
    channel_id: str
    model: str
    type: str
    images: int
    spend: float


@dataclass(frozen=True)
class JobRecord:
    """One job, as `/luma admin export` writes it. `cost` is the estimated cost Luma charges
    (0 for what it does not: cancelled, refused or refunded)."""

    id: str
    created_at: float
    user_id: str
    channel_id: str
    model: str
    type: str
    outcome: str          # done, failed, cancelled, or in progress
    failure_code: str | None
    cost: float
    prompt: str | None = None


@dataclass(frozen=True)
class Removed:
    """What a retention sweep or a forget removed: rows per table."""

    jobs: int = 0
    images: int = 0
    thumbnails: int = 0
    sessions: int = 0
    votes: int = 0
    dedupe_keys: int = 0
    copies: int = 0        # other people's jobs whose copy of the person's text was removed
    running: int = 0       # the person's jobs still under way: forgotten as they finish

    @property
    def total(self) -> int:
        return self.jobs + self.images + self.thumbnails + self.sessions + self.votes + self.dedupe_keys

    def __add__(self, other: "Removed") -> "Removed":
        return Removed(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})
