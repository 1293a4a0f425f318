"""How the domain's models map to table rows (store/schema.py): the columns each store reads and
writes, and the cache of job rows that lets `JobStore.save` write only what changed."""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any, Sequence

from ..jobs.models import GenerationParams, Job, JobState, KnownImage, Origin, Session, SlackFile
from . import schema

# The job's own fields, in the order job_from_row reads them.
JOB_COLUMNS = [
    "id", "team_id", "user_id", "channel_id", "thread_ts", "response_url", "params", "state",
    "status_ts", "generation_id", "attempts", "submit_tries", "waiting_reason", "failure_code",
    "failure_detail", "slack_file_id", "created_at", "submitted_at", "completed_at",
    "finished_at", "deadline", "settled", "cost_usd", "actions_ts", "deleted", "session_id",
    "blind_resends", "owner", "epoch", "cancelled_by", "batch_id", "batch_index", "batch_size", "origin",
    "running_seen", "account", "polled_densely",
]
# Written from the job for the usage queries: one definition of each (the job's own).
DERIVED = ["model", "type", "charged"]
JOB_SELECT = [schema.jobs.c[c] for c in JOB_COLUMNS]
SESSION_COLUMNS = ["id", "team_id", "channel_id", "started_by", "started_at", "flags", "theme",
                   "banner_ts", "last_prompt_at", "ended_at", "end_reason", "recap_file_id",
                   "recap_posted"]
SESSION_SELECT = [schema.sessions.c[c] for c in SESSION_COLUMNS]
IMAGE_COLUMNS = ["team_id", "channel_id", "thread_ts", "message_ts", "origin", "job_id", "generation_id",
                 "slack_file_id", "file", "user_id", "created_at"]
IMAGE_SELECT = [schema.images.c[c] for c in IMAGE_COLUMNS]


SHARE = "share"  # the derived type of a job that shares an image made in private

# Columns save never writes: the key, and what others than the job's runner change.
NOT_SAVED = frozenset({"id", "deleted", "owner", "epoch", "cancelled_by"})


class WrittenRows:
    """The row of each job this store runs, as last read or written: `save` writes only the
    columns that changed (an update of unindexed columns dirties one page, not every index's),
    and nothing when nothing did. Settled jobs are forgotten, and beyond `size` jobs the least
    recently written (a long line of waiting jobs costs no memory here)."""

    def __init__(self, size: int = 10_000) -> None:
        self._rows: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.size = size  # the most recent ones: a job forgotten here is written whole once

    def remember(self, row: dict[str, Any]) -> None:
        if row["settled"]:
            self._rows.pop(row["id"], None)
            return
        self._rows[row["id"]] = row
        self._rows.move_to_end(row["id"])
        if len(self._rows) > self.size:
            self._rows.popitem(last=False)

    def remember_jobs(self, jobs: list[Job]) -> None:
        """Jobs just read (claimed): their rows as the database has them."""
        for job in jobs:
            self.remember(job_row(job))

    def changes(self, job: Job) -> tuple[dict[str, Any], dict[str, Any]]:
        """(the columns to write, the whole row)."""
        row = job_row(job)
        before = self._rows.get(job.id)
        return {c: v for c, v in row.items()
                if c not in NOT_SAVED and (before is None or before.get(c) != v)}, row

    def forget(self, job_id: str) -> None:
        self._rows.pop(job_id, None)


def job_row(job: Job) -> dict[str, Any]:
    data = job.model_dump(mode="json")
    row = {c: data[c] for c in JOB_COLUMNS}
    row["params"] = job.params.model_dump_json(exclude_none=True)
    row["origin"] = job.origin.model_dump_json(exclude_none=True, exclude_defaults=True)
    # A shared image is no new image: its own type keeps it out of image counts (store/policy.py).
    row["model"], row["charged"] = job.params.model, job.charged
    row["type"] = SHARE if job.origin.via == SHARE else job.params.type
    return row


def job_from_row(row: Sequence[Any]) -> Job:
    data = dict(zip(JOB_COLUMNS, row))
    data["params"] = GenerationParams.model_validate_json(data["params"])
    data["origin"] = Origin.model_validate_json(data["origin"]) if data["origin"] else Origin()
    data["state"] = JobState(data["state"])
    return Job(**data)


def session_row(session: Session) -> dict[str, Any]:
    data = session.model_dump(mode="json")
    row = {c: data[c] for c in SESSION_COLUMNS}
    row["flags"] = json.dumps(session.flags)
    return row


def session_from_row(row: Sequence[Any]) -> Session:
    data = dict(zip(SESSION_COLUMNS, row))
    data["flags"] = json.loads(data["flags"])
    return Session(**data)


def image_row(image: KnownImage) -> dict[str, Any]:
    row = image.model_dump(mode="json", include=set(IMAGE_COLUMNS))
    row["file"] = image.file.model_dump_json() if image.file else None
    return row


def image_from_row(row: Sequence[Any]) -> KnownImage:
    data = dict(zip(IMAGE_COLUMNS, row))
    data["file"] = SlackFile.model_validate_json(data["file"]) if data["file"] else None
    return KnownImage(**data)
