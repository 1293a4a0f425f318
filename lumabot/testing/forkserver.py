"""`lumabot run` for tests without paying for its imports each time.

A bot process spends about 1.1 s of CPU importing before it serves, and the tests start dozens.
One server per test process imports lumabot once; each bot is then a fork of it, with its own
environment, working directory and log, that runs the `lumabot` command as a fresh process
would (same signals, same exit codes, killed with -9 the same way). Benchmarks, which measure
the process, start the real one (`BotProcess.forked = False`).

Each bot has a monitor (forked too): the bot's parent, it tells the test the bot's pid, then its
exit code. A test whose connection closes (it ended, or its process died) has its bot killed, as
asyncio kills a subprocess whose transport it closes.

    python -m lumabot.testing.forkserver SOCKET     (started by `spawn`, once per process)
"""

from __future__ import annotations

import asyncio
import atexit
import importlib
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import traceback
from pathlib import Path
from typing import Any

# What `python -m lumabot run` imports, in either mode, on either database.
PRELOAD = ("lumabot.cli", "lumabot.app", "lumabot.config", "lumabot.logs", "lumabot.store.migrate",
           "lumabot.store.dialects.sqlite", "lumabot.store.dialects.postgres", "lumabot.slack.socket_mode")


# -- the server (its own process) ----------------------------------------------------------------
def serve(path: str) -> None:
    for name in PRELOAD:
        importlib.import_module(name)
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen(64)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # monitors are reaped by the kernel
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # (a Ctrl-C is for the bots and the tests)
    print("ready", flush=True)
    try:
        _accept(listener)
    finally:
        os.unlink(path)
        os.rmdir(os.path.dirname(path))


def _accept(listener: socket.socket) -> None:
    """Fork a monitor for each connection, until the test process is gone."""
    with selectors.DefaultSelector() as sel:
        sel.register(listener, selectors.EVENT_READ)
        sel.register(sys.stdin, selectors.EVENT_READ)
        while True:
            for key, _ in sel.select():
                if key.fileobj is not listener:
                    if not os.read(sys.stdin.fileno(), 4096):
                        return  # the test process is gone
                    continue
                conn, _ = listener.accept()
                if os.fork() == 0:
                    try:
                        sel.close()
                        listener.close()
                        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                        signal.signal(signal.SIGINT, signal.default_int_handler)
                        _monitor(conn)
                    finally:
                        os._exit(1)   # (never back into the server's loop)
                conn.close()


def _monitor(conn: socket.socket) -> None:
    """Fork the bot, tell its pid, wait for it to exit (or for the test to go: kill it), tell how."""
    status = 1
    try:
        stream = conn.makefile("rwb", buffering=0)
        request = json.loads(stream.readline())
        pid = os.fork()
        if pid == 0:
            stream.close()
            conn.close()
            _bot(request)
        stream.write(json.dumps({"pid": pid}).encode() + b"\n")
        with selectors.DefaultSelector() as sel:
            exited = os.pidfd_open(pid)
            sel.register(exited, selectors.EVENT_READ)
            sel.register(conn, selectors.EVENT_READ)
            while not any(key.fileobj == exited for key, _ in sel.select()):
                if not conn.recv(1):  # the test went away: its bot goes too
                    os.kill(pid, signal.SIGKILL)
                    sel.unregister(conn)
        _, waited = os.waitpid(pid, 0)
        stream.write(json.dumps({"exit": os.waitstatus_to_exitcode(waited)}).encode() + b"\n")
        status = 0
    except OSError:
        pass   # (the test is gone: nobody to tell)
    finally:
        os._exit(status)


def _bot(request: dict[str, Any]) -> None:
    """Become `lumabot <argv>`: its environment, its directory, its log on stdout and stderr."""
    code: int = 1
    try:
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        sys.argv = ["lumabot", *request["argv"]]
        from lumabot.cli import main
        code = main(request["argv"])
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
        code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    except BaseException:
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(code)


# -- the test's side -----------------------------------------------------------------------------
_server: subprocess.Popen[bytes] | None = None
_socket_path: str | None = None
_starting = threading.Lock()


def _server_path() -> str:
    """The server's socket, the server started first if need be (once per process)."""
    global _server, _socket_path
    with _starting:
        if _server is None or _server.poll() is not None:
            _start_server()
    assert _socket_path is not None
    return _socket_path


def _start_server() -> None:
    global _server, _socket_path
    _socket_path = os.path.join(tempfile.mkdtemp(prefix="lumabot-forks-"), "server")
    _server = server = subprocess.Popen([sys.executable, "-m", "lumabot.testing.forkserver", _socket_path],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert server.stdin is not None and server.stdout is not None
    if server.stdout.readline() != b"ready\n":
        raise RuntimeError("the bot fork server did not start")
    atexit.register(server.stdin.close)  # (its end: the server stops)


class ForkedProcess:
    """A bot forked by the server: what tests use of asyncio's Process."""

    def __init__(self, pid: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.pid = pid
        self.returncode: int | None = None
        self._writer = writer
        self._exited = asyncio.get_running_loop().create_task(self._exit(reader))

    async def _exit(self, reader: asyncio.StreamReader) -> None:
        line = await reader.readline()
        # (No answer: the connection was closed here, and the monitor killed the bot.)
        self.returncode = json.loads(line)["exit"] if line else -signal.SIGKILL
        self._writer.close()

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    async def wait(self) -> int:
        await asyncio.shield(self._exited)
        assert self.returncode is not None
        return self.returncode


async def spawn(argv: list[str], *, env: dict[str, str], cwd: Path, log: Path) -> ForkedProcess:
    """`lumabot <argv>` with exactly `env`, in `cwd`, its output to `log`."""
    path = await asyncio.to_thread(_server_path)
    reader, writer = await asyncio.open_unix_connection(path)
    writer.write(json.dumps({"argv": argv, "env": env, "cwd": str(cwd), "log": str(log)}).encode() + b"\n")
    await writer.drain()
    line = await reader.readline()
    if not line:
        raise RuntimeError("the bot fork server did not fork")
    return ForkedProcess(json.loads(line)["pid"], reader, writer)


if __name__ == "__main__":
    serve(sys.argv[1])
