"""Failures that show themselves (issue #26): a refused app token is final (one line, exit code
2); Slack unreachable is one line per try, never a traceback, /healthz answers 503 meanwhile,
and SIGTERM stops lumabot in every state; `lumabot healthcheck` finds /healthz wherever it is."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import aiohttp

from lumabot.testing.process import free_port

from .conftest import bot_env, served


def _env(tmp_path, slack, luma, **extra: str) -> dict[str, str]:
    env = {**{k: v for k, v in os.environ.items() if "PROXY" not in k.upper()},
           **bot_env(tmp_path, slack, luma, **extra)}
    env.setdefault("PORT", str(free_port()))
    return env


async def _start(env: dict[str, str], tmp_path, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(sys.executable, "-m", "lumabot", *(args or ("run",)), env=env,
                                                cwd=tmp_path, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)


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
    proc = await _start(env, tmp_path)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    text = out.decode()
    assert proc.returncode == 2
    assert "Slack refused SLACK_APP_TOKEN (invalid_auth)" in text
    assert "Traceback" not in text and "xapp-not-this-app" not in text
    assert slack.count_calls("apps.connections.open") == 1  # not retried


async def _unreachable_then_sigterm(tmp_path, slack, luma, **extra: str) -> str:
    dead = free_port()  # nothing listens there
    env = _env(tmp_path, slack, luma, SLACK_API_URL=f"http://127.0.0.1:{dead}/api/", LUMABOT_LOG_LEVEL="INFO",
               **extra)
    port = env["LUMABOT_METRICS_PORT"] if "LUMABOT_METRICS_PORT" in extra else env["PORT"]
    proc = await _start(env, tmp_path)
    lines: list[str] = []

    async def read() -> None:
        assert proc.stdout is not None
        async for line in proc.stdout:
            lines.append(line.decode())

    reader = asyncio.ensure_future(read())
    for _ in range(400):  # until two tries have been logged
        if sum("cannot reach Slack" in line for line in lines) >= 2:
            break
        await asyncio.sleep(0.05)
    assert await _healthz(port) == 503  # up, not ready
    proc.send_signal(signal.SIGTERM)
    await asyncio.wait_for(proc.wait(), 30)  # stops while it waits for Slack
    await reader
    assert proc.returncode == 0
    text = "".join(lines)
    assert "Traceback" not in text and "ClientConnector" in text
    assert all(len(line) < 300 for line in lines)
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
        await asyncio.wait_for(check.communicate(), 30)
        assert check.returncode == 1  # nothing runs yet
        proc = await _start(env, tmp_path)
        try:
            for _ in range(400):
                if await _healthz(metrics) == 200:
                    break
                await asyncio.sleep(0.05)
            check = await _start(env, tmp_path, "healthcheck")
            await asyncio.wait_for(check.communicate(), 30)
            assert check.returncode == 0  # it probes LUMABOT_METRICS_PORT in Socket Mode, not PORT
        finally:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0


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
    proc = await _start(env, tmp_path)
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        async for line in proc.stdout:
            lines.append(line.decode())
            if sum("cannot reach Slack" in seen for seen in lines) == 2:
                break
        assert connections == 2, "".join(lines)  # two tries logged, two requests made
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.communicate(), 30)
        server.close()
        await server.wait_closed()
