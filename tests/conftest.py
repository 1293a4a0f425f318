"""End-to-end harness: the real Bolt app in HTTP mode on a local port, a fake Slack Web API and
a fake Luma API on 127.0.0.1, all in this process."""

from __future__ import annotations

import json
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import AsyncIterator

import pytest
from aiohttp import web

from lumabot.app import LumaBot
from lumabot.config import load_settings
from lumabot.jobs.models import Job
from lumabot.testing.fake_luma import FakeLuma
from lumabot.testing.fake_slack import FakeSlack
from lumabot.testing.process import bot_env as fake_env
from lumabot.testing.store import job_ids

PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@pytest.fixture(autouse=True)
def _no_proxy_no_env(monkeypatch):
    # slack_sdk's aiohttp clients honour HTTP(S)_PROXY and ignore NO_PROXY: calls to 127.0.0.1
    # would go to a proxy. Also keep the developer's real lumabot settings out of the tests.
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("LUMA_CUSTOM_HEADERS", raising=False)  # read by the Luma SDK
    for var in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN", "SLACK_API_URL",
                "LUMA_AGENTS_API_KEY", "LUMA_BASE_URL", "LUMABOT_DATABASE_URL", "PORT"):
        monkeypatch.delenv(var, raising=False)


@asynccontextmanager
async def served(app: web.Application) -> AsyncIterator[int]:
    """`app` served on 127.0.0.1 while the block runs: its port."""
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


@pytest.fixture
async def slack():
    fake = FakeSlack()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def luma():
    fake = FakeLuma(latency=0.05)
    await fake.start()
    yield fake
    await fake.stop()


# Fast but realistic timings: every wait in the bot is a condition or a configured interval.
FAST = {
    "LUMABOT_POLL_INTERVAL": "0.02",
    "LUMABOT_FIRST_POLL_DELAY": "0",
    # A held generation may outlive a stop and a start on a loaded machine (5 s did not, once,
    # in CI); tests of timeouts set their own.
    "LUMABOT_GENERATION_TIMEOUT": "60",
    "LUMABOT_RETRY_BACKOFF": "0.02",
    # Long enough that a loaded machine never times out a healthy request; tests of timeouts
    # set their own.
    "LUMABOT_LUMA_REQUEST_TIMEOUT": "5",
    "LUMABOT_DELIVERY_TIMEOUT": "5",
}


def bot_env(tmp_path, slack: FakeSlack, luma: FakeLuma, **extra: str) -> dict[str, str]:
    return fake_env(slack, luma, tmp_path / "lumabot.db", **{**FAST, **extra})


@dataclass
class Harness:
    bot: LumaBot
    slack: FakeSlack
    luma: FakeLuma
    url: str
    port: int
    channel: str = "C1"
    posted: list = field(default_factory=list)

    async def command(self, text: str, *, command: str = "/imagine", user_id: str = "U1",
                      channel_id: str | None = None):
        """Type a slash command; returns (HTTP status, ack body as text)."""
        status, body, *_ = await self.slack.post_command(
            self.url, command, text, user_id=user_id, channel_id=channel_id or self.channel)
        return status, body

    async def imagine(self, text: str, **kw) -> Job:
        """/imagine that must be accepted; returns the job once its status message exists."""
        before = {j.id for j in await self.jobs()}
        status, body = await self.command(text, **kw)
        assert status == 200, body
        assert not body or not json.loads(body).get("text"), f"unexpected ack: {body}"
        return await self.wait_job(lambda j: j.id not in before and j.status_ts is not None)

    async def jobs(self) -> list[Job]:
        return [job for i in await job_ids(self.bot.store) if (job := await self.bot.store.jobs.get(i))]

    async def wait_job(self, predicate, timeout: float = 5.0) -> Job:
        import asyncio
        import time

        until = time.monotonic() + timeout
        while True:
            for job in await self.jobs():
                if predicate(job):
                    return job
            if time.monotonic() > until:
                raise AssertionError(f"no job matched; jobs: {await self.jobs()}")
            await asyncio.sleep(0.01)

    async def finished(self, job_id: str, timeout: float = 5.0) -> Job:
        """Wait until the job is finished and the user has been told (status updated)."""
        return await self.wait_job(lambda j: j.id == job_id and j.settled, timeout)

    def thread_texts(self, ts: str, channel: str | None = None) -> list[str]:
        return [m.text for m in self.slack.thread(channel or self.channel, ts) if hasattr(m, "ts")]

    def status_text(self, job: Job) -> str:
        return self.slack.message(job.channel_id, job.status_ts).text


@pytest.fixture
async def start_bot(tmp_path, slack, luma, request):
    """Start lumabot (HTTP mode, ephemeral port) with optional env overrides. With
    LUMABOT_TEST_STORE=postgresql the end-to-end tests run on PostgreSQL instead of SQLite (one
    database per test; `pytest tests -k 'not replicas'` with it is a full run on PostgreSQL)."""
    import os

    started: list[LumaBot] = []
    database: dict[str, str] = {}
    if os.environ.get("LUMABOT_TEST_STORE") == "postgresql":
        database["LUMABOT_DATABASE_URL"] = await request.getfixturevalue("pg_cluster").new_database()

    async def _start(**extra: str) -> Harness:
        settings = load_settings(_env_file=None, **{**bot_env(tmp_path, slack, luma, **extra), **database})
        bot = LumaBot(settings)
        port = await bot.serve_http(host="127.0.0.1", port=0)
        await bot.start()
        started.append(bot)
        return Harness(bot=bot, slack=slack, luma=luma, port=port,
                       url=f"http://127.0.0.1:{port}/slack/events")

    yield _start
    for bot in started:
        await bot.stop()


@pytest.fixture
async def harness(start_bot) -> Harness:
    return await start_bot()


@pytest.fixture(scope="session")
def pg_cluster():
    """A throwaway PostgreSQL for this test process (lumabot/testing/postgres.py). Without
    PostgreSQL the tests that need it skip, unless LUMABOT_REQUIRE_POSTGRES=1 (CI) fails them."""
    import asyncio
    import os
    from concurrent.futures import ThreadPoolExecutor

    from lumabot.testing.postgres import PostgresCluster, PostgresUnavailable

    cluster = PostgresCluster()
    try:
        cluster.start()
    except PostgresUnavailable as exc:
        if os.environ.get("LUMABOT_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"LUMABOT_REQUIRE_POSTGRES=1 but {exc}")
        pytest.skip(f"PostgreSQL tests skipped: {exc}")
    try:
        # Its own thread and loop: the fixture may be first asked for inside a running loop.
        with ThreadPoolExecutor(1) as thread:
            thread.submit(asyncio.run, cluster.create_template()).result()
        yield cluster
    finally:
        cluster.stop()
