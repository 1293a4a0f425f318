"""The composition root: builds every part from the settings, connects the core to its Slack
and Luma adapters, and runs them in HTTP or Socket Mode."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

import aiohttp
import httpx
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from .admin import AdminCommands, BudgetAlerts, Exports, Reports, Retention
from .config import Settings
from .intake import Intake
from .quotas import Quotas
from .luma.client import LumaClient
from .luma.output import LumaOutputs
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .metrics import Metrics
from .runner import Runner
from .runner.scheduler import Scheduler, SlotScheduler
from .runner.shared_scheduler import SharedScheduler
from .sessions import Sessions
from .slack import ingress, listeners
from .slack.admins import Admins
from .slack.files import SlackFiles, TokenHosts
from .slack.notifier import MAX_CONCURRENT_TRANSFERS, SlackNotifier
from .store import Store, open_store
from .tls import tls_context

log = logging.getLogger(__name__)


SHUTDOWN_GRACE = 10.0  # seconds uploads in progress get to finish on SIGTERM (at least)


class StartupError(Exception):
    """A problem that stops lumabot from starting; the message is for the operator."""


def slack_web_client(settings: Settings, session: aiohttp.ClientSession | None = None) -> AsyncWebClient:
    return AsyncWebClient(
        token=settings.bot_token(),
        base_url=settings.slack_api_url,
        session=session,  # shared: keeps connections to Slack alive between calls
        timeout=30,
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(max_retry_count=2),
            AsyncRateLimitErrorRetryHandler(max_retry_count=3),
            AsyncServerErrorRetryHandler(max_retry_count=2),
        ],
    )


class LumaBot:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.store: Store = open_store(settings.database_url)
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=10.0), follow_redirects=True,
                                      verify=tls_context())
        self._slack_session = aiohttp.ClientSession()
        self.slack = slack_web_client(settings, self._slack_session)
        self.metrics = Metrics()
        self.luma = LumaClient(api_key=settings.luma_key(), base_url=settings.luma_base_url,
                               timeout=settings.luma_request_timeout, metrics=self.metrics)
        transfers = asyncio.Semaphore(MAX_CONCURRENT_TRANSFERS)  # downloads and uploads at once
        self.notifier = SlackNotifier(self.slack, self.http, self.metrics, transfers=transfers)
        runner_config = settings.runner()
        # Luma's limits: in memory for one process (SQLite), in the database for several replicas.
        self.scheduler: SlotScheduler = (
            SharedScheduler(self.store, settings.luma_concurrency,
                            replica_id=runner_config.replica_id, rate_window=settings.luma_rate_window)
            if self.store.shared
            else Scheduler(settings.luma_concurrency, rate_window=settings.luma_rate_window))
        self.inputs = SlackFiles(self.slack, self.http, settings.bot_token(),
                                 token_hosts=TokenHosts(settings.slack_api_url))
        self.runner = Runner(store=self.store, luma=self.luma, notifier=self.notifier,
                             outputs=LumaOutputs(self.http, transfers), inputs=self.inputs,
                             scheduler=self.scheduler, config=runner_config, metrics=self.metrics)
        self.quotas = Quotas(self.store, settings.prices(), settings.limits())
        self.bolt = AsyncApp(
            client=self.slack,
            signing_secret=settings.signing_secret() or None,
            # Listeners record the job (durably) before the ack: a crash after an ack loses nothing.
            process_before_response=True,
            # Signatures are checked before Bolt parses anything (slack/ingress.py).
            request_verification_enabled=False,
            logger=ingress.quiet_logger("lumabot.bolt"),
        )
        self.sessions = Sessions(self.store, self.notifier, settings.session_rules())
        self.runner.on_delivered.append(self.sessions.on_delivered)
        self.admins = Admins(self.slack, settings.admin_ids(), home=lambda: self.notifier.installation)
        self.alerts = BudgetAlerts(self.store, self.notifier, self.admins)
        self.intake = Intake(self.store, self.runner, self.quotas, self.sessions, self.notifier,
                             self.admins, self.alerts, ack_budget=settings.ack_budget)
        self.retention = Retention(self.store, self.quotas, lambda: self.notifier.team_id or "")
        self.admin = AdminCommands(self.store, Reports(self.store, self.quotas), self.retention,
                                   Exports(self.store, self.notifier, max_bytes=settings.export_max_mb * 2**20),
                                   self.admins)
        listeners.register(self.bolt, listeners.Lumabot(self.intake, self.notifier, self.admins, self.admin))
        self._verifier = (None if settings.socket_mode
                          else SignatureVerifier(settings.signing_secret()))
        self.ready = False
        self._runner: web.AppRunner | None = None
        self._socket_handler: Any = None  # AsyncSocketModeHandler, imported when used

    # -- life cycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        """Open the store, check the Slack token, resume unfinished jobs."""
        await self.store.open()
        try:
            auth = await self.notifier.connect()
        except SlackApiError as exc:
            raise StartupError(f"Slack refused SLACK_BOT_TOKEN ({exc.response.get('error')})") from None
        log.info("connected to Slack team %s as %s", auth.get("team"), auth.get("user"))
        await self.runner.resume()
        await self.sessions.check()  # idle ends that fell due while down; recaps not posted yet
        self.sessions.start_guard()
        self.retention.start()  # the daily sweep
        self.runner.start_line_reporter()
        self.metrics.start_loop_monitor()
        self.ready = True

    async def stop(self, *, drain: float = 0.0) -> None:
        """Stop. With `drain`, creates and uploads in progress get that many seconds to finish;
        every other job stays in the store for the next start."""
        self.ready = False
        if self._socket_handler is not None:
            await self._socket_handler.close_async()
        self.sessions.stop_guard()
        await self.retention.stop()
        await self.alerts.close()
        await self.runner.drain(drain) if drain else await self.runner.stop()
        if self._runner is not None:
            await self._runner.cleanup()
        self.metrics.stop()
        await self.luma.close()
        self.inputs.close()
        await self.http.aclose()
        await self.store.close()
        await self._slack_session.close()

    # -- HTTP ----------------------------------------------------------------------------------
    def web_app(self, *, slack_events: bool = True) -> web.Application:
        app = web.Application()
        if slack_events:
            app.router.add_post("/slack/events", self._slack_events)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        return app

    async def _metrics(self, _request: web.Request) -> web.Response:
        self.runner.collect_metrics()
        return web.Response(body=self.metrics.render(), headers={"Content-Type": METRICS_CONTENT_TYPE})

    async def _slack_events(self, request: web.Request) -> web.Response:
        try:
            bolt_request = ingress.bolt_request(await request.read(), request.query_string, request.headers,
                                                verifier=self._verifier)
        except ingress.Refused as refused:
            log.warning(refused.reason)
            return web.json_response({"error": "invalid request"}, status=refused.status)
        return await to_aiohttp_response(await ingress.dispatch(self.bolt, bolt_request))

    async def _healthz(self, _request: web.Request) -> web.Response:
        if self.ready:
            return web.json_response({"ok": True, "pending_jobs": self.runner.active})
        return web.json_response({"ok": False, "starting": True}, status=503)

    async def serve_http(self, *, host: str | None = None, port: int | None = None,
                         slack_events: bool = True) -> int:
        """Serve /slack/events (unless slack_events=False) and /healthz; returns the bound port."""
        self._runner = web.AppRunner(self.web_app(slack_events=slack_events), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host or self.settings.host,
                           self.settings.port if port is None else port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        bound = sockets[0].getsockname()[1] if sockets else (port or self.settings.port)
        log.info("listening on %s:%s", host or self.settings.host, bound)
        return bound

    # -- Socket Mode ---------------------------------------------------------------------------
    async def connect_socket_mode(self) -> None:
        from .slack.socket_mode import SocketModeIngress

        self._socket_handler = SocketModeIngress(self.bolt, self.settings.app_token(), web_client=self.slack)
        await self._socket_handler.connect_async()
        log.info("connected to Slack in Socket Mode")


async def run(settings: Settings, *, stop_event: asyncio.Event | None = None) -> None:
    """`lumabot run`: start, serve until stopped."""
    bot = LumaBot(settings)
    stop_event = stop_event or asyncio.Event()
    try:
        # /healthz is served from the first moment (503 until ready). In Socket Mode the
        # port only serves /healthz and /metrics (LUMABOT_METRICS_PORT, else PORT).
        if settings.socket_mode:
            await bot.serve_http(slack_events=False, port=settings.metrics_port or settings.port)
            await bot.start()
            await bot.connect_socket_mode()
        else:
            await bot.serve_http()
            await bot.start()
        await stop_event.wait()
        log.info("stopping: finishing uploads in progress, the rest stays queued for the next start")
    finally:
        # Creates in flight are waited for up to Luma's request timeout: a create cut short is a
        # generation paid for and never seen.
        await bot.stop(drain=max(SHUTDOWN_GRACE, settings.luma_request_timeout + 1))
