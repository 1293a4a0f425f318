"""Where a batch (the images of one request: `--n`, permutations) stands, as its one status
message shows it. Pure: built from the batch's jobs."""

from __future__ import annotations

from dataclasses import dataclass

from .models import Job, JobState


@dataclass(frozen=True)
class BatchProgress:
    """What the status message of a batch shows; the runner updates the message only when
    this changes."""

    size: int
    waiting: int = 0            # not sent to Luma yet
    generating: int = 0         # at Luma, or being delivered
    done: int = 0
    failed: int = 0
    cancelled: int = 0
    place: int | None = None    # the front-most waiting image's place in line
    capacity: bool = False      # Luma is full: the waiting ones wait for it
    files: tuple[str, ...] = ()  # when every image is finished: the delivered images' Slack files
    generations: tuple[tuple[str, str], ...] = ()  # and their (job id, Luma generation id)
    started_at: float = 0.0
    finished_at: float | None = None
    cancelled_by: str | None = None

    @classmethod
    def of(cls, jobs: list[Job]) -> "BatchProgress":
        states = [j.state for j in jobs]
        finished = all(s.finished for s in states)
        waiting = [j for j in jobs if j.state in (JobState.QUEUED, JobState.SUBMITTING)]
        places = [j.queue_position for j in waiting if j.queue_position]
        shown = [j for j in jobs if finished and j.state == JobState.DONE and j.slack_file_id and not j.deleted]
        return cls(
            size=len(jobs),
            waiting=len(waiting),
            generating=sum(s in (JobState.GENERATING, JobState.DELIVERING) for s in states),
            done=states.count(JobState.DONE),
            failed=states.count(JobState.FAILED),
            cancelled=states.count(JobState.CANCELLED),
            place=min(places) if places else None,
            capacity=any(j.waiting_reason == "capacity" for j in waiting),
            files=tuple(j.slack_file_id or "" for j in shown),
            generations=tuple((j.id, j.generation_id or "") for j in shown),
            started_at=min(j.created_at for j in jobs),
            finished_at=max(j.finished_at or 0.0 for j in jobs) if finished else None,
            cancelled_by=next((j.cancelled_by for j in jobs if j.cancelled_by), None))

    @classmethod
    def new(cls, job: Job) -> "BatchProgress":
        """A batch just admitted: every image waits."""
        return cls(size=job.batch_size, waiting=job.batch_size, started_at=job.created_at)

    @property
    def finished(self) -> bool:
        return self.done + self.failed + self.cancelled == self.size

    @property
    def under_way(self) -> bool:
        """Some image is at Luma or finished: the message counts what is done."""
        return bool(self.done or self.generating or self.failed)

    def shown(self) -> tuple[object, ...]:
        """What the status message shows of this (it is updated only when that changes)."""
        if self.finished:
            return ("finished", self.done, self.failed, self.cancelled, self.files)
        if self.under_way:
            return ("under way", self.done, self.failed, self.waiting > 0)
        return ("waiting", self.place, self.capacity)
