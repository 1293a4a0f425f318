"""The cost of one job, as the database, Slack and Luma see it: SQL statements, commits and
WAL bytes on SQLite, Slack Web API calls and Luma requests, per delivered image.

In process (the real app in HTTP mode against the fakes): 40 `/imagine` commands from 4
people, one at a time, each waited for until its image (with its buttons) is in its thread. No backlog (LUMABOT_LUMA_CONCURRENCY=10), so no "#N in line" updates: the steady-state
cost of a job. Statements are counted with SQLite's trace callback on both connections (the
writer and the reader); WAL bytes as the growth of the -wal file with automatic checkpoints off.
The job's own work only: the process's start (migrations, the daily sweep) comes before the
first measurement.

Targets (issue #14): at most 6 commits and 20 KB of WAL per job; (issue #27) at most 5 Slack Web
API calls per image (the upload's own POST of the bytes is not a Web API call).

    python -m bench.jobcost
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter

from lumabot.testing.store import transactions
from lumabot.testing.fake_luma import FakeLuma

from .common import rig, table

JOBS, USERS = 40, 4
COMMITS_TARGET, WAL_TARGET = 6, 20 * 1024
SLACK_TARGET = 5  # issue #27: Slack Web API calls per image
# What each Slack call of a delivered image is for.
PURPOSE = {
    "chat.postMessage": "the status message (the thread root)",
    "chat.update": "the status message: done, with the image's provenance (posted as \"Generating…\" when a slot is free)",
    "files.getUploadURLExternal": "room for the image (its file id recorded before the bytes go)",
    "files.completeUploadExternal": "the image into the thread, its buttons on its message",
    "files.info": "where the image's share landed (its message: votes, replies and shortcuts on it)",
}


async def run() -> dict:
    luma = FakeLuma(latency=0.05, image_long_side=32)
    async with rig(luma, LUMABOT_POLL_INTERVAL="0.02", LUMABOT_FIRST_POLL_DELAY="0",
                   LUMABOT_LUMA_CONCURRENCY="10") as r:
        store = r.bot.store.db
        assert not r.bot.store.shared  # SQLite's statements and WAL
        statements: Counter[str] = Counter()
        written: list[str] = []   # the writer's statements, in order (commits are counted from them)

        def trace(sql: str) -> None:
            verb = sql.split(None, 1)[0].upper() if sql.strip() else ""
            statements[verb] += 1

        def trace_writer(sql: str) -> None:
            written.append(sql)
            trace(sql)


        async def one(i: int) -> None:
            status, body, *_ = await r.command(f"a lighthouse {i}", user_id=f"U{i % USERS}")
            assert status == 200 and not body, body
            await r.slack.wait_for(lambda: sum(1 for f in r.slack.files if f.shared and f.blocks and any(
                b.get("type") == "actions" for b in f.blocks)) == i + 2, timeout=10)
            await r.slack.wait_for(lambda: sum("Done" in (m.text or "") for m in r.slack.top_level("C1")) == i + 2,
                                   timeout=10)
            await r.slack.wait_for(lambda: all(j.settled for j in r.bot.runner._jobs.values()), timeout=10)

        await asyncio.sleep(0.5)  # the start's daily sweep is not a job's cost,
        await one(-1)             # nor what the first command learns once (the workspace: auth.test)
        await store.db.execute("PRAGMA wal_autocheckpoint=0")
        await store.db.set_trace_callback(trace_writer)
        await store.reader.set_trace_callback(trace)
        wal = f"{store.path}-wal"
        wal_before = os.path.getsize(wal)
        slack_before, luma_before = len(r.slack.calls), len(luma.requests)
        for i in range(JOBS):
            await one(i)
        await asyncio.sleep(0)
        wal_bytes = os.path.getsize(wal) - wal_before
        slack_calls = Counter(m for m, _ in r.slack.calls[slack_before:])
        luma_calls = Counter(rec.method for rec in luma.requests[luma_before:])
    n = JOBS
    return {"statements": sum(statements.values()) / n, "commits": len(transactions(written)) / n,
            "writes": sum(statements[v] for v in ("INSERT", "UPDATE", "DELETE")) / n,
            "reads": statements["SELECT"] / n, "wal": wal_bytes / n,
            "slack": sum(slack_calls.values()) / n, "slack_by_method": {k: v / n for k, v in slack_calls.items()},
            "luma": sum(luma_calls.values()) / n, "luma_by_method": {k: v / n for k, v in luma_calls.items()}}


def rows(f: dict) -> list[tuple[str, str, str, bool | None]]:
    by = ", ".join(f"{m} {v:.2f}" for m, v in sorted(f["slack_by_method"].items()))
    luma = ", ".join(f"{m} {v:.1f}" for m, v in sorted(f["luma_by_method"].items()))
    return [
        ("SQL statements per job (SELECT / writes)", f"{f['statements']:.1f} ({f['reads']:.1f} / {f['writes']:.1f})", "", None),
        ("commits per job", f"{f['commits']:.1f}", f"<= {COMMITS_TARGET}", f["commits"] <= COMMITS_TARGET),
        ("WAL bytes per job", f"{f['wal'] / 1024:.1f} KB", f"<= {WAL_TARGET // 1024} KB", f["wal"] <= WAL_TARGET),
        ("Slack calls per job", f"{f['slack']:.2f}", f"<= {SLACK_TARGET}", f["slack"] <= SLACK_TARGET),
        ("  by method", by, "", None),
        *[(f"    {m}", PURPOSE.get(m, "?"), "", None) for m, v in sorted(f["slack_by_method"].items()) if v >= 0.05],
        ("Luma requests per job", f"{f['luma']:.1f} ({luma})", "", None),
    ]


def main() -> None:
    print(f"jobcost: {JOBS} jobs one at a time, SQLite, in process")
    print(table(rows(asyncio.run(run()))))


if __name__ == "__main__":
    main()
