"""Shared by the benchmarks: the real app in HTTP mode against the in-package fakes."""

from __future__ import annotations

import os
import tempfile
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from lumabot.app import LumaBot
from lumabot.config import load_settings
from lumabot.testing.fake_luma import FakeLuma
from lumabot.testing.fake_slack import FakeSlack

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
        settings = load_settings(_env_file=None, **{
            "SLACK_BOT_TOKEN": slack.bot_token, "SLACK_SIGNING_SECRET": slack.signing_secret,
            "SLACK_API_URL": slack.api_url, "LUMA_AGENTS_API_KEY": luma.api_key,
            "LUMA_BASE_URL": luma.base_url, "LUMABOT_DATABASE_URL": f"sqlite:///{Path(tmp) / 'bench.db'}",
            "LUMABOT_HOST": "127.0.0.1", "LUMABOT_LOG_LEVEL": "WARNING", **env})
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
