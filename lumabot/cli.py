"""The `lumabot` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from . import __version__


def _run(_args) -> int:
    from .config import ConfigError, load_settings

    try:
        settings = load_settings()
    except ConfigError as exc:   # (said before the bot is loaded: a second sooner)
        print("lumabot cannot start; fix the configuration:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    from .app import StartupError, run
    from .logs import setup_logging

    setup_logging(settings.log_level, settings.log_format)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run(settings, stop_event=stop)

    try:
        asyncio.run(main())
    except StartupError as exc:  # a refused token: final, like a configuration problem
        logging.getLogger("lumabot").error("%s", exc)
        return 2
    return 0


RUN_HELP = """Start lumabot. Its configuration comes from the environment, or a .env file in the working
directory (.env.example lists every setting). The main ones:

  SLACK_BOT_TOKEN         the bot token, xoxb-... (required)
  SLACK_APP_TOKEN         an app-level token, xapp-...: Socket Mode (no public URL needed)
  SLACK_SIGNING_SECRET    without an app token: HTTP mode on PORT (default 3000), /slack/events
  LUMA_AGENTS_API_KEY     the Luma Agents API key (required)
  LUMABOT_DATABASE_URL    sqlite:///lumabot.db (default), or postgresql://... for several replicas
  LUMABOT_LUMA_CONCURRENCY, LUMABOT_MAX_QUEUED_PER_USER, LUMABOT_DAILY_BUDGET_USD: limits

It serves /healthz and /metrics, stops cleanly on SIGTERM or Ctrl-C (uploads and creates in
progress finish), and refuses to start with one line per configuration problem.

`lumabot check` checks a configuration without starting (Slack token and scopes, Luma key,
database); docs/install.md documents every setting and how to create the Slack app."""


def _healthcheck() -> int:
    """GET /healthz of the lumabot running with this configuration, on the port it serves it on
    (PORT, or in Socket Mode LUMABOT_METRICS_PORT when set): 0 on HTTP 200, else 1."""
    import urllib.request

    from .config import ConfigError, load_settings

    try:
        settings = load_settings()
    except ConfigError:
        return 1
    port = (settings.metrics_port or settings.port) if settings.socket_mode else settings.port
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy
    try:
        with opener.open(f"http://127.0.0.1:{port}/healthz", timeout=4) as answer:
            return 0 if answer.status == 200 else 1
    except OSError:
        return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lumabot", description="A Slack image studio on Luma.")
    parser.add_argument("--version", action="version", version=f"lumabot {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="start the bot (Socket Mode when SLACK_APP_TOKEN is set, else HTTP)",
                   description=RUN_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub.add_parser("check", help="check the configuration, the Slack token and scopes, and the Luma key")
    sub.add_parser("healthcheck", help="exit 0 if the running lumabot's /healthz answers 200 (container health checks)")
    demo = sub.add_parser("demo", help="play a scripted conversation against built-in fakes (no network)")
    demo.add_argument("--out", default="lumabot-demo", help="folder for the images (default ./lumabot-demo)")
    args = parser.parse_args(argv)
    if args.command == "run":
        return _run(args)
    if args.command == "check":
        from .check import main as check_main

        return check_main()
    if args.command == "healthcheck":
        return _healthcheck()
    if args.command == "demo":
        from .demo import main as demo_main

        return demo_main(out=args.out)
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
