"""A job's writes on SQLite: six commits from `/imagine` to the image in its thread, each
writing only the columns that changed (issue #14: light writes; bench/jobcost.py has the WAL
bytes)."""

from __future__ import annotations

import pytest

from lumabot.testing.store import transactions


async def test_a_delivered_job_takes_five_commits_of_targeted_writes(harness):
    h = harness
    if h.bot.store.shared:
        pytest.skip("counts SQLite's statements")
    store = h.bot.store.db
    await h.imagine("warm up")  # the start's own writes (the daily sweep) are done by now
    await h.wait_job(lambda j: j.settled)
    statements: list[str] = []
    await store.db.set_trace_callback(statements.append)
    try:
        job = await h.finished((await h.imagine("a lighthouse")).id)
    finally:
        await store.db.set_trace_callback(None)
    assert h.slack.files_in_thread("C1", job.status_ts)  # delivered
    mine = [s for s in statements if job.id in s or s.startswith(("COMMIT", "BEGIN"))]
    committed = transactions(statements)
    # its row; submitting, with its status message's ts (a slot was free); generating; the
    # image's file id, with delivering; done and settled
    assert len(committed) == 5
    # A write of one statement is committed by itself: no BEGIN and COMMIT around it (three
    # calls to the database's thread where one does).
    alone = [t[0].split("WHERE")[0] for t in committed if t[0].startswith("UPDATE jobs") and job.id in t[0]]
    assert any("'submitting'" in s and "status_ts" in s for s in alone)   # the write before the create
    updates = [s for s in mine if s.startswith("UPDATE jobs")]
    assert updates and not any("params" in s.split("WHERE")[0] for s in updates)  # never rewritten
    assert not any("team_id" in s.split("WHERE")[0] for s in updates)
