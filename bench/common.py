"""Shared by the benchmarks: the real app in HTTP mode against the in-package fakes."""

from __future__ import annotations

import asyncio
import math
import os
import re
import tempfile
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import aiohttp

from lumabot.app import LumaBot
from lumabot.config import load_settings
from lumabot.metrics import FullCollections, loop_lateness
from lumabot.testing.fake_luma import FakeLuma
from lumabot.testing.fake_slack import FakeSlack, sign_request, slash_command_payload
from lumabot.testing.process import BotProcess as _BotProcess
from lumabot.testing.process import bot_env

for _var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
    os.environ.pop(_var, None)  # slack_sdk's aiohttp clients would send 127.0.0.1 to a proxy


@dataclass
class Rig:
    bot: LumaBot
    slack: FakeSlack
    luma: FakeLuma
    url: str

    async def command(self, text: str, *, user_id: str, command: str = "/imagine", channel_id: str = "C1"):
        return await self.slack.post_command(self.url, command, text, user_id=user_id, channel_id=channel_id)


@asynccontextmanager
async def rig(luma: FakeLuma, **env: str):
    """Start the fakes and lumabot; `env` overrides lumabot's settings (env var names)."""
    slack = FakeSlack()
    await slack.start()
    await luma.start()
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(_env_file=None, **bot_env(
            slack, luma, Path(tmp) / "bench.db", LUMABOT_LOG_LEVEL="WARNING", **env))
        bot = LumaBot(settings)
        port = await bot.serve_http(host="127.0.0.1", port=0)
        await bot.start()
        try:
            yield Rig(bot=bot, slack=slack, luma=luma, url=f"http://127.0.0.1:{port}/slack/events")
        finally:
            await bot.stop()
            await luma.stop()
            await slack.stop()


def table(rows: list[tuple[str, str, str, bool | None]]) -> str:
    """figure | value | target | verdict"""
    width = max(len(r[0]) for r in rows)
    vwidth = max(len(r[1]) for r in rows)
    lines = []
    for name, value, target, ok in rows:
        mark = "" if ok is None else ("  ok" if ok else "  MISSED")
        lines.append(f"  {name:<{width}}  {value:>{vwidth}}  {target}{mark}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# The bot as a subprocess (`python -m lumabot run`), fakes in this process: the bot's CPU, memory
# and event loop are its own, as in production.
# ----------------------------------------------------------------------------------------------

_CLK_TCK = os.sysconf("SC_CLK_TCK")


class BotProcess(_BotProcess):
    """The bot subprocess, plus what the kernel and its /metrics say about it."""

    forked = False  # the real process: its memory and CPU are what is measured

    def log_problems(self) -> list[str]:
        """The bot's WARNING, ERROR and CRITICAL log lines (read when it stopped)."""
        return [line for line in self.log_text.splitlines()
                if any(f" {lvl} " in line for lvl in ("WARNING", "ERROR", "CRITICAL"))
                and _BENIGN not in line]

    # -- what the kernel says about the process ------------------------------------------------
    def rss_bytes(self) -> int:
        return _status_kb(self.pid, "VmRSS") * 1024

    def peak_rss_bytes(self) -> int:
        """High-water mark of the resident set since the process started."""
        return _status_kb(self.pid, "VmHWM") * 1024

    def cpu_seconds(self) -> float:
        """User + system CPU time of the bot process (all its threads)."""
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime, stime (fields 14, 15)

    async def metrics(self) -> "Scrape":
        async with aiohttp.ClientSession(trust_env=False) as s:
            async with s.get(f"{self.base}/metrics") as r:
                return Scrape.parse(await r.text())


# Bolt says this at every start because lumabot passes its own configured WebClient.
_BENIGN = "As you gave `client` as well, `token` will be unused"


def _status_kb(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


class Poster:
    """Plays Slack sending signed slash commands to the bot over keep-alive connections."""

    def __init__(self, slack: FakeSlack, url: str, *, connections: int = 100, timeout: float = 60.0):
        self.slack, self.url = slack, url
        self.session = aiohttp.ClientSession(
            trust_env=False, connector=aiohttp.TCPConnector(limit=connections),
            timeout=aiohttp.ClientTimeout(total=timeout))

    async def command(self, text: str, *, user_id: str, channel_id: str = "C1",
                      command: str = "/imagine") -> tuple[int, str, float]:
        """(HTTP status, body, seconds from sending the request to the whole answer)."""
        payload = slash_command_payload(command, text, user_id=user_id, channel_id=channel_id,
                                        team_id=self.slack.team_id, api_app_id=self.slack.app_id)
        payload = self.slack.prepare_outgoing("slash_commands", payload)
        body = urlencode(payload).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded",
                   **sign_request(body, self.slack.signing_secret)}
        t0 = time.perf_counter()
        async with self.session.post(self.url, data=body, headers=headers) as resp:
            text_ = await resp.text()
        return resp.status, text_, time.perf_counter() - t0

    async def close(self) -> None:
        await self.session.close()


@dataclass
class ProcRig:
    proc: BotProcess
    slack: FakeSlack
    luma: FakeLuma
    poster: Poster

    async def command(self, text: str, *, user_id: str, channel_id: str = "C1"):
        return await self.poster.command(text, user_id=user_id, channel_id=channel_id)

    async def post_pending(self, n: int, *, users: int, user_prefix: str = "U",
                           at_once: int = 50) -> list[float]:
        """`/imagine` n times from `users` people, `at_once` in flight; each must be acked
        (200, empty body). The acks' latencies, in seconds."""
        sem = asyncio.Semaphore(at_once)
        acks: list[float] = []

        async def one(i: int) -> None:
            async with sem:
                status, body, elapsed = await self.command(
                    f"pending picture {i}", user_id=f"{user_prefix}{i % users:03d}")
                assert status == 200 and not body, (status, body)
                acks.append(elapsed)

        await asyncio.gather(*(one(i) for i in range(n)))
        return acks

    async def until_generations(self, n: int, *, timeout: float, every: float = 0.1) -> None:
        """Wait until the fake Luma has received n generations."""
        t0 = time.monotonic()
        while len(self.luma.generations) < n:
            if time.monotonic() - t0 > timeout:
                raise RuntimeError(f"only {len(self.luma.generations)} generations after {timeout:g} s")
            await asyncio.sleep(every)


@asynccontextmanager
async def proc_rig(luma: FakeLuma, slack: FakeSlack | None = None, *, connections: int = 100, **env: str):
    """Start the fakes here and lumabot as a subprocess; `env` overrides lumabot's settings."""
    slack = slack or FakeSlack()
    await slack.start()
    await luma.start()
    with tempfile.TemporaryDirectory() as tmp:
        proc = BotProcess(bot_env(slack, luma, Path(tmp) / "bench.db", LUMABOT_LOG_LEVEL="WARNING", **env),
                          Path(tmp))
        poster = None
        try:
            await proc.start()
            poster = Poster(slack, proc.url, connections=connections)
            yield ProcRig(proc=proc, slack=slack, luma=luma, poster=poster)
        finally:
            if poster is not None:
                await poster.close()
            await proc.stop()
            await luma.stop()
            await slack.stop()


# ----------------------------------------------------------------------------------------------
# Prometheus text, and quantiles from histogram buckets
# ----------------------------------------------------------------------------------------------

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$')
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@dataclass
class Scrape:
    samples: dict[tuple[str, frozenset], float]

    @classmethod
    def parse(cls, text: str) -> "Scrape":
        samples = {}
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            m = _SAMPLE.match(line)
            if m:
                labels = frozenset(_LABEL.findall(m.group(2) or ""))
                samples[(m.group(1), labels)] = float(m.group(3))
        return cls(samples)

    def value(self, name: str, **labels: str) -> float:
        want = set(labels.items())
        return sum(v for (n, ls), v in self.samples.items() if n == name and want <= ls)

    def buckets(self, name: str, **labels: str) -> dict[float, float]:
        """Cumulative counts by upper bound (le) of histogram `name`, summed over other labels."""
        out: dict[float, float] = {}
        want = set(labels.items())
        for (n, ls), v in self.samples.items():
            if n == f"{name}_bucket" and want <= ls:
                le = float(dict(ls)["le"])
                out[le] = out.get(le, 0.0) + v
        return dict(sorted(out.items()))


def bucket_delta(after: dict[float, float], before: dict[float, float] | None) -> dict[float, float]:
    before = before or {}
    return {le: n - before.get(le, 0.0) for le, n in after.items()}


def bucket_quantile(cumulative: dict[float, float], q: float) -> float:
    """The upper bound of the bucket holding quantile `q` (inf when it is past the last bound)."""
    total = cumulative.get(float("inf"), max(cumulative.values(), default=0.0))
    if total <= 0:
        return float("nan")
    for le, n in cumulative.items():
        if n >= q * total:
            return le
    return float("inf")


def quantile(values: list[float], q: float) -> float:
    """Nearest-rank quantile of raw values."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))]


def fmt_seconds(s: float) -> str:
    if s != s:
        return "n/a"
    if s == float("inf"):
        return "over the last bucket"
    return f"{s * 1000:.0f} ms" if s < 1 else f"{s:.2f} s"


class ClientStalls:
    """The benchmark process's own stalls while it measures (it hosts the fakes and the client:
    a slow ack it times may be its own). `async with ClientStalls() as stalls:`, then
    `stalls.longest` (seconds, 0 if none over `threshold`) and `stalls.gc` (full collections)."""

    def __init__(self, threshold: float = 0.05, tick: float = 0.01):
        self.threshold, self.tick = threshold, tick
        self.stalls: list[float] = []
        self.gc: list[float] = []   # durations of generation-2 collections
        self._collections = FullCollections(self.gc.append)
        self._task: asyncio.Task[None] | None = None

    def _late(self, seconds: float) -> None:
        if seconds > self.threshold:
            self.stalls.append(seconds)

    @property
    def longest(self) -> float:
        return max(self.stalls, default=0.0)

    async def __aenter__(self) -> "ClientStalls":
        self._collections.watch()
        self._task = asyncio.ensure_future(loop_lateness(self.tick, self._late))
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._collections.unwatch()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
