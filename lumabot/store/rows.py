"""How the domain's models map to table rows: the columns and conversions both stores share
(their SQL dialects differ, their rows do not)."""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any, Iterable

from ..jobs.models import GenerationParams, Job, JobState, KnownImage, Session, SlackFile

JOB_COLUMNS = [
    "id", "team_id", "user_id", "channel_id", "thread_ts", "response_url", "params", "state",
    "status_ts", "generation_id", "attempts", "submit_tries", "waiting_reason", "failure_code",
    "failure_detail", "slack_file_id", "created_at", "submitted_at", "completed_at",
    "finished_at", "deadline", "settled", "cost_usd", "actions_ts", "deleted", "session_id",
    "blind_resends", "owner", "epoch", "cancelled_by",
]
JOB_SELECT = f"SELECT {', '.join(JOB_COLUMNS)} FROM jobs"
SESSION_COLUMNS = ["id", "team_id", "channel_id", "started_by", "started_at", "flags", "theme",
                   "banner_ts", "last_prompt_at", "ended_at", "end_reason", "recap_file_id",
                   "recap_posted"]
SESSION_SELECT = f"SELECT {', '.join(SESSION_COLUMNS)} FROM sessions"
IMAGE_COLUMNS = ["channel_id", "thread_ts", "message_ts", "origin", "job_id", "generation_id",
                 "slack_file_id", "file", "user_id", "created_at"]
IMAGE_SELECT = f"SELECT {', '.join(IMAGE_COLUMNS)} FROM images"


# Columns save_job never writes: the key, and what others than the job's runner change.
NOT_SAVED = frozenset({"id", "deleted", "owner", "epoch", "cancelled_by"})


class WrittenRows:
    """The row of each job this store runs, as last read or written: `save_job` writes only the
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
            self.remember(dict(zip(JOB_COLUMNS, job_row(job))))

    def changes(self, job: Job) -> tuple[dict[str, Any], dict[str, Any]]:
        """(the columns to write, the whole row)."""
        row = dict(zip(JOB_COLUMNS, job_row(job)))
        before = self._rows.get(job.id)
        return {c: v for c, v in row.items()
                if c not in NOT_SAVED and (before is None or before.get(c) != v)}, row

    def forget(self, job_id: str) -> None:
        self._rows.pop(job_id, None)


def job_row(job: Job) -> tuple[Any, ...]:
    data = job.model_dump(mode="json")
    data["params"] = job.params.model_dump_json(exclude_none=True)
    return tuple(data[c] for c in JOB_COLUMNS)


def job_from_row(row: Iterable[Any]) -> Job:
    data = dict(zip(JOB_COLUMNS, row))
    data["params"] = GenerationParams.model_validate_json(data["params"])
    data["state"] = JobState(data["state"])
    return Job(**data)


def session_row(session: Session) -> tuple[Any, ...]:
    data = session.model_dump(mode="json")
    data["flags"] = json.dumps(session.flags)
    return tuple(data[c] for c in SESSION_COLUMNS)


def session_from_row(row: Iterable[Any]) -> Session:
    data = dict(zip(SESSION_COLUMNS, row))
    data["flags"] = json.loads(data["flags"])
    return Session(**data)


def image_row(image: KnownImage) -> tuple[Any, ...]:
    return (image.channel_id, image.thread_ts, image.message_ts, image.origin, image.job_id,
            image.generation_id, image.slack_file_id,
            image.file.model_dump_json() if image.file else None, image.user_id, image.created_at)


def image_from_row(row: Iterable[Any]) -> KnownImage:
    data = dict(zip(IMAGE_COLUMNS, row))
    data["file"] = SlackFile.model_validate_json(data["file"]) if data["file"] else None
    return KnownImage(**data)
