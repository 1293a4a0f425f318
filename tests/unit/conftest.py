"""Unit tests: the core over in-memory ports (lumabot/testing/ports.py) and a real SQLite
store in a temporary directory. No sockets, no Slack, no Luma."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, cast

import pytest

from lumabot.jobs.models import GenerationParams, Job
from lumabot.metrics import Metrics
from lumabot.runner import Runner, RunnerConfig
from lumabot.runner.scheduler import Scheduler, SlotScheduler
from lumabot.runner.shared_scheduler import SharedScheduler
from lumabot.store import Store
from lumabot.store import open_store
from lumabot.testing.ports import MemoryInputs, MemoryLuma, MemoryNotifier, MemoryOutputs

CONFIG = RunnerConfig(poll_interval=0.01, first_poll_delay=0.0, generation_timeout=5.0,
                      retry_backoff=0.01, delivery_timeout=5.0, user_hash_salt="salt",
                      queue_update_interval=60.0, queue_updates_per_tick=4,
                      max_polls_per_second=1000.0, replica_id="r1", takeover_seconds=30.0)


async def eventually(predicate, timeout: float = 5.0):
    """Wait for a condition (sync or async); fail with a message if it never holds."""
    until = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        assert time.monotonic() < until, "condition not met"
        await asyncio.sleep(0.005)


@dataclass
class Rig:
    runner: Runner
    store: Store
    notifier: MemoryNotifier
    luma: MemoryLuma
    inputs: MemoryInputs
    outputs: MemoryOutputs
    scheduler: Any  # Scheduler, or SharedScheduler
    metrics: Metrics

    async def run(self, job: Job) -> Job:
        """Submit a job and wait until the person has been told its outcome."""
        await self.runner.submit(job)
        return await self.settled(job.id)

    async def settled(self, job_id: str) -> Job:
        async def done():
            job = await self.store.jobs.get(job_id)
            return job if job and job.settled else None
        return await eventually(done)


def new_job(prompt: str = "a lighthouse at dusk", user: str = "U1", **kw) -> Job:
    return Job(team_id="T1", user_id=user, channel_id="C1",
               params=GenerationParams(prompt=prompt, **kw))


@pytest.fixture
async def make_rig(tmp_path):
    made: list[Rig] = []

    async def make(*, concurrency: int = 4, config: RunnerConfig = CONFIG,
                   store: Store | None = None, luma: MemoryLuma | None = None, shared: bool = False) -> Rig:
        """`shared`: Luma's slots held in the (PostgreSQL) store, as with several replicas."""
        store = store or open_store(f"sqlite:///{tmp_path / 'lumabot.db'}")
        await store.open()
        scheduler: SlotScheduler = (
            SharedScheduler(store, concurrency, replica_id=config.replica_id, rate_window=1.0)
            if shared else Scheduler(concurrency, rate_window=1.0))
        parts = dict(notifier=MemoryNotifier(), luma=luma or MemoryLuma(), inputs=MemoryInputs(),
                     outputs=MemoryOutputs())
        metrics = Metrics()
        runner = Runner(store=store, scheduler=scheduler, config=config, metrics=metrics, **parts)
        rig = Rig(runner=runner, store=store, scheduler=scheduler, metrics=metrics, **parts)

        async def recorded_file_id(job_id: str) -> str | None:
            job = await store.jobs.get(job_id)
            return job.slack_file_id if job is not None else None

        parts["notifier"].recorded_file_id = recorded_file_id
        made.append(rig)
        return rig

    yield make
    for rig in made:
        await rig.runner.stop()
        await rig.store.close()


@pytest.fixture
async def rig(make_rig) -> Rig:
    return await make_rig()
