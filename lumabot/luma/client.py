"""The Luma client: wraps the official `luma-agents` SDK (AsyncLuma).

Retries are decided here, not by the SDK (max_retries=0): Luma has no idempotency key, so a
create request that may have reached the server is never sent again automatically. Errors are
translated into a few exceptions the rest of lumabot branches on.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import httpx
import luma_agents
from luma_agents import AsyncLuma

from ..jobs.failures import LUMA_STATUS_FAILURES
from ..metrics import Metrics
from ..tls import tls_context
from ..jobs.models import GenerationParams, ImageSource

log = logging.getLogger(__name__)


@dataclass
class RateInfo:
    """What the X-RateLimit-* headers of a create said (any may be missing)."""

    limit: int | None = None
    remaining: int | None = None
    reset: float | None = None  # Unix time


@dataclass
class Generation:
    id: str
    state: str
    failure_code: str | None = None
    failure_reason: str | None = None
    output_url: str | None = None


class LumaError(Exception):
    def __init__(self, message: str, *, status: int | None = None, request_id: str | None = None):
        super().__init__(message)
        self.status = status
        self.request_id = request_id


class LumaRateLimited(LumaError):
    """429: `kind` is "concurrency" (too many jobs in flight) or "rate" (requests per minute)."""

    def __init__(self, message: str, *, retry_after: float, kind: str, request_id: str | None = None):
        super().__init__(message, status=429, request_id=request_id)
        self.retry_after = retry_after
        self.kind = kind


class LumaRejected(LumaError):
    """A final answer for this request (4xx other than 404/429): `code` says which kind."""

    def __init__(self, message: str, *, code: str, status: int, request_id: str | None = None):
        super().__init__(message, status=status, request_id=request_id)
        self.code = code


class LumaNotFound(LumaError):
    pass


class LumaUnavailable(LumaError):
    """5xx, timeouts and connection errors. `maybe_created` is True when a create request may
    have reached Luma (the answer was lost): sending it again could pay for two images."""

    def __init__(self, message: str, *, maybe_created: bool = False, status: int | None = None,
                 request_id: str | None = None):
        super().__init__(message, status=status, request_id=request_id)
        self.maybe_created = maybe_created


# A generation id no account can own: Luma answers 404 to a key it accepts, 401/403 otherwise
# (how `lumabot check` and a workspace admin's new key are tried).
PROBE_GENERATION_ID = "00000000-0000-0000-0000-000000000000"

# Transport errors raised before the request could have been read by the server.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.WriteError,
             httpx.WriteTimeout)



def _parse_float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None and value.strip() != "" else None
    except ValueError:
        return None


def _rate_info(headers: httpx.Headers) -> RateInfo:
    def _int(name: str) -> int | None:
        v = _parse_float(headers.get(name))
        return int(v) if v is not None else None

    return RateInfo(limit=_int("x-ratelimit-limit"), remaining=_int("x-ratelimit-remaining"),
                    reset=_parse_float(headers.get("x-ratelimit-reset")))


def _detail(exc: luma_agents.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        return str(body["detail"])
    return str(exc.message)


def _translate(exc: Exception, *, creating: bool) -> LumaError:
    if isinstance(exc, luma_agents.APIStatusError):
        status = exc.status_code
        request_id = exc.response.headers.get("x-request-id")
        detail = _detail(exc)
        if status == 429:
            retry_after = _parse_float(exc.response.headers.get("retry-after"))
            kind = "concurrency" if "concurrent" in detail.lower() else "rate"
            if retry_after is None or retry_after < 0:
                retry_after = 60.0 if kind == "concurrency" else 5.0
            return LumaRateLimited(detail, retry_after=retry_after, kind=kind, request_id=request_id)
        if status == 404:
            return LumaNotFound(detail, status=status, request_id=request_id)
        if status >= 500 or status in (408, 409):
            return LumaUnavailable(f"Luma answered {status}: {detail}", status=status,
                                   request_id=request_id)
        code = LUMA_STATUS_FAILURES.get(status, "bad_request")
        return LumaRejected(detail, code=code, status=status, request_id=request_id)
    if isinstance(exc, luma_agents.APIConnectionError):
        cause = exc.__cause__
        maybe_created = creating and not isinstance(cause, _NOT_SENT)
        what = type(cause).__name__ if cause else type(exc).__name__
        return LumaUnavailable(f"Luma could not be reached ({what})", maybe_created=maybe_created)
    raise exc


def _image_ref(src: ImageSource) -> dict[str, Any]:
    if src.slack_file is not None and src.data is None:
        raise ValueError("a Slack file must be downloaded and prepared before it is sent")
    return src.model_dump(include={"generation_id", "data", "media_type"}, exclude_none=True)


def create_body(params: GenerationParams, user_id: str) -> dict[str, Any]:
    """The JSON body of POST /v1/generations for these parameters."""
    body: dict[str, Any] = {"prompt": params.prompt, "type": params.type, "model": params.model,
                  "user_id": user_id}
    if params.aspect_ratio and params.type == "image":
        body["aspect_ratio"] = params.aspect_ratio
    if params.style:
        body["style"] = params.style
    if params.output_format:
        body["output_format"] = params.output_format
    if params.source is not None:
        body["source"] = _image_ref(params.source)
    if params.image_refs:
        body["image_ref"] = [_image_ref(r) for r in params.image_refs]
    if params.web_search:
        body["web_search"] = True
    return body


# Requests to Luma at once. httpcore's pool scans its whole wait queue on every request, which
# turns quadratic with a thousand pending polls: the queue is kept here instead.
MAX_CONCURRENT_REQUESTS = 32


def _outcome(exc: LumaError) -> str:
    if isinstance(exc, LumaRateLimited):
        return f"429_{exc.kind}"
    if exc.status:
        return str(exc.status)
    return "unreachable"


class LumaClient:
    def __init__(self, *, api_key: str, base_url: str, timeout: float = 30.0,
                 metrics: Metrics | None = None):
        self._metrics = metrics
        self._gate = asyncio.Semaphore(MAX_CONCURRENT_REQUESTS)
        self._sdk = AsyncLuma(
            auth_token=api_key,
            base_url=base_url,
            max_retries=0,
            # Waiting for a free connection of our own pool is not Luma being slow: no pool
            # timeout, so a thousand pending polls queue instead of failing.
            timeout=httpx.Timeout(timeout, connect=min(5.0, timeout), pool=None),
            http_client=httpx.AsyncClient(
                trust_env=True, verify=tls_context(),
                limits=httpx.Limits(max_connections=MAX_CONCURRENT_REQUESTS,
                                    max_keepalive_connections=MAX_CONCURRENT_REQUESTS),
            ),
        )

    async def close(self) -> None:
        await self._sdk.close()

    async def create(self, params: GenerationParams, *, user_id: str) -> tuple[Generation, RateInfo]:
        """Submit one generation. Never retried here; see LumaUnavailable.maybe_created."""
        try:
            async with self._gate:
                raw = await self._sdk.generations.with_raw_response.create(**create_body(params, user_id))
                gen = await raw.parse()
        except luma_agents.LumaError as exc:
            err = _translate(exc, creating=True)
            self._count("create", _outcome(err))
            raise err from None
        self._count("create", "ok")
        log.debug("luma create ok", extra={"generation_id": gen.id,
                                          "luma_request_id": raw.headers.get("x-request-id")})
        return _generation(gen), _rate_info(raw.headers)

    async def get(self, generation_id: str) -> Generation:
        try:
            async with self._gate:
                gen = await self._sdk.generations.get(generation_id)
        except luma_agents.LumaError as exc:
            err = _translate(exc, creating=False)
            self._count("get", _outcome(err))
            raise err from None
        self._count("get", "ok")
        return _generation(gen)

    def _count(self, kind: str, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.luma_requests.labels(kind, outcome).inc()


def _generation(gen: Any) -> Generation:
    url = None
    for out in gen.output or []:
        if out.type == "image" and out.url:
            url = out.url
            break
    return Generation(id=gen.id, state=gen.state, failure_code=gen.failure_code,
                      failure_reason=gen.failure_reason, output_url=url)
