"""lumabot against the in-package fakes: its settings, and `lumabot run` as a subprocess
(for restart tests and benchmarks, where the bot's process must be its own)."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import BinaryIO, ClassVar

import aiohttp

from . import forkserver
from .fake_luma import FakeLuma
from .fake_slack import FakeSlack


# Ports handed out here come from a range of this process's own (by pytest-xdist worker),
# below the kernel's ephemeral ports: a port the kernel picked was free when asked, and another
# worker could take it before a bot bound it. That once sent one test's command to another
# test's bot, whose /healthz had answered for it.
_PORTS_FROM, _PORTS_EACH = 20_000, 1_000
_next_port = itertools.count()


def free_port() -> int:
    """A port nothing listens on now, from this test worker's own range."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    base = _PORTS_FROM + (index % 12) * _PORTS_EACH
    for _ in range(_PORTS_EACH):
        port = base + next(_next_port) % _PORTS_EACH
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {base}-{base + _PORTS_EACH - 1}")


def bot_env(slack: FakeSlack, luma: FakeLuma, database: Path, **extra) -> dict:
    """lumabot's settings (environment variable names) for talking to these fakes."""
    return {
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_SIGNING_SECRET": slack.signing_secret,
        "SLACK_API_URL": slack.api_url,
        "LUMA_AGENTS_API_KEY": luma.api_key,
        "LUMA_BASE_URL": luma.base_url,
        "LUMABOT_DATABASE_URL": f"sqlite:///{database}",
        "LUMABOT_HOST": "127.0.0.1",
        **extra,
    }


class _PortTaken(Exception):
    """Another process bound the port chosen for lumabot first."""


class BotProcess:
    """`python -m lumabot run` in HTTP mode, in a subprocess, as an operator would run it.

    Its log goes to a file in `workdir` (a pipe nobody reads would block it once full); the
    working directory is `workdir`, so no stray `.env` is read. `health_port` is where /healthz
    answers when it is not PORT (Socket Mode with LUMABOT_METRICS_PORT). `forked`: the process
    is forked from one that imported lumabot already (see forkserver), not started afresh."""

    forked: ClassVar[bool] = True

    def __init__(self, env: dict[str, str], workdir: Path, *, health_port: int | None = None,
                 port: int | None = None):
        # A port chosen here may be taken by another test's process before lumabot binds it:
        # then `start` tries another (a given port is the same replica, restarted: never moved).
        self._own_port = port is None and health_port is None
        self.workdir = workdir
        self._env = env
        self._health_port = health_port
        self._use_port(port or free_port())
        self.proc: asyncio.subprocess.Process | forkserver.ForkedProcess | None = None
        self._log: BinaryIO | None = None

    def _use_port(self, port: int) -> None:
        self.port = port
        self.env = {**{k: v for k, v in os.environ.items() if "PROXY" not in k.upper()},
                    **self._env, "PORT": str(self.port)}
        self.url = f"http://127.0.0.1:{self.port}/slack/events"
        self.base = f"http://127.0.0.1:{self._health_port or self.port}"
        self.log_path = self.workdir / f"lumabot-{self.port}.log"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def start(self, timeout: float = 30.0) -> None:
        """Start it and wait until /healthz answers 200."""
        for _ in range(3):
            try:
                await self._start(timeout)
                return
            except _PortTaken:
                self._use_port(free_port())
        await self._start(timeout)

    async def _start(self, timeout: float) -> None:
        if self.forked:
            self.proc = await forkserver.spawn(["run"], env=self.env, cwd=self.workdir, log=self.log_path)
        else:
            self._log = open(self.log_path, "wb")
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "lumabot", "run", env=self.env, cwd=self.workdir,
                stdout=self._log, stderr=self._log)
        until = time.monotonic() + timeout
        async with aiohttp.ClientSession(trust_env=False) as s:
            while time.monotonic() < until:
                if self.proc.returncode is not None:
                    await self.proc.wait()  # (its log is complete)
                    if self._log is not None:
                        self._log.close()
                    if self._own_port and "address already in use" in self.log_text:
                        raise _PortTaken()
                    raise AssertionError(f"lumabot exited: {self.log_text[-2000:]}")
                try:
                    async with s.get(f"{self.base}/healthz") as r:
                        if r.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)
        raise AssertionError("lumabot did not become healthy")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)

    async def wait(self, timeout: float | None = None) -> int:
        assert self.proc is not None
        return await asyncio.wait_for(self.proc.wait(), timeout)

    async def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (the graceful stop); SIGKILL if it does not exit in time."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), timeout)
            except asyncio.TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
