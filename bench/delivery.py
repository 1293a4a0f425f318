"""Delivery overhead: from Luma reporting `completed` to the image being shared in Slack.

lumabot runs as a subprocess (`python -m lumabot run`); the fake Slack and fake Luma run in this
process and share its monotonic clock: the fake Luma knows when each generation turns completed
(`completes_at`) and records every GET; the fake Slack here stamps the moment each uploaded file
is shared into its thread (the end of files.completeUploadExternal). The figure is
shared_at - completes_at, which is the detection delay (the first GET at or after completes_at,
minus completes_at: at most one poll interval) plus lumabot's own work (download the output,
files.getUploadURLExternal, upload, files.completeUploadExternal).

Scaled 10x like bench.capacity: generations take 2-4 s, lumabot polls every 0.2 s (first poll
after 2 s), LUMABOT_MAX_POLLS_PER_SECOND=500 (the default 50, scaled), concurrency 100 so nothing
waits for a slot. 100 `/imagine` from 20 people arrive 0.1 s apart. Output images are 512 px
solid-colour PNGs (small: byte transfer on a real network is not measured here).

Target: p50 <= half the poll interval + 0.5 s (0.6 s here).

    python -m bench.delivery
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time

from lumabot.testing.fake_luma import FakeLuma
from lumabot.testing.fake_slack import FakeSlack

from .common import fmt_seconds, proc_rig, quantile, table

JOBS, USERS, SPACING = 100, 20, 0.1
POLL_INTERVAL = 0.2
TARGET_P50 = POLL_INTERVAL / 2 + 0.5


class TimedSlack(FakeSlack):
    """The fake Slack, stamping (time.monotonic()) when each uploaded file is shared."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.shared_at: dict[str, float] = {}

    def _share(self, batch, chans, thread_ts):
        super()._share(batch, chans, thread_ts)
        now = time.monotonic()
        for f in batch:
            self.shared_at.setdefault(f.id, now)


async def run(seed: int = 11) -> dict:
    rnd = random.Random(seed)
    luma = FakeLuma(latency_fn=lambda: rnd.uniform(2.0, 4.0), image_long_side=512)
    slack = TimedSlack()
    async with proc_rig(luma, slack, LUMABOT_LUMA_CONCURRENCY="100", LUMABOT_POLL_INTERVAL=str(POLL_INTERVAL),
                        LUMABOT_FIRST_POLL_DELAY="2", LUMABOT_MAX_POLLS_PER_SECOND="500",
                        LUMABOT_MAX_QUEUED_PER_USER=str(JOBS), LUMABOT_GENERATION_TIMEOUT="60",
                        LUMABOT_QUEUE_UPDATE_INTERVAL="0.5", LUMABOT_RETRY_BACKOFF="0.1") as r:
        t0 = time.monotonic()
        for i in range(JOBS):
            await asyncio.sleep(max(0.0, t0 + i * SPACING - time.monotonic()))
            status, body, _ = await r.command(f"delivery picture {i}", user_id=f"U{i % USERS:02d}")
            assert status == 200 and not body, (status, body)
        while len(slack.shared_at) < JOBS:
            if time.monotonic() - t0 > 120:
                raise RuntimeError(f"only {len(slack.shared_at)} of {JOBS} delivered after 120 s")
            await asyncio.sleep(0.1)
        scrape = await r.proc.metrics()
    by_bytes = {g.output: g for g in luma.generations.values()}
    assert len(by_bytes) == JOBS, "output images must differ to be told apart"
    first_seen: dict[str, float] = {}
    for rec in luma.requests:
        if rec.method == "GET" and rec.path.startswith("/v1/generations/") and rec.generation_id:
            g = luma.generations[rec.generation_id]
            if rec.at >= g.completes_at and rec.generation_id not in first_seen:
                first_seen[rec.generation_id] = rec.at
    total, detect, work = [], [], []
    for f in slack.files:
        g = by_bytes[f.content]
        total.append(slack.shared_at[f.id] - g.completes_at)
        detect.append(first_seen[g.id] - g.completes_at)
        work.append(slack.shared_at[f.id] - first_seen[g.id])
    hist_sum = scrape.value("lumabot_delivery_latency_seconds_sum")
    hist_n = scrape.value("lumabot_delivery_latency_seconds_count")
    return {
        "p50": statistics.median(total), "p99": quantile(total, 0.99),
        "detect_mean": statistics.mean(detect), "detect_max": max(detect),
        "work_p50": statistics.median(work), "work_p99": quantile(work, 0.99),
        "bot_hist_mean": hist_sum / hist_n if hist_n else float("nan"),
        "problems": len(r.proc.log_problems()),
    }


def rows(f: dict) -> list[tuple[str, str, str, bool | None]]:
    return [
        ("delivery p50 (completed -> shared)", fmt_seconds(f["p50"]), f"<= {fmt_seconds(TARGET_P50)}",
         f["p50"] <= TARGET_P50),
        ("delivery p99", fmt_seconds(f["p99"]), "", None),
        ("  detection delay, mean / max", f"{fmt_seconds(f['detect_mean'])} / {fmt_seconds(f['detect_max'])}",
         f"poll every {fmt_seconds(POLL_INTERVAL)}", None),
        ("  lumabot's work (seen -> shared), p50 / p99",
         f"{fmt_seconds(f['work_p50'])} / {fmt_seconds(f['work_p99'])}", "", None),
        ("  bot's delivery_latency histogram, mean", fmt_seconds(f["bot_hist_mean"]), "", None),
    ]


def main() -> None:
    print(f"delivery: {JOBS} images, poll every {POLL_INTERVAL} s, latency 3 s +- 1 s (10x scaled; "
          "bot in a subprocess)")
    print(table(rows(asyncio.run(run()))))


if __name__ == "__main__":
    main()
