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

import logging
from typing import Any

from slack_bolt.authorization.async_authorize import AsyncInstallationStoreAuthorize
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_sdk.oauth.installation_store import Bot
from slack_sdk.oauth.installation_store.async_cacheable_installation_store import AsyncCacheableInstallationStore
from slack_sdk.oauth.installation_store.sqlalchemy import AsyncSQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import AsyncSQLAlchemyOAuthStateStore
from slack_sdk.oauth.token_rotation.async_rotator import AsyncTokenRotator
from slack_sdk.web.async_client import AsyncWebClient

from ..scopes import REQUIRED_BOT_SCOPES
from . import install_pages
from ..config import INSTALL_PATH, OAUTH_REDIRECT_PATH, Settings

log = logging.getLogger(__name__)


class Installations:
    def __init__(self, settings: Settings, client: AsyncWebClient):
        self.client_id = settings.slack_client_id or ""
        self.rotation_minutes = settings.token_rotation_minutes
        # The engine is the store's, known once the store is open (`open`).
        self._sql = AsyncSQLAlchemyInstallationStore(client_id=self.client_id, engine=None,  # type: ignore[arg-type]
                                                     logger=log)
        self.states = AsyncSQLAlchemyOAuthStateStore(expiration_seconds=settings.install_link_seconds,
                                                     engine=None, logger=log)  # type: ignore[arg-type]
        self.store = AsyncCacheableInstallationStore(self._sql)
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

    async def bot(self, team_id: str) -> Bot | None:
        """The workspace's bot, its token refreshed first when it expires within
        LUMABOT_TOKEN_ROTATION_MINUTES; None if lumabot is not installed there."""
        bot = await self.store.async_find_bot(enterprise_id=None, team_id=team_id)
        if bot is None or bot.bot_refresh_token is None:
            return bot
        refreshed = await self.rotator.perform_bot_token_rotation(
            bot=bot, minutes_before_expiration=self.rotation_minutes)
        if refreshed is None:
            return bot
        await self.store.async_save_bot(refreshed)
        log.info("refreshed the bot token of a workspace (token rotation)", extra={"team": team_id})
        return refreshed

    async def uninstalled(self, team_id: str, enterprise_id: str | None = None) -> None:
        """Delete the workspace's installation and tokens (app_uninstalled, tokens_revoked)."""
        await self.store.async_delete_all(enterprise_id=enterprise_id, team_id=team_id)

