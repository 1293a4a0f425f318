"""The composition root: builds every part from the settings, connects the core to its Slack
and Luma adapters, and runs them in HTTP or Socket Mode."""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import Any, Awaitable, Callable, TypeVar

import aiohttp
import httpx
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from .admin import AdminCommands, BudgetAlerts, Exports, Reports, Retention
from .config import INSTALL_PATH, OAUTH_REDIRECT_PATH, Settings
from .intake import Intake
from .presets import Presets
from .quotas import Quotas
from .luma.accounts import LumaAccounts
from .luma.client import LumaClient
from .luma.output import LumaOutputs
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .metrics import Metrics
from .runner import Runner
from .runner.scheduler import Scheduler, SlotScheduler
from .runner.schedulers import AccountSchedulers
from .runner.shared_scheduler import SharedScheduler
from .sessions import Sessions
from .slack import ingress, listeners
from .slack.admins import Admins
from .slack.files import SlackFiles, TokenHosts
from .slack.installations import Installations
from .slack.workspaces import InstalledWorkspaces, OneWorkspace, one_try, web_client
from .slack.notifier import MAX_CONCURRENT_TRANSFERS, SlackNotifier
from .store import Store, StoreUnavailable, open_store
from .tls import tls_context
from .waits import wait_event

log = logging.getLogger(__name__)


SHUTDOWN_GRACE = 10.0  # seconds uploads in progress get to finish on SIGTERM (at least)
INSTALLATIONS_CACHED = 60.0  # several replicas: the longest an installation stays cached here


class StartupError(Exception):
    """A problem that stops lumabot from starting; the message is for the operator."""


def slack_web_client(settings: Settings, session: aiohttp.ClientSession | None = None) -> AsyncWebClient:
    """A Web API client with SLACK_BOT_TOKEN (None in OAuth mode: each workspace has its own)."""
    return web_client(settings.slack_api_url, session)(settings.bot_token() or None)


class LumaBot:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.store: Store = open_store(settings.database_url)
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=10.0), follow_redirects=True,
                                      verify=tls_context())
        self._slack_session = aiohttp.ClientSession()
        # Slack: one workspace's bot token, or (OAuth mode) every workspace that installed lumabot.
        self.slack = slack_web_client(settings, self._slack_session)
        self.workspaces: OneWorkspace | InstalledWorkspaces
        self.installations: Installations | None = None
        if settings.oauth_mode:
            self.installations = Installations(settings, self.slack, changed=self.store.tenants.installations_changed)
            self.workspaces = InstalledWorkspaces(self.installations,
                                                  web_client(settings.slack_api_url, self._slack_session),
                                                  self.store.tenants)
        else:
            self.workspaces = OneWorkspace(self.slack)
        self.metrics = Metrics()
        def luma_client(key: str) -> LumaClient:
            return LumaClient(api_key=key, base_url=settings.luma_base_url, timeout=settings.luma_request_timeout,
                              metrics=self.metrics)

        self.luma = luma_client(settings.luma_key())
        # Workspaces may use their own Luma key (`/luma admin luma-key`): an account each.
        self.accounts = LumaAccounts(self.luma, self.store.luma_keys, sealer=settings.sealer(), connect=luma_client)
        transfers = asyncio.Semaphore(MAX_CONCURRENT_TRANSFERS)  # downloads and uploads at once
        self.notifier = SlackNotifier(self.workspaces, self.http, self.metrics, transfers=transfers)
        runner_config = settings.runner()
        # Luma's limits, per account: in memory for one process (SQLite), in the database for
        # several replicas.
        def scheduler(account: str) -> SlotScheduler:
            if self.store.shared:
                return SharedScheduler(self.store, settings.luma_concurrency, replica_id=runner_config.replica_id,
                                       rate_window=settings.luma_rate_window, account=account)
            return Scheduler(settings.luma_concurrency, rate_window=settings.luma_rate_window)

        self.scheduler = AccountSchedulers(scheduler)
        self.inputs = SlackFiles(self.workspaces, self.http, token_hosts=TokenHosts(settings.slack_api_url))
        self.runner = Runner(store=self.store, luma=self.accounts, notifier=self.notifier,
                             outputs=LumaOutputs(self.http, transfers), inputs=self.inputs,
                             scheduler=self.scheduler, config=runner_config, metrics=self.metrics)
        self.quotas = Quotas(self.store, settings.prices(), settings.limits())
        self.bolt = AsyncApp(
            name="lumabot",  # (without a name, Bolt reads the whole call stack for one: ~30 ms)
            client=self.slack,
            signing_secret=settings.signing_secret() or None,
            # Listeners record the job (durably) before the ack: a crash after an ack loses nothing.
            process_before_response=True,
            # Signatures are checked before Bolt parses anything (slack/ingress.py).
            request_verification_enabled=False,
            logger=ingress.quiet_logger("lumabot.bolt"),
            # OAuth mode: Bolt's install flow, and each request authorized with its workspace's bot.
            **(self.installations.bolt_options() if self.installations else {}),
        )
        self.sessions = Sessions(self.store, self.notifier, settings.session_rules())
        self.runner.on_uploaded.append(self.sessions.keep_thumbnail)
        self.runner.on_delivered.append(self.sessions.on_delivered)
        self.admins = Admins(self.workspaces, settings.admin_ids())
        self.alerts = BudgetAlerts(self.store, self.notifier, self.admins)
        self.presets = Presets(self.store, self.inputs, self.admins)
        self.intake = Intake(self.store, self.runner, self.quotas, self.sessions, self.notifier,
                             self.admins, self.alerts, presets=self.presets, ack_budget=settings.ack_budget)
        self.retention = Retention(self.store, self.quotas)
        self.admin = AdminCommands(self.store, Reports(self.store, self.quotas), self.retention,
                                   Exports(self.store, self.notifier, max_bytes=settings.export_max_mb * 2**20),
                                   self.admins, self.accounts)
        listeners.register(self.bolt, listeners.Lumabot(self.intake, self.notifier, self.admins, self.admin,
                                                        home_team=self.home_team, uninstalled=self._uninstalled,
                                                        seen=self._seen if self.installations else None,
                                                        names_workspace=self.installations is not None))
        self._verifier = (None if settings.socket_mode
                          else SignatureVerifier(settings.signing_secret()))
        self.ready = False
        self._following: asyncio.Future[None] | None = None   # several replicas, OAuth mode
        self._runner: web.AppRunner | None = None
        self._socket_handler: Any = None  # AsyncSocketModeHandler, imported when used

    # -- life cycle ----------------------------------------------------------------------------
    async def start(self, stop: asyncio.Event | None = None) -> bool:
        """Open the store, check the Slack token (Slack unreachable: one line, then again with
        backoff until it answers or `stop` is set), resume unfinished jobs. False if stopped
        before it could start."""
        try:
            await until_reachable(self.store.open, "the database", "LUMABOT_DATABASE_URL", stop)
            if isinstance(self.workspaces, OneWorkspace):
                auth = await until_reachable(self.workspaces.connect, "Slack", self.settings.slack_api_url, stop)
                log.info("connected to Slack team %s as %s", auth.get("team"), auth.get("user"))
        except Stopped:
            return False
        except RuntimeError as exc:  # a schema newer than this lumabot
            raise StartupError(str(exc)) from None
        except SlackApiError as exc:
            raise StartupError(f"Slack refused SLACK_BOT_TOKEN ({exc.response.get('error')})") from None
        if self.installations is not None:
            self.installations.open(self.store.db.library_engine())
            log.info("OAuth mode: workspaces add lumabot at %s", self.installations.install_url)
        try:
            await self.accounts.reseal()   # workspaces' Luma keys under the first encryption key
        except StoreUnavailable as exc:
            log.warning("workspaces' Luma keys not sealed again now (database unavailable): %s", exc)
        await self.runner.resume()
        await self.sessions.check()  # idle ends that fell due while down; recaps not posted yet
        self.sessions.start_guard()
        self.retention.start()  # the daily sweep
        if self.installations is not None and self.store.shared:
            await self.store.db.listen()  # an uninstall on another replica from now on is heard
            self._following = asyncio.ensure_future(self._follow_installations())
        self.runner.start_line_reporter()
        self.metrics.start_loop_monitor()
        self.ready = True
        return True

    async def stop(self, *, drain: float = 0.0) -> None:
        """Stop. With `drain`, creates and uploads in progress get that many seconds to finish;
        every other job stays in the store for the next start."""
        self.ready = False
        if self._following is not None:
            self._following.cancel()
            await asyncio.gather(self._following, return_exceptions=True)
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
        await self.accounts.close()
        self.inputs.close()
        await self.http.aclose()
        await self.store.close()
        await self._slack_session.close()

    # -- HTTP ----------------------------------------------------------------------------------
    def web_app(self, *, slack_events: bool = True) -> web.Application:
        app = web.Application()
        if slack_events:
            app.router.add_post("/slack/events", self._slack_events)
        if self.installations is not None:
            app.router.add_get(INSTALL_PATH, self._oauth)
            app.router.add_get(OAUTH_REDIRECT_PATH, self._oauth)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        return app

    def home_team(self) -> str:
        """Single-token mode: the bot token's workspace (the installing one of every request).
        OAuth mode: none (each request names its own)."""
        return self.workspaces.team_id if isinstance(self.workspaces, OneWorkspace) else ""

    async def _follow_installations(self) -> None:
        """Several replicas: an installation another replica saved, rotated or deleted is read
        again here (its NOTIFY; at most INSTALLATIONS_CACHED seconds late if one is lost)."""
        assert self.installations is not None and isinstance(self.workspaces, InstalledWorkspaces)
        while True:
            try:
                await self.store.tenants.wait_for_installations(INSTALLATIONS_CACHED)
            except StoreUnavailable:
                pass
            self.installations.forget_cached()
            self.workspaces.forget_all()

    async def _seen(self, team_id: str, enterprise_id: str | None) -> None:
        assert isinstance(self.workspaces, InstalledWorkspaces)
        await self.workspaces.seen(team_id, enterprise_id)

    async def _uninstalled(self, team_id: str, enterprise_id: str | None, org_wide: bool,
                           event: dict[str, Any]) -> None:
        """app_uninstalled, or tokens_revoked for the bot: in OAuth mode the installation's
        tokens are deleted at once (an org-wide one: for every workspace of the organisation),
        with the workspace's own Luma key, and its workspaces' jobs that wait for Luma are
        cancelled (nothing more is sent to Luma for them); later requests from them are refused by Bolt's authorize."""
        if self.installations is None or not (team_id or org_wide):
            return  # single-token mode: the operator replaces SLACK_BOT_TOKEN
        if event.get("type") == "tokens_revoked" and not (event.get("tokens") or {}).get("bot"):
            return  # user tokens only: lumabot keeps none
        assert isinstance(self.workspaces, InstalledWorkspaces)
        if org_wide and enterprise_id:
            await self.installations.uninstalled(None, enterprise_id)
            gone = await self.workspaces.of_enterprise(enterprise_id)
        else:
            await self.installations.uninstalled(team_id, enterprise_id)
            gone = [team_id]
        cancelled = 0
        for team in gone:
            self.workspaces.forget(team)
            await self.accounts.remove_key(team)  # its own Luma key goes with its tokens
            cancelled += await self.intake.workspace_gone(team)
        log.info("lumabot was uninstalled from %d workspace%s: tokens deleted, %d waiting job%s cancelled",
                 len(gone), "" if len(gone) == 1 else "s", cancelled, "" if cancelled == 1 else "s",
                 extra={"team": team_id, "enterprise": enterprise_id})

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

    async def _oauth(self, request: web.Request) -> web.Response:
        """"Add to Slack" (GET /slack/install) and Slack's redirect after it
        (GET /slack/oauth_redirect): Bolt's OAuth flow."""
        flow = self.bolt.oauth_flow
        if flow is None or not self.ready:
            return web.Response(status=503, text="lumabot is starting; try again in a moment")
        bolt_request = AsyncBoltRequest(body="", query=request.query_string,
                                        headers={k: v for k, v in request.headers.items()})
        handle = flow.handle_installation if request.path == INSTALL_PATH else flow.handle_callback
        return await to_aiohttp_response(await handle(bolt_request))

    async def _healthz(self, _request: web.Request) -> web.Response:
        if not self.ready:
            return web.json_response({"ok": False, "starting": True}, status=503)
        if self.settings.socket_mode and not await self.socket_connected():
            return web.json_response({"ok": False, "connected": False}, status=503)
        return web.json_response({"ok": True, "pending_jobs": self.runner.active})

    async def socket_connected(self) -> bool:
        """In Socket Mode: is the websocket to Slack open now?"""
        handler = self._socket_handler
        return handler is not None and bool(await handler.client.is_connected())

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
    async def connect_socket_mode(self, stop: asyncio.Event | None = None) -> bool:
        """Open the Socket Mode connection. A refused app token is final (StartupError); Slack
        unreachable is one line and another try with backoff, until `stop` is set (False)."""
        from .slack.socket_mode import REFUSED, SocketModeIngress

        token = self.settings.app_token()
        try:
            await until_reachable(lambda: one_try(self.slack).apps_connections_open(app_token=token),
                                  "Slack", self.settings.slack_api_url, stop)
        except Stopped:
            return False
        except SlackApiError as exc:
            error = exc.response.get("error")
            if error in REFUSED:
                raise StartupError(f"Slack refused SLACK_APP_TOKEN ({error}): it must be the app-level token "
                                   "(xapp-...) with the connections:write scope") from None
            raise
        self._socket_handler = SocketModeIngress(self.bolt, token, web_client=self.slack)
        # The SDK's connect retries for ever: a stop must not wait for it.
        if not await _until_done(self._socket_handler.connect_async(), stop):
            return False
        log.info("connected to Slack in Socket Mode")
        return True


T = TypeVar("T")
UNREACHABLE = (aiohttp.ClientError, OSError, asyncio.TimeoutError, StoreUnavailable)


class Stopped(Exception):
    """A stop was asked for while lumabot waited for Slack or its database."""


async def until_reachable(call: Callable[[], Awaitable[T]], what: str, where: str,
                          stop: asyncio.Event | None) -> T:
    """`call()` until it gets an answer: a network failure (DNS, refused, reset, timeout; a
    database that cannot be reached) is one log line and another try with backoff (1 s doubling
    to 30 s); Stopped if `stop` was set first."""
    delay = 1.0
    while True:
        try:
            return await call()
        except UNREACHABLE as exc:
            log.warning("cannot reach %s at %s (%s); trying again in %.0f s", what, where,
                        type(exc).__name__, delay)
        if await _stopped_within(stop, delay):
            raise Stopped()
        delay = min(delay * 2, 30.0)


async def _stopped_within(stop: asyncio.Event | None, seconds: float) -> bool:
    if stop is None:
        await asyncio.sleep(seconds)
        return False
    return await wait_event(stop, seconds)


async def _until_done(work: Awaitable[Any], stop: asyncio.Event | None) -> bool:
    """`work`, unless `stop` is set first (then it is cancelled): True if it finished."""
    task = asyncio.ensure_future(work)
    if stop is None:
        await task
        return True
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if task.done():
        task.result()
        return True
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return False


# The garbage collector's thresholds once lumabot is up (Python's are 700, 10, 10): see below.
COLLECTION_THRESHOLDS = (10_000, 10, 50)


def keep_out_of_collections() -> None:
    """What start built (modules, the app, its clients and pools: some 120,000 objects) lives as
    long as the process: frozen out of the garbage collector's way, so that a full collection,
    which stops the process, reads only what came later (over them it took some 60 ms).

    Then fewer, later collections. With Python's thresholds a young collection came every 700
    objects, in the middle of most requests: what those requests held (their payloads, tasks,
    futures) survived two of them and was counted as old, and a full collection followed about
    every few seconds under load, 50-100 ms each over what came after start (a thousand
    workspaces' clients, say), every ack waiting meanwhile. Cyclic garbage still goes at the
    next young collection; objects counted old are fewer, so full collections are rare."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*COLLECTION_THRESHOLDS)


async def run(settings: Settings, *, stop_event: asyncio.Event | None = None) -> None:
    """`lumabot run`: start, serve until stopped."""
    bot = LumaBot(settings)
    stop_event = stop_event or asyncio.Event()
    try:
        # /healthz is served from the first moment (503 until ready). In Socket Mode the
        # port only serves /healthz and /metrics (LUMABOT_METRICS_PORT, else PORT).
        if settings.socket_mode:
            await bot.serve_http(slack_events=False, port=settings.metrics_port or settings.port)
            if not await bot.start(stop_event) or not await bot.connect_socket_mode(stop_event):
                return
        else:
            await bot.serve_http()
            if not await bot.start(stop_event):
                return
        keep_out_of_collections()
        await stop_event.wait()
        log.info("stopping: finishing uploads in progress, the rest stays queued for the next start")
    finally:
        # Creates in flight are waited for up to Luma's request timeout: a create cut short is a
        # generation paid for and never seen.
        await bot.stop(drain=max(SHUTDOWN_GRACE, settings.luma_request_timeout + 1))
