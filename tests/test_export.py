"""`/luma admin export` streams (issue #21, point 6): rows are read a page at a time into a file
on disk and uploaded from it, one export at a time per workspace, and a month too large for one
file gets an answer that says so. (Memory and ack latency while exporting 30,000 jobs:
bench/export.py.)"""

from __future__ import annotations

import csv
import io
import tempfile
import time
from datetime import datetime, timezone

from lumabot.admin import export
from lumabot.jobs.models import GenerationParams, Job, JobState

from .test_admin import ADMIN, admin, answered_later, start


async def seed(h, n: int) -> list[Job]:
    """`n` finished jobs of this month, straight into the store (ids in creation order)."""
    now = time.time()
    jobs = [Job(team_id=h.slack.team_id, user_id=f"U{i % 3}", channel_id="C1", attempts=1, cost_usd=0.0404,
                params=GenerationParams(prompt=f"prompt {i}"), state=JobState.DONE, settled=True,
                created_at=now - 60 + i * 0.001) for i in range(n)]
    for j in jobs:
        await h.bot.store.jobs.create(j)
    return jobs


def dm_files(h) -> list:
    return [f for f in h.slack.files if "D" + ADMIN[1:] in f.channels]


async def test_the_export_is_read_a_page_at_a_time_and_the_file_is_removed(start_bot, monkeypatch, tmp_path):
    monkeypatch.setattr(export, "PAGE", 7)  # 50 jobs: 8 pages
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "exports"))
    (tmp_path / "exports").mkdir()
    h = await start(start_bot)
    jobs = await seed(h, 50)
    await admin(h, "export --prompts")
    await answered_later(h, "Sent `lumabot-usage-")
    (upload,) = dm_files(h)
    rows = list(csv.reader(io.StringIO(upload.content.decode())))
    assert [r[-2] for r in rows[1:]] == [j.id for j in jobs] and [r[-1] for r in rows[1:]] == [
        f"prompt {i}" for i in range(50)]
    assert upload.length == len(upload.content)
    assert list((tmp_path / "exports").iterdir()) == []  # the temporary file is gone


async def test_one_export_at_a_time_per_workspace(start_bot):
    h = await start(start_bot)
    await seed(h, 3)
    h.slack.latency = 0.2  # the first export's upload takes a while
    first = await admin(h, "export")
    second = await admin(h, "export --prompts")
    assert "Preparing the usage export" in first
    assert "being prepared already" in second
    await answered_later(h, "Sent `lumabot-usage-")
    assert len(dm_files(h)) == 1
    h.slack.latency = 0.0
    assert "Preparing the usage export" in await admin(h, "export")  # the lease was given back
    await h.slack.wait_for(lambda: len(dm_files(h)) == 2)


async def test_a_month_too_large_for_one_file_is_answered_plainly(start_bot):
    h = await start(start_bot, LUMABOT_EXPORT_MAX_MB="1")
    await seed(h, 3)
    big = "x" * 400_000
    for i in range(4):  # ~1.6 MB of prompts
        await h.bot.store.jobs.create(Job(team_id=h.slack.team_id, user_id="U1", channel_id="C1",
                                         params=GenerationParams(prompt=f"{big} {i}")))
    month = datetime.now(timezone.utc).strftime("%B %Y")
    await admin(h, "export --prompts")
    answer = await answered_later(h, "too large")
    assert f"The export for {month} is too large for one file: more than 1 MB" in answer
    assert "Try it without `--prompts`" in answer
    assert dm_files(h) == []
    await admin(h, "export")  # without prompts it fits; and the lease was given back
    await answered_later(h, "Sent `lumabot-usage-")
    assert len(dm_files(h)) == 1
