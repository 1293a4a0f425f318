"""`/luma admin export`: one CSV row per job of a month, sent to the admin's DM with lumabot.

A month may hold hundreds of thousands of jobs, so nothing is built in memory: rows are read a
page at a time (keyset paging), written to a temporary file off the event loop, and the file is
uploaded from disk in chunks; commands go on being acknowledged meanwhile. One export runs at a
time per workspace (a lease in the database, so across replicas too), and a month too large for
one Slack file (LUMABOT_EXPORT_MAX_MB) gets an answer that says so."""

from __future__ import annotations

import asyncio
import csv
import logging
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO

from ..jobs.failures import REFUNDED_FAILURE_CODES
from ..jobs.usage import JobRecord
from ..ports import DeliveryError, Notifier
from ..store import Store
from .reports import CSV_COLUMNS, Month, csv_cell

log = logging.getLogger(__name__)

PAGE = 2000          # jobs read, formatted and written at a time
LEASE = 3600.0       # an export holds its workspace's lease at most this long (a crash frees it then)


class ExportTooLarge(Exception):
    def __init__(self, rows: int):
        super().__init__(rows)
        self.rows = rows


@dataclass
class ExportFile:
    path: Path
    filename: str
    rows: int


def _lease(team_id: str) -> str:
    return f"export:{team_id}"


class Exports:
    def __init__(self, store: Store, notifier: Notifier, *, max_bytes: int):
        self.store = store
        self.notifier = notifier
        self.max_bytes = max_bytes

    async def begin(self, team_id: str) -> bool:
        """Take the workspace's export lease; False while another export runs."""
        return await self.store.keys.claim(_lease(team_id), window=LEASE)

    async def send(self, team_id: str, user_id: str, month: Month, *, prompts: bool) -> str:
        """Write the month's CSV and upload it to the admin's DM; what to tell them. Always
        gives the lease back and deletes the file."""
        export = None
        try:
            export = await self.write(team_id, month, prompts=prompts)
            comment = (f"lumabot usage for {month.label}: {export.rows} job{'s' if export.rows != 1 else ''}, "
                       f"one row each{', with prompts' if prompts else ' (no prompts; add --prompts for them)'}.")
            try:
                await self.notifier.send_file_dm(team_id, user_id, export.filename, export.path, comment)
            except DeliveryError as exc:
                log.warning("export upload failed: %s", exc)
                return "The export could not be sent to your direct messages with lumabot. Please try again."
            return f"Sent `{export.filename}` to your direct messages with lumabot."
        except ExportTooLarge as too_large:
            limit = self.max_bytes / 2**20
            return (f"The export for {month.label} is too large for one file: more than {limit:,.0f} MB after "
                    f"{too_large.rows:,} jobs{' (prompts make it larger)' if prompts else ''}. "
                    + ("Try it without `--prompts`, or ask" if prompts else "Ask")
                    + " whoever runs lumabot to export it from the database directly.")
        finally:
            if export is not None:
                await asyncio.to_thread(export.path.unlink, True)
            await self.store.keys.release(_lease(team_id))

    async def write(self, team_id: str, month: Month, *, prompts: bool) -> ExportFile:
        """The month's CSV in a temporary file (ExportTooLarge past max_bytes)."""
        fd, name = tempfile.mkstemp(prefix="lumabot-export-", suffix=".csv")
        path = Path(name)
        out: IO[str] = await asyncio.to_thread(os.fdopen, fd, "w", newline="", encoding="utf-8")
        rows, ok = 0, False
        try:
            header = CSV_COLUMNS + (["prompt"] if prompts else [])
            await asyncio.to_thread(csv.writer(out, lineterminator="\r\n").writerow, header)
            after: tuple[float, str] | None = None
            while True:
                page = await self.store.policy.job_records(team_id, month.since, month.until, after=after, limit=PAGE)
                if not page:
                    break
                size = await asyncio.to_thread(_write_rows, out, page, prompts)
                rows += len(page)
                if size > self.max_bytes:
                    raise ExportTooLarge(rows)
                after = (page[-1].created_at, page[-1].id)
            ok = True
            return ExportFile(path=path, filename=f"lumabot-usage-{month.key}.csv", rows=rows)
        finally:
            await asyncio.to_thread(out.close)
            if not ok:
                await asyncio.to_thread(path.unlink, True)


def _write_rows(out: IO[str], records: list[JobRecord], prompts: bool) -> int:
    """Write the rows (in a worker thread); the file's size after them."""
    writer = csv.writer(out, lineterminator="\r\n")
    for r in records:
        outcome = f"failed:{r.failure_code}" if r.outcome == "failed" and r.failure_code else r.outcome
        row = [datetime.fromtimestamp(r.created_at, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
               r.user_id, r.channel_id, r.model, r.type, outcome, f"{r.cost:.4f}", r.id]
        writer.writerow([csv_cell(v) for v in row] + ([csv_cell(r.prompt or "")] if prompts else []))
    return out.tell()
