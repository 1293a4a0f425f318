"""OAuth mode: the workspaces that added lumabot with "Add to Slack", kept by slack_sdk's
SQLAlchemy installation and OAuth state stores on lumabot's own database (its engine, its tables:
store/schema.py, migration 0004), behind slack_sdk's in-memory cache.

Bolt's OAuth flow uses them for `/slack/install` and `/slack/oauth_redirect` and to authorize
every request (bot tokens only: `installation_store_bot_only`, so that a token refreshed for a
request and one refreshed for a delivery are the same row). Deliveries find their workspace's bot
through `bot()`, which refreshes a token that is about to expire the way Bolt does (token
rotation). An uninstall deletes the workspace's tokens at once (`uninstalled`).
"""

from __future__ import annotations

import copy
import logging
from typing import Any, Awaitable, Callable, TypeVar

from slack_bolt.authorization.async_authorize import AsyncInstallationStoreAuthorize
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_sdk.oauth.installation_store import Bot, Installation
from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.installation_store.async_cacheable_installation_store import AsyncCacheableInstallationStore
from slack_sdk.oauth.installation_store.sqlalchemy import AsyncSQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import AsyncSQLAlchemyOAuthStateStore
from slack_sdk.oauth.token_rotation.async_rotator import AsyncTokenRotator
from slack_sdk.web.async_client import AsyncWebClient

from ..scopes import REQUIRED_BOT_SCOPES
from ..secrets import Sealer
from . import install_pages
from ..config import INSTALL_PATH, OAUTH_REDIRECT_PATH, Settings

log = logging.getLogger(__name__)


_TOKENS = ("bot_token", "bot_refresh_token", "user_token", "user_refresh_token")
T = TypeVar("T", Installation, Bot)


class SealedInstallationStore(AsyncInstallationStore):
    """An installation store whose tokens are encrypted in the database (LUMABOT_ENCRYPTION_KEY):
    sealed on the way in, opened on the way out. Every save and delete is announced
    (`changed`: the other replicas drop their caches)."""

    def __init__(self, inner: AsyncInstallationStore, sealer: Sealer,
                 changed: Callable[[], Awaitable[None]] | None = None):
        self.inner = inner
        self.sealer = sealer
        self.changed = changed

    async def _announce(self) -> None:
        if self.changed is not None:
            try:
                await self.changed()
            except Exception as exc:   # the others' caches expire by themselves meanwhile
                log.warning("could not tell the other replicas of an installation change: %s", exc)

    @property
    def logger(self) -> logging.Logger:
        return log

    def _with(self, obj: T, change: Callable[[str | None], str | None]) -> T:
        copied = copy.copy(obj)
        for name in _TOKENS:
            if hasattr(copied, name):
                setattr(copied, name, change(getattr(copied, name)))
        return copied

    async def async_save(self, installation: Installation) -> None:
        await self.inner.async_save(self._with(installation, self.sealer.seal))
        await self._announce()

    async def async_save_bot(self, bot: Bot) -> None:
        await self.inner.async_save_bot(self._with(bot, self.sealer.seal))
        await self._announce()

    async def async_find_bot(self, *, enterprise_id: str | None, team_id: str | None,
                             is_enterprise_install: bool | None = False) -> Bot | None:
        bot = await self.inner.async_find_bot(enterprise_id=enterprise_id, team_id=team_id,
                                              is_enterprise_install=is_enterprise_install)
        return self._with(bot, self.sealer.open) if bot is not None else None

    async def async_find_installation(self, *, enterprise_id: str | None, team_id: str | None,
                                      user_id: str | None = None,
                                      is_enterprise_install: bool | None = False) -> Installation | None:
        found = await self.inner.async_find_installation(enterprise_id=enterprise_id, team_id=team_id,
                                                         user_id=user_id, is_enterprise_install=is_enterprise_install)
        return self._with(found, self.sealer.open) if found is not None else None

    async def async_delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        await self.inner.async_delete_bot(enterprise_id=enterprise_id, team_id=team_id)
        await self._announce()

    async def async_delete_installation(self, *, enterprise_id: str | None, team_id: str | None,
                                        user_id: str | None = None) -> None:
        await self.inner.async_delete_installation(enterprise_id=enterprise_id, team_id=team_id, user_id=user_id)
        await self._announce()

    async def async_delete_all(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        await self.inner.async_delete_all(enterprise_id=enterprise_id, team_id=team_id)
        await self._announce()


class Installations:
    def __init__(self, settings: Settings, client: AsyncWebClient,
                 changed: Callable[[], Awaitable[None]] | None = None):
        self.client_id = settings.slack_client_id or ""
        self.rotation_minutes = settings.token_rotation_minutes
        # The engine is the store's, known once the store is open (`open`).
        self._sql = AsyncSQLAlchemyInstallationStore(client_id=self.client_id, engine=None,  # type: ignore[arg-type]
                                                     logger=log)
        self.states = AsyncSQLAlchemyOAuthStateStore(expiration_seconds=settings.install_link_seconds,
                                                     engine=None, logger=log)  # type: ignore[arg-type]
        # Tokens encrypted in the database (with LUMABOT_ENCRYPTION_KEY), plain in this cache.
        self.store = AsyncCacheableInstallationStore(SealedInstallationStore(self._sql, settings.sealer(), changed))
        self.rotator = AsyncTokenRotator(client_id=self.client_id, client_secret=settings.client_secret(),
                                         client=client)
        self.settings = AsyncOAuthSettings(
            client_id=self.client_id, client_secret=settings.client_secret(),
            scopes=REQUIRED_BOT_SCOPES, user_scopes=[],
            redirect_uri=settings.redirect_uri(), install_path=INSTALL_PATH,
            redirect_uri_path=OAUTH_REDIRECT_PATH, authorization_url=settings.slack_authorize_url,
            installation_store=self.store, installation_store_bot_only=True,
            token_rotation_expiration_minutes=settings.token_rotation_minutes,
            state_store=self.states, state_expiration_seconds=settings.install_link_seconds,
            callback_options=install_pages.CALLBACKS, logger=log)

        redirect = settings.redirect_uri() or ""
        self.install_url = redirect.removesuffix(OAUTH_REDIRECT_PATH) + INSTALL_PATH
        # Each request's workspace: its bot from the (cached) store, a token about to expire
        # refreshed first; who the bot is (auth.test) asked once per token, not per request.
        self.authorize = AsyncInstallationStoreAuthorize(
            logger=log, installation_store=self.store, client_id=self.client_id,
            client_secret=settings.client_secret(), bot_only=True, cache_enabled=True, client=client,
            token_rotation_expiration_minutes=settings.token_rotation_minutes)

    def bolt_options(self) -> dict[str, Any]:
        """What Bolt's AsyncApp takes for OAuth mode."""
        return {"oauth_settings": self.settings, "installation_store": self.store,
                "installation_store_bot_only": True, "authorize": self.authorize}

    def open(self, engine: Any) -> None:
        """Use the store's SQLAlchemy AsyncEngine (once the store is open): slack_sdk's stores
        run their own statements on it."""
        self._sql.engine = engine
        self.states.engine = engine

    async def bot(self, team_id: str, enterprise_id: str | None = None) -> Bot | None:
        """The workspace's bot, as Bolt finds it: the workspace's own installation, else (on
        Enterprise Grid) its organisation's org-wide one; its token refreshed first when it
        expires within LUMABOT_TOKEN_ROTATION_MINUTES. None if lumabot is not installed there."""
        bot = await self.store.async_find_bot(enterprise_id=enterprise_id, team_id=team_id)
        if bot is None and enterprise_id is not None:
            bot = await self.store.async_find_bot(enterprise_id=enterprise_id, team_id=None,
                                                  is_enterprise_install=True)
        if bot is None or bot.bot_refresh_token is None:
            return bot
        refreshed = await self.rotator.perform_bot_token_rotation(
            bot=bot, minutes_before_expiration=self.rotation_minutes)
        if refreshed is None:
            return bot
        await self.store.async_save_bot(refreshed)
        log.info("refreshed the bot token of a workspace (token rotation)", extra={"team": team_id})
        return refreshed

    def forget_cached(self) -> None:
        """Drop every installation and authorization cached here (another replica changed one):
        they are read again from the database when next needed."""
        self.store.cached_bots.clear()
        self.store.cached_installations.clear()
        self.authorize.authorize_result_cache.clear()

    async def uninstalled(self, team_id: str | None, enterprise_id: str | None = None) -> None:
        """Delete the installation and its tokens (app_uninstalled, tokens_revoked): a
        workspace's, or with `team_id` None an organisation's org-wide one."""
        await self.store.async_delete_all(enterprise_id=enterprise_id, team_id=team_id)

