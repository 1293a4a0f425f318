"""The status message of a batch (runner/status.py): what it keeps per batch, and for how long."""

from __future__ import annotations

from types import SimpleNamespace

from lumabot.jobs.models import GenerationParams, Job, JobState
from lumabot.runner.status import FORGET_AFTER, StatusBoard
from lumabot.testing.ports import MemoryNotifier


def batch(name: str, size: int = 2) -> list[Job]:
    jobs = [Job(team_id="T1", user_id="U1", channel_id="C1", status_ts="1.1", batch_size=size, batch_index=i,
                params=GenerationParams(prompt=f"{name} {i}")) for i in range(size)]
    for job in jobs:
        job.batch_id = jobs[0].id
    return jobs


class Rows:
    """The store's view of the batches: `jobs.batch(id)` answers their rows."""

    def __init__(self, *batches: list[Job]):
        self.rows = {b[0].id: b for b in batches}
        self.jobs = SimpleNamespace(batch=self._batch)

    async def _batch(self, batch_id: str) -> list[Job]:
        return [j.model_copy() for j in self.rows[batch_id]]


async def test_a_batch_taken_over_elsewhere_is_forgotten_here_after_a_while():
    """A batch whose jobs another replica took over is never shown here again: what this replica
    kept for it goes after FORGET_AFTER; a batch still shown stays, and one that comes back is
    shown afresh."""
    now = [1000.0]
    taken, running = batch("taken"), batch("running")
    notifier = MemoryNotifier()
    board = StatusBoard(Rows(taken, running), notifier, clock=lambda: now[0])  # type: ignore[arg-type]
    await board.show(taken[0])
    await board.show(running[0])
    assert board.batches == 2
    for _ in range(8):  # two hours on, the running batch still shown now and then
        now[0] += FORGET_AFTER / 4
        running[0].state = JobState.GENERATING if running[0].state == JobState.QUEUED else JobState.QUEUED
        await board.show(running[0])
    assert board.batches == 1   # the taken batch is forgotten, the running one kept
    shown = len(notifier.batch_updates)
    taken[0].state = JobState.GENERATING   # it comes back (handed back to this replica)
    await board.show(taken[0])
    assert board.batches == 2 and len(notifier.batch_updates) == shown + 1


async def test_a_finished_batch_is_forgotten_at_once():
    jobs = batch("done")
    board = StatusBoard(Rows(jobs), MemoryNotifier())  # type: ignore[arg-type]
    await board.show(jobs[0])
    assert board.batches == 1
    for job in jobs:
        job.state, job.slack_file_id = JobState.DONE, f"F{job.batch_index}"
    await board.show(jobs[1])
    assert board.batches == 0
