"""Failures that show themselves (issue #26): a refused app token is final (one line, exit code
2); Slack unreachable is one line per try, never a traceback, /healthz answers 503 meanwhile,
and SIGTERM stops lumabot in every state; `lumabot healthcheck` finds /healthz wherever it is."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
from pathlib import Path

import aiohttp

from lumabot.testing import forkserver
from lumabot.testing.process import free_port

from .conftest import bot_env, served
from .unit.conftest import eventually


def _env(tmp_path, slack, luma, **extra: str) -> dict[str, str]:
    env = {**{k: v for k, v in os.environ.items() if "PROXY" not in k.upper()},
           **bot_env(tmp_path, slack, luma, **extra)}
    env.setdefault("PORT", str(free_port()))
    return env


_runs = itertools.count()


class Run:
    """`lumabot <args>` as a fresh process would run (forked from one that imported lumabot:
    lumabot/testing/forkserver.py), its stdout and stderr in a log file."""

    def __init__(self, proc: forkserver.ForkedProcess, log: Path):
        self.proc, self.log = proc, log

    @property
    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    async def finished(self, timeout: float = 30) -> int:
        """Its exit code, once it has exited."""
        return await asyncio.wait_for(self.proc.wait(), timeout)


async def _start(env: dict[str, str], tmp_path, *args: str) -> Run:
    log = tmp_path / f"lumabot-{next(_runs)}.log"
    return Run(await forkserver.spawn(list(args or ("run",)), env=env, cwd=tmp_path, log=log), log)


async def _healthz(port: str) -> int | None:
    try:
        async with aiohttp.ClientSession(trust_env=False) as s:
            async with s.get(f"http://127.0.0.1:{port}/healthz") as r:
                return r.status
    except aiohttp.ClientError:
        return None


async def test_a_refused_app_token_is_one_line_and_exit_code_2(tmp_path, slack, luma):
    env = _env(tmp_path, slack, luma, SLACK_APP_TOKEN="xapp-not-this-app")
    env.pop("SLACK_SIGNING_SECRET")
    run = await _start(env, tmp_path)
    assert await run.finished(60) == 2
    text = run.text
    assert "Slack refused SLACK_APP_TOKEN (invalid_auth)" in text
    assert "Traceback" not in text and "xapp-not-this-app" not in text
    assert slack.count_calls("apps.connections.open") == 1  # not retried


async def _unreachable_then_sigterm(tmp_path, slack, luma, **extra: str) -> str:
    dead = free_port()  # nothing listens there
    env = _env(tmp_path, slack, luma, SLACK_API_URL=f"http://127.0.0.1:{dead}/api/", LUMABOT_LOG_LEVEL="INFO",
               **extra)
    port = env["LUMABOT_METRICS_PORT"] if "LUMABOT_METRICS_PORT" in extra else env["PORT"]
    run = await _start(env, tmp_path)
    await eventually(lambda: run.text.count("cannot reach Slack") >= 2, 20)   # two tries
    assert await _healthz(port) == 503  # up, not ready
    run.proc.send_signal(signal.SIGTERM)
    assert await run.finished() == 0  # stops while it waits for Slack
    text = run.text
    assert "Traceback" not in text and "ClientConnector" in text
    assert all(len(line) < 300 for line in text.splitlines())
    return text


async def test_slack_unreachable_is_one_line_a_try_and_sigterm_stops_it(tmp_path, slack, luma):
    text = await _unreachable_then_sigterm(tmp_path, slack, luma)
    assert "cannot reach Slack at http://127.0.0.1:" in text and "trying again in 1 s" in text
    assert "trying again in 2 s" in text  # backoff


async def test_in_socket_mode_too_and_healthcheck_finds_the_metrics_port(tmp_path, slack, luma):
    metrics = str(free_port())
    env_extra = {"SLACK_APP_TOKEN": slack.app_token, "LUMABOT_METRICS_PORT": metrics}
    text = await _unreachable_then_sigterm(tmp_path, slack, luma, **env_extra)
    assert "cannot reach Slack" in text


async def test_healthcheck_follows_healthz_wherever_it_is_served(tmp_path, slack, luma):
    from aiohttp import web

    # PORT is held by a server that always answers 503: a healthcheck that probed PORT would fail
    # (and no other process can take the port meanwhile).
    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"ok": False}, status=503)

    unhealthy = web.Application()
    unhealthy.router.add_get("/healthz", healthz)
    async with served(unhealthy) as held:
        port = str(held)
        metrics = str(free_port())
        env = _env(tmp_path, slack, luma, SLACK_APP_TOKEN=slack.app_token, LUMABOT_METRICS_PORT=metrics, PORT=port)
        env.pop("SLACK_SIGNING_SECRET")
        check = await _start(env, tmp_path, "healthcheck")
        assert await check.finished() == 1  # nothing runs yet
        run = await _start(env, tmp_path)
        try:
            for _ in range(400):
                if await _healthz(metrics) == 200:
                    break
                await asyncio.sleep(0.05)
            check = await _start(env, tmp_path, "healthcheck")
            assert await check.finished() == 0  # it probes LUMABOT_METRICS_PORT in Socket Mode, not PORT
        finally:
            run.proc.send_signal(signal.SIGTERM)
            code = await run.finished()
        assert code == 0


async def test_each_try_to_reach_slack_is_one_request(tmp_path, slack, luma):
    """"Trying again in 1 s" is what happens: a try is one request, not one plus the SDK's own
    retries (which made each try seconds longer than the line said)."""
    connections = 0

    async def hang_up(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        writer.close()  # Slack's address answers, and drops every connection

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    env = _env(tmp_path, slack, luma, SLACK_API_URL=f"http://127.0.0.1:{port}/api/", LUMABOT_LOG_LEVEL="INFO")
    run = await _start(env, tmp_path)
    try:
        await eventually(lambda: run.text.count("cannot reach Slack") >= 2, 20)
        assert connections == 2, run.text  # two tries logged, two requests made
    finally:
        run.proc.send_signal(signal.SIGTERM)
        await run.finished()
        server.close()
        await server.wait_closed()
