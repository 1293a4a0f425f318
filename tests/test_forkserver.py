"""The bots of the process tests are forks of one process that imported lumabot (testing/
forkserver.py): each behaves as `lumabot run` started afresh would, and none outlives its test."""

from __future__ import annotations

import asyncio
import os
import signal

from lumabot.testing import forkserver
from lumabot.testing.process import BotProcess

from .conftest import bot_env


async def test_a_forked_bot_reads_only_its_own_environment_and_exits_with_the_commands_code(tmp_path, monkeypatch):
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-of-the-test-process")  # not handed down...
    monkeypatch.setattr(forkserver, "_server", None)   # ...by a server started with it
    log = tmp_path / "bot.log"
    proc = await forkserver.spawn(["run"], env={"PATH": os.environ.get("PATH", "")}, cwd=tmp_path, log=log)
    assert await asyncio.wait_for(proc.wait(), 30) == 2
    text = log.read_text()
    assert "lumabot cannot start; fix the configuration" in text and "SLACK_BOT_TOKEN" in text


async def test_a_forked_bot_serves_stops_on_sigterm_and_dies_with_kill_9(tmp_path, slack, luma):
    assert BotProcess.forked
    bot = BotProcess(bot_env(tmp_path, slack, luma), tmp_path)
    await bot.start()
    assert isinstance(bot.proc, forkserver.ForkedProcess) and bot.proc.pid != os.getpid()
    bot.proc.send_signal(signal.SIGTERM)
    assert await bot.wait(30) == 0
    assert "Traceback" not in bot.log_text
    again = BotProcess(bot_env(tmp_path, slack, luma), tmp_path)
    await again.start()
    again.kill9()
    assert await again.wait(30) == -signal.SIGKILL


async def test_a_bot_whose_test_went_away_is_killed(tmp_path, slack, luma):
    bot = BotProcess(bot_env(tmp_path, slack, luma), tmp_path)
    await bot.start()
    assert isinstance(bot.proc, forkserver.ForkedProcess)
    exited = asyncio.Event()
    pidfd = os.pidfd_open(bot.proc.pid)   # readable once the process has ended
    asyncio.get_running_loop().add_reader(pidfd, exited.set)
    try:
        bot.proc._writer.close()   # as when the test's process dies, or its loop closes the socket
        await asyncio.wait_for(exited.wait(), 30)
    finally:
        asyncio.get_running_loop().remove_reader(pidfd)
        os.close(pidfd)
