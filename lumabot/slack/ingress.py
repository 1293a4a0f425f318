"""Slack's HTTP requests, before Bolt sees them: the signature is checked on the raw bytes
before anything is parsed, and a body that is not a Slack payload (not a JSON object, nested
past reason, not UTF-8) is refused with a short answer. Nothing a stranger sends reaches a
parser, and nothing anyone sends leaves more than one short log line."""

from __future__ import annotations

import logging
from typing import Mapping

from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.signature import SignatureVerifier

log = logging.getLogger("lumabot.slack")

UNSIGNED = "rejected a request without a valid Slack signature"


class _OneLine(logging.Filter):
    """Bolt and the Socket Mode client log what they cannot handle at length (a request's
    whole body and a suggested listener; a frame's traceback): one line of at most 200
    characters instead, with no traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info or record.levelno >= logging.WARNING:
            message = record.getMessage().split("\n", 1)[0]
            record.msg, record.args, record.exc_info, record.exc_text = message[:200], (), None, None
        return True


def quiet_logger(name: str) -> logging.Logger:
    """A logger for Bolt or the Socket Mode client (Bolt copies its filters to its own)."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, _OneLine) for f in logger.filters):
        logger.addFilter(_OneLine())
    return logger


class Refused(Exception):
    """The request is refused: `status` and a one-line `reason` (logged, and the body)."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


def bolt_request(body: bytes, query: str, headers: Mapping[str, str], *,
                 verifier: SignatureVerifier | None) -> AsyncBoltRequest:
    """The Bolt request for a raw HTTP request from Slack, or Refused. With `verifier` (HTTP
    mode), the signature is checked first, on the bytes as they came."""
    if verifier is not None and not _signed(verifier, body, headers):
        raise Refused(401, UNSIGNED)
    try:
        request = AsyncBoltRequest(body=body.decode("utf-8"), query=query, headers=dict(headers))
    except Exception:  # not UTF-8, not JSON, nested too deep, or not an object (Bolt reads .get)
        raise Refused(400, "rejected a signed request whose body is not a Slack payload") from None
    if not isinstance(request.body, dict):
        raise Refused(400, "rejected a signed request whose body is not a Slack payload")
    return request


def _signed(verifier: SignatureVerifier, body: bytes, headers: Mapping[str, str]) -> bool:
    timestamp, signature = headers.get("X-Slack-Request-Timestamp"), headers.get("X-Slack-Signature")
    if not timestamp or not signature or not timestamp.isdigit() or len(timestamp) > 12:
        return False
    return verifier.is_valid(body, timestamp, signature)


async def dispatch(app: AsyncApp, request: AsyncBoltRequest) -> BoltResponse:
    """Bolt's dispatch, with a last line of defence: a payload so odd that Bolt itself fails on
    it (an `actions` list that is empty, a `view` that is a string: Bolt reads them to match
    listeners and again to call the error handler) gets one short line and an empty 200."""
    try:
        return await app.async_dispatch(request)
    except Exception as exc:
        log.warning("could not handle a %s: %s", payload_kind(request.body), type(exc).__name__)
        return BoltResponse(status=200, body="")


def payload_kind(body: object) -> str:
    """What a payload is, for a log line: its type or command (at most 40 characters)."""
    kind = body.get("type") or body.get("command") if isinstance(body, dict) else None
    return str(kind)[:40] if kind else "request"
