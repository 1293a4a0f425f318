"""Several replicas on one PostgreSQL: two real `lumabot run` processes behind "a load
balancer" (commands alternate between them), the fake Slack and a fake Luma that refuses what
is over its concurrency limit."""

from __future__ import annotations

import asyncio
import signal

import pytest

from lumabot.jobs.models import JobState
from lumabot.store import open_store
from lumabot.testing.fake_luma import FakeLuma
from lumabot.testing.process import BotProcess

from .conftest import bot_env
from .test_restart import _wait
from lumabot.testing.store import job_ids

LIMIT = 3


@pytest.fixture
async def limited_luma():
    fake = FakeLuma(latency=0.3, concurrency_limit=LIMIT, concurrency_retry_after=1)
    await fake.start()
    yield fake
    await fake.stop()


async def _jobs(url: str):
    store = open_store(url)
    await store.open()
    try:
        return [await store.jobs.get(i) for i in await job_ids(store)]
    finally:
        await store.close()


async def test_kill_9_of_one_replica_mid_burst_delivers_every_image_once(tmp_path, slack, limited_luma,
                                                                          pg_cluster):
    luma = limited_luma
    url = await pg_cluster.new_database()
    env = bot_env(tmp_path, slack, luma, LUMABOT_DATABASE_URL=url, LUMABOT_LUMA_CONCURRENCY=str(LIMIT),
                  LUMABOT_TAKEOVER_SECONDS="2", LUMABOT_MAX_QUEUED_PER_USER="50")
    a, b = BotProcess(env, tmp_path), BotProcess(env, tmp_path)
    await asyncio.gather(a.start(), b.start())
    try:
        for i in range(12):
            status, *_ = await slack.post_command((a if i % 2 else b).url, "/imagine", f"picture {i}",
                                                  user_id=f"U{i % 4}", channel_id="C1")
            assert status == 200  # acked once the job is committed, on either replica
        await luma.wait_for(lambda: len(luma.generations) >= 4)
        a.kill9()  # mid-burst: its jobs are waiting, generating or delivering
        await a.wait()

        async def all_settled():
            jobs = await _jobs(url)
            return len(jobs) == 12 and all(j.settled for j in jobs)
        await _wait(all_settled, timeout=40)

        restarted = BotProcess(env, tmp_path, port=a.port)  # the same replica comes back
        await restarted.start()
        await restarted.stop()
    finally:
        for bot in (a, b):
            await bot.stop()

    jobs = await _jobs(url)
    assert all(j.state == JobState.DONE for j in jobs), [(j.state, j.failure_code) for j in jobs]
    for job in jobs:  # every image exactly once, in its own thread
        shared = [f for f in slack.files_in_thread("C1", job.status_ts) if f.shared]
        assert len(shared) == 1, job
    assert len({j.status_ts for j in jobs}) == 12
    # Never more than the limit in flight at Luma: a 429 "too many concurrent" can only come
    # from a create that was re-sent after the kill (its first copy, unseen, still counts).
    assert luma.stats["concurrency"] <= sum(j.blind_resends for j in jobs), luma.stats


async def test_a_rolling_stop_hands_jobs_to_the_other_replica_at_once(tmp_path, slack, luma, pg_cluster):
    url, a, b = await _two_replicas_one_held_job(tmp_path, slack, luma, pg_cluster, "deploy day",
                                                 takeover="600")
    try:
        await luma.wait_for(lambda: len(luma.generations) == 1)
        a.proc.send_signal(signal.SIGTERM)
        assert await a.wait(30) == 0
        luma.release_all()

        async def delivered():
            jobs = await _jobs(url)
            return jobs and jobs[0].settled
        await _wait(delivered, timeout=20)  # long before the 600 s takeover time
        (job,) = await _jobs(url)
        assert job.state == JobState.DONE and job.owner == b.env.get("LUMABOT_REPLICA_ID", f"{_host()}:{b.port}")
        assert len([f for f in slack.files_in_thread("C1", job.status_ts) if f.shared]) == 1
        assert len(luma.creates) == 1
    finally:
        for bot in (a, b):
            await bot.stop()


async def _two_replicas_one_held_job(tmp_path, slack, luma, pg_cluster, prompt: str, *, takeover: str):
    """Replicas A and B on a fresh database; `prompt` sent to A, its generation held at Luma."""
    from lumabot.testing.fake_luma import Outcome

    url = await pg_cluster.new_database()
    env = bot_env(tmp_path, slack, luma, LUMABOT_DATABASE_URL=url, LUMABOT_TAKEOVER_SECONDS=takeover)
    a, b = BotProcess(env, tmp_path), BotProcess(env, tmp_path)
    await asyncio.gather(a.start(), b.start())
    luma.script(Outcome(hold=True))
    await slack.post_command(a.url, "/imagine", prompt, user_id="U1", channel_id="C1")
    return url, a, b


def _host() -> str:
    import socket

    return socket.gethostname()


async def test_a_replica_paused_and_resumed_does_not_act_on_jobs_taken_from_it(tmp_path, slack, luma,
                                                                               pg_cluster):
    url, a, b = await _two_replicas_one_held_job(tmp_path, slack, luma, pg_cluster, "a long pause",
                                                 takeover="2")
    try:

        async def generating():
            jobs = await _jobs(url)
            return jobs and jobs[0].state == JobState.GENERATING
        await _wait(generating)  # A has recorded the create: the job is being polled
        a.proc.send_signal(signal.SIGSTOP)  # a long GC, a frozen VM, a network split

        async def taken_by_b():
            jobs = await _jobs(url)
            return jobs and jobs[0].owner == f"{_host()}:{b.port}"
        await _wait(taken_by_b, timeout=20)
        luma.release_all()

        async def delivered():
            jobs = await _jobs(url)
            return jobs and jobs[0].settled
        await _wait(delivered, timeout=20)
        a.proc.send_signal(signal.SIGCONT)  # it wakes up polling a job that is no longer its own

        async def a_stood_down():
            return "another replica took this job over" in a.log_text
        await _wait(a_stood_down, timeout=20)
        (job,) = await _jobs(url)
        assert job.state == JobState.DONE
        shared = [f for f in slack.files_in_thread("C1", job.status_ts) if f.shared]
        assert len(shared) == 1 and len(luma.creates) == 1
        assert len([m for m in slack.top_level("C1") if "a long pause" in m.text]) == 1
    finally:
        for bot in (a, b):
            if bot.proc is not None and bot.proc.returncode is None:
                bot.proc.send_signal(signal.SIGCONT)
            await bot.stop()
