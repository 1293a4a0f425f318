"""Prometheus metrics (prometheus-client), on one registry per bot so tests stay independent.

Served at `GET /metrics`: in HTTP mode on PORT, in Socket Mode on LUMABOT_METRICS_PORT when set.
"""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any, Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600)
DELIVERY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)
LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.jobs = Gauge("lumabot_jobs", "Unfinished jobs of this process, by state",
                          ["state"], registry=r)
        self.queue_depth = Gauge("lumabot_queue_depth", "Jobs waiting for a Luma slot", registry=r)
        self.in_flight = Gauge("lumabot_luma_in_flight", "Generations in flight at Luma", registry=r)
        self.luma_requests = Counter("lumabot_luma_requests", "Luma API requests by kind and outcome",
                                     ["kind", "outcome"], registry=r)
        self.generation_latency = Histogram(
            "lumabot_generation_latency_seconds", "From submission to Luma seeing it completed",
            ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.delivery_latency = Histogram(
            "lumabot_delivery_latency_seconds", "From Luma reporting completed to the upload being complete",
            buckets=DELIVERY_BUCKETS, registry=r)
        self.slack_errors = Counter("lumabot_slack_api_errors", "Slack API errors by method",
                                    ["method", "error"], registry=r)
        self.store_errors = Counter("lumabot_store_errors", "Database operations that failed "
                                    "(locked, full, I/O) and were retried", registry=r)
        self.jobs_finished = Counter("lumabot_jobs_finished", "Jobs finished, by outcome",
                                     ["outcome"], registry=r)
        self.loop_lag = Histogram("lumabot_event_loop_lag_seconds",
                                  "How late the event loop ran a 100 ms timer", buckets=LAG_BUCKETS,
                                  registry=r)
        self.tasks = Gauge("lumabot_asyncio_tasks", "asyncio tasks alive in this process (a leak grows it)",
                           registry=r)
        # A full collection stops the whole process (every ack waits): how long each took, and
        # how many objects are out of its way (what start built, frozen once it is up).
        self.gc_pauses = Histogram("lumabot_gc_pause_seconds", "How long each full (generation 2) garbage "
                                   "collection stopped the process", buckets=LAG_BUCKETS, registry=r)
        self.gc_frozen = Gauge("lumabot_gc_frozen_objects", "Objects left out of garbage collections "
                               "(what start built)", registry=r)
        self._lag_task: asyncio.Task | None = None
        self._collections = FullCollections(self.gc_pauses.observe)

    def render(self) -> bytes:
        self.tasks.set(len(asyncio.all_tasks()))
        self.gc_frozen.set(gc.get_freeze_count())
        return generate_latest(self.registry)

    def start_loop_monitor(self, period: float = 0.1) -> None:
        if self._lag_task is None:
            self._lag_task = asyncio.create_task(loop_lateness(period, self.loop_lag.observe), name="loop-lag")
            self._collections.watch()

    def stop(self) -> None:
        if self._lag_task is not None:
            self._lag_task.cancel()
            self._collections.unwatch()


async def loop_lateness(period: float, seen: Callable[[float], Any]) -> None:
    """For ever: how late the event loop ran a `period` s timer, to `seen`, after each."""
    while True:
        start = time.perf_counter()
        await asyncio.sleep(period)
        seen(max(0.0, time.perf_counter() - start - period))


class FullCollections:
    """The garbage collector's full (generation 2) collections, each of which stops the whole
    process: while watched, `paused(seconds)` after each."""

    def __init__(self, paused: Callable[[float], Any]):
        self.paused = paused
        self._began: float | None = None

    def watch(self) -> None:
        if self._phase not in gc.callbacks:
            gc.callbacks.append(self._phase)

    def unwatch(self) -> None:
        if self._phase in gc.callbacks:
            gc.callbacks.remove(self._phase)

    def _phase(self, phase: str, info: dict[str, Any]) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            self._began = time.perf_counter()
        elif self._began is not None:
            self.paused(time.perf_counter() - self._began)
            self._began = None
