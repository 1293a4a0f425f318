"""Socket Mode: Bolt's aiohttp handler, with the same rule as HTTP (slack/ingress.py): a frame
lumabot cannot use is acknowledged with one short log line, never a traceback."""

from __future__ import annotations

import logging
from time import time
from typing import Any

from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.adapter.socket_mode.async_internals import send_async_response
from slack_bolt.adapter.socket_mode.internals import build_headers
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from .ingress import dispatch, quiet_logger

log = logging.getLogger("lumabot.slack")

# What apps.connections.open answers for an app token that will never work: final, not retried.
REFUSED = frozenset({"invalid_auth", "not_authed", "not_allowed_token_type", "token_revoked",
                     "account_inactive", "token_expired", "missing_scope"})


class SocketModeIngress(AsyncSocketModeHandler):
    def __init__(self, app: AsyncApp, app_token: str, **kw: Any):
        super().__init__(app, app_token, logger=quiet_logger("lumabot.socket_mode"), **kw)
        self.client.message_listeners.append(self._odd_envelope)

    async def _odd_envelope(self, client: Any, message: dict[str, Any], raw: str | None) -> None:
        """An envelope whose payload is not an object never becomes a request (the client
        cannot build one): acknowledge it here, so Slack does not send it again."""
        if message.get("envelope_id") and "payload" in message and not isinstance(message["payload"], dict):
            log.warning("acknowledged a Socket Mode envelope whose payload is not a Slack payload")
            await client.send_socket_mode_response(SocketModeResponse(envelope_id=message["envelope_id"]))

    async def handle(self, client: Any, req: SocketModeRequest) -> None:
        start = time()
        if not isinstance(req.payload, dict):
            return  # acknowledged by _odd_envelope
        try:
            request = AsyncBoltRequest(mode="socket_mode", body=req.payload, headers=build_headers(req))
            usable = isinstance(request.body, dict)
        except Exception:
            usable = False
        if not usable:
            log.warning("acknowledged a Socket Mode envelope whose payload is not a Slack payload")
            await client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))
            return
        await send_async_response(client, req, await dispatch(self.app, request), start)
