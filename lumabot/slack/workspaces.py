"""The workspaces lumabot serves, and the Slack client that reaches each.

- One workspace (`OneWorkspace`, SLACK_BOT_TOKEN): the token's own workspace, found with
  auth.test at start. Every request is served with it (in Slack Connect channels too: the
  installing workspace is this one).
- Any number (`InstalledWorkspaces`, OAuth mode): each workspace that added lumabot through
  "Add to Slack" has its bot in the installation store (slack/installations.py). Its client is
  built on first use and kept; a token that is about to expire is refreshed first (token
  rotation); an uninstalled workspace is forgotten at once (`forget`) and then refused
  (`NotInstalled`).

Everything under slack/ that calls Slack for a job, a session or a person asks this for the
workspace's client: the notifier, file downloads, the admin directory.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol

import aiohttp
from slack_sdk.oauth.installation_store import Bot
from slack_sdk.web.async_client import AsyncWebClient

from ..secrets import SecretsLocked
from .admins import Installation

log = logging.getLogger(__name__)

ClientFactory = Callable[[str | None], AsyncWebClient]


class NotInstalled(Exception):
    """lumabot is not (or no longer) installed in that workspace."""


@dataclass
class Workspace:
    """lumabot in one workspace: how to reach it and who lumabot is there."""

    client: AsyncWebClient
    installation: Installation
    bot_user_id: str | None = None
    name: str | None = None                    # the workspace's (or organisation's) name
    url: str | None = None                     # https://<workspace>.slack.com/, for links
    scopes: frozenset[str] | None = None       # the bot token's scopes (None: Slack did not say)
    expires_at: float | None = None            # when the bot token expires (token rotation)

    @property
    def token(self) -> str:
        return str(self.client.token or "")

    def reads_messages_in(self, channel_id: str) -> bool:
        """Does lumabot get the messages of this conversation? Not in channels when it was
        installed with manifest.minimal.yml (no channels:history / groups:history)."""
        if self.scopes is None:
            return True  # Slack did not say: assume the full manifest
        needed = {"C": "channels:history", "G": "groups:history", "D": "im:history"}.get(channel_id[:1])
        return needed is None or needed in self.scopes


class Workspaces(Protocol):
    async def get(self, team_id: str) -> Workspace:
        """The workspace `team_id` (the installing one of a request or a job). NotInstalled."""
        ...


class OneWorkspace:
    """SLACK_BOT_TOKEN's workspace (single-token mode)."""

    def __init__(self, client: AsyncWebClient):
        self.workspace = Workspace(client=client, installation=Installation(None))

    async def connect(self) -> dict[str, Any]:
        """auth.test: who the bot token is (raises SlackApiError if Slack refuses it)."""
        auth = await one_try(self.workspace.client).auth_test()
        w = self.workspace
        w.bot_user_id = auth.get("user_id")
        w.installation = Installation(auth.get("team_id"), auth.get("enterprise_id") or None,
                                      bool(auth.get("is_enterprise_install")))
        w.url = auth.get("url")
        w.name = auth.get("team")
        w.scopes = scopes_of(auth.headers)
        return dict(auth.data) if isinstance(auth.data, dict) else {}

    @property
    def team_id(self) -> str:
        return self.workspace.installation.team_id or ""

    async def get(self, team_id: str) -> Workspace:
        return self.workspace


class BotStore(Protocol):
    """What InstalledWorkspaces needs of the installations (slack/installations.py)."""

    async def bot(self, team_id: str, enterprise_id: str | None = None) -> Bot | None: ...


class Organisations(Protocol):
    """Which Enterprise Grid organisation each workspace belongs to (store/tenants.py)."""

    async def remember(self, team_id: str, enterprise_id: str | None) -> None: ...
    async def enterprise_of(self, team_id: str) -> str | None: ...
    async def in_enterprise(self, enterprise_id: str) -> list[str]: ...


class InstalledWorkspaces:
    """The workspaces that installed lumabot with "Add to Slack" (OAuth mode). On Enterprise
    Grid a workspace is served by its own installation or by its organisation's org-wide one:
    the organisation of each workspace is learned from its requests (`seen`) and kept."""

    def __init__(self, bots: BotStore, client: ClientFactory, orgs: Organisations):
        self.bots = bots
        self.orgs = orgs
        self._client = client
        self._known: dict[str, Workspace] = {}
        self._org_of: dict[str, str | None] = {}   # team -> organisation, as remembered
        self._locks: dict[str, asyncio.Lock] = {}

    async def seen(self, team_id: str, enterprise_id: str | None) -> None:
        """A request from workspace `team_id` of organisation `enterprise_id`: remembered
        (written once) so that its jobs find its installation later, after a restart too."""
        if not team_id or self._org_of.get(team_id, "?") == enterprise_id:
            return
        await self.orgs.remember(team_id, enterprise_id)
        self._org_of[team_id] = enterprise_id

    async def _enterprise(self, team_id: str) -> str | None:
        if team_id not in self._org_of:
            self._org_of[team_id] = await self.orgs.enterprise_of(team_id)
        return self._org_of[team_id]

    async def get(self, team_id: str) -> Workspace:
        known = self._known.get(team_id)
        if known is not None and not _expiring(known):
            return known
        async with self._locks.setdefault(team_id, asyncio.Lock()):  # one lookup (and rotation) at once
            known = self._known.get(team_id)
            if known is not None and not _expiring(known):
                return known
            enterprise = await self._enterprise(team_id)
            try:
                bot = await self.bots.bot(team_id, enterprise)   # refreshed when it is about to expire
            except SecretsLocked as exc:
                log.error("cannot read the workspace's bot token: %s", exc, extra={"team": team_id})
                raise NotInstalled(team_id) from None
            if bot is None or not bot.bot_token:
                self._known.pop(team_id, None)
                raise NotInstalled(team_id)
            if known is not None:
                known.client.token = bot.bot_token   # rotated: the same client, its new token
                known.expires_at = _expiry(bot)
                known.scopes = frozenset(bot.bot_scopes or ()) or known.scopes
                return known
            workspace = Workspace(
                client=self._client(bot.bot_token),
                installation=Installation(bot.team_id or team_id, bot.enterprise_id or enterprise,
                                          bool(bot.is_enterprise_install)),
                bot_user_id=bot.bot_user_id, scopes=frozenset(bot.bot_scopes or ()) or None,
                name=bot.team_name or bot.enterprise_name, expires_at=_expiry(bot))
            workspace.url = await _team_url(workspace.client)
            self._known[team_id] = workspace
            return workspace

    def forget(self, team_id: str) -> None:
        """The workspace uninstalled lumabot (or revoked its token): never use its client again."""
        self._known.pop(team_id, None)

    def forget_all(self) -> None:
        """Look every workspace's bot up again when next needed (another replica changed one)."""
        self._known.clear()

    async def of_enterprise(self, enterprise_id: str) -> list[str]:
        """The workspaces of an organisation lumabot has served."""
        return await self.orgs.in_enterprise(enterprise_id)


# A token is refreshed this long before it expires, at the latest (the store refreshes earlier:
# LUMABOT_TOKEN_ROTATION_MINUTES).
_MARGIN = 60.0


def _expiring(workspace: Workspace) -> bool:
    return workspace.expires_at is not None and workspace.expires_at - _MARGIN <= time.time()


def _expiry(bot: Bot) -> float | None:
    expires = bot.bot_token_expires_at
    return float(expires) if expires is not None else None


async def _team_url(client: AsyncWebClient) -> str | None:
    """The workspace's address, for links (auth.test; None if Slack cannot say now)."""
    try:
        return (await client.auth_test()).get("url")
    except Exception as exc:   # links are a nicety: without them, messages say less
        log.info("auth.test for the workspace's address failed: %s", type(exc).__name__)
        return None


def scopes_of(headers: Any) -> frozenset[str] | None:
    """The scopes Slack lists in an answer's X-OAuth-Scopes header (None if it does not)."""
    headers = headers or {}
    scopes = headers.get("x-oauth-scopes") or headers.get("X-OAuth-Scopes")
    return None if scopes is None else frozenset(s.strip() for s in str(scopes).split(","))


def one_try(client: AsyncWebClient) -> AsyncWebClient:
    """The same client without the SDK's retries of a failed connection: for the checks at start,
    whose caller says "cannot reach Slack; trying again in N s" and tries again itself (with the
    SDK's retries each try took seconds more than the line said)."""
    from slack_sdk.http_retry.builtin_async_handlers import AsyncConnectionErrorRetryHandler

    return AsyncWebClient(token=client.token, base_url=client.base_url, timeout=client.timeout,
                          ssl=client.ssl, proxy=client.proxy, session=client.session,
                          trust_env_in_session=client.trust_env_in_session,
                          headers=dict(client.headers), logger=client.logger,
                          retry_handlers=[h for h in client.retry_handlers
                                          if not isinstance(h, AsyncConnectionErrorRetryHandler)])


def web_client(api_url: str, session: aiohttp.ClientSession | None = None) -> ClientFactory:
    """Slack Web API clients on one shared connection pool, with Slack's retry handlers."""
    from slack_sdk.http_retry.builtin_async_handlers import (
        AsyncConnectionErrorRetryHandler,
        AsyncRateLimitErrorRetryHandler,
        AsyncServerErrorRetryHandler,
    )

    def build(token: str | None) -> AsyncWebClient:
        return AsyncWebClient(
            token=token, base_url=api_url,
            session=session,  # shared: keeps connections to Slack alive between calls
            timeout=30,
            retry_handlers=[
                AsyncConnectionErrorRetryHandler(max_retry_count=2),
                AsyncRateLimitErrorRetryHandler(max_retry_count=3),
                AsyncServerErrorRetryHandler(max_retry_count=2),
            ])
    return build
