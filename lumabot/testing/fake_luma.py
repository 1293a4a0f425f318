"""A fake of Luma's Agents image API, for end-to-end tests, benchmarks and an offline demo.

``FakeLuma`` is an aiohttp server on 127.0.0.1 that speaks the wire protocol described in
``luma-api.md`` (``POST /v1/generations``, ``GET /v1/generations/{id}``, presigned output
URLs), so that the official SDK (``luma_agents.AsyncLuma``) and plain httpx can be pointed at
it.  Besides the happy path it can script failures: asynchronous ``failed`` generations
(:meth:`FakeLuma.script`), synchronous error answers (:meth:`FakeLuma.fail_next`), lost answers
(:meth:`FakeLuma.drop_next`), slow answers (:meth:`FakeLuma.stall_next`), held generations
(:class:`Outcome` ``hold=True`` + :meth:`FakeLuma.release`), expired URLs
(:meth:`FakeLuma.expire_urls`) and both account limits (``rpm_limit``, ``concurrency_limit``).
More Luma accounts (a workspace's own key) come with :meth:`FakeLuma.add_key`: each sees only
its own generations (another's id answers 404, as Luma's per-account ids do) and has its own
concurrency limit.

Usage::

    fake = FakeLuma(latency=0.02)
    await fake.start()
    client = AsyncLuma(auth_token=fake.api_key, base_url=fake.base_url, max_retries=0)
    ...
    await fake.stop()

or ``async with FakeLuma() as fake: ...``.  ``python -m lumabot.testing.fake_luma --port 8765``
runs one in the foreground (offline demo).

Timing is measured with ``time.monotonic()``; the state of a generation is computed from the
clock on every GET (``queued`` for the first 10 % of its latency, then ``processing``, then
terminal at ``created_at + latency``), so no background task is needed and thousands of
generations cost nothing while they wait.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import hashlib
import heapq
import http
import io
import json
import math
import re
import secrets
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from aiohttp import web
from PIL import Image

__all__ = [
    "ASPECT_RATIOS",
    "FakeGeneration",
    "FakeLuma",
    "Outcome",
    "RecordedRequest",
    "color_for_prompt",
    "size_for_ratio",
]

# --------------------------------------------------------------------------------------------
# Contract constants (luma-api.md)
# --------------------------------------------------------------------------------------------

API_VERSION = "2025-06-01"
ASPECT_RATIOS: dict[str, tuple[int, int]] = {
    "3:1": (3, 1),
    "2:1": (2, 1),
    "16:9": (16, 9),
    "3:2": (3, 2),
    "1:1": (1, 1),
    "2:3": (2, 3),
    "9:16": (9, 16),
    "1:2": (1, 2),
    "1:3": (1, 3),
}
PORTRAIT_RATIOS = ("2:3", "9:16", "1:2", "1:3")
MODELS = ("uni-1", "uni-1-max")
TYPES = ("image", "image_edit")
STYLES = ("auto", "manga")
OUTPUT_FORMATS = ("png", "jpeg")
MAX_PROMPT_CHARS = 6000
MAX_USER_ID_CHARS = 256
MAX_IMAGE_BYTES = 50 * 1024 * 1024
MAX_IMAGE_REFS = {"image": 9, "image_edit": 8}
IMAGE_MEDIA_TYPES = ("image/jpeg", "image/jpg", "image/png", "image/webp", "image/gif")
REF_KEYS = ("url", "data", "generation_id", "file_id")
TERMINAL = ("completed", "failed")
QUEUED_FRACTION = 0.1
_MAX_BODY_BYTES = 96 * 1024 * 1024  # room for a 50 MB image in base64, so *we* answer the 413

_DEFAULT_FAILURE_REASONS = {
    "content_moderated": "The request was blocked by content moderation",
    "generation_failed": "The generation failed",
    "budget_exhausted": "The account has no remaining budget",
    "output_not_found": "The output could not be found",
    "image_too_large": "An input image is too large",
    "unsupported_format": "An input image has an unsupported format",
    "corrupt_input": "An input image could not be decoded",
    "invalid_request": "The request was invalid",
    "rate_limited": "The upstream model is rate limited",
}

_OUTPUT_PATH = re.compile(r"/outputs/([0-9a-fA-F-]{36})\.(png|jpg)")


def _decode_data(value: str) -> bytes:
    """An ImageRef's `data`: base64, line breaks allowed. binascii.Error if it is not."""
    return base64.b64decode(value.replace("\n", "").replace("\r", ""), validate=True)


def color_for_prompt(prompt: str) -> tuple[int, int, int]:
    """The deterministic RGB colour of every output image made for ``prompt``."""
    digest = hashlib.sha256(prompt.encode("utf-8")).digest()
    return digest[0], digest[1], digest[2]


def size_for_ratio(width: int, height: int, long_side: int) -> tuple[int, int]:
    """Scale a ``width:height`` shape so that its long side is ``long_side`` pixels."""
    if width >= height:
        return long_side, max(1, round(long_side * height / width))
    return max(1, round(long_side * width / height)), long_side


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


# --------------------------------------------------------------------------------------------
# Public records
# --------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """How one future generation will behave (see :meth:`FakeLuma.script`)."""

    state: str = "completed"  # "completed" or "failed"
    failure_code: str | None = None  # e.g. "content_moderated"; failed default: generation_failed
    failure_reason: str | None = None
    latency: float | None = None  # seconds from create to terminal; None = FakeLuma.latency(_fn)
    hold: bool = False  # stays "processing" until FakeLuma.release(id) is called


@dataclass
class FakeAccount:
    """Another Luma account's limits (FakeLuma.add_key) and its recent creates."""

    concurrency_limit: int | None = None
    rpm_limit: int | None = None
    window: deque[float] = field(default_factory=deque)


@dataclass
class RecordedRequest:
    method: str
    path: str  # without the query string (see ``query``)
    headers: dict[str, str]  # lower-case header names
    body: dict | None  # the JSON body when it was an object
    status: int  # the answered status; 0 while in progress or when no answer was sent (dropped)
    at: float  # time.monotonic() on arrival
    query: str = ""  # raw query string
    request_id: str = ""  # the X-Request-Id answered
    generation_id: str | None = None  # created (POST) or asked for (GET / download)


@dataclass
class FakeGeneration:
    id: str
    body: dict
    model: str
    type: str
    outcome: Outcome
    created_at: float  # time.monotonic()
    created_at_iso: str
    latency: float
    completes_at: float | None  # monotonic time it turns terminal; None while held
    output: bytes | None  # the image served once completed (None for failed outcomes)
    output_media_type: str  # "image/png" or "image/jpeg"
    width: int
    height: int
    prompt: str = ""
    aspect_ratio: str | None = None  # effective ratio for type=image, None for image_edit
    output_format: str = "png"
    held: bool = False
    get_count: int = 0
    api_key: str = ""  # the key (Luma account) that created it: only that key can read it
    answered: bool = True  # False when the 201 was lost (drop_next(after_create=True))

    @property
    def failure_code(self) -> str | None:
        if self.outcome.state != "failed":
            return None
        return self.outcome.failure_code or "generation_failed"

    @property
    def failure_reason(self) -> str | None:
        if self.outcome.state != "failed":
            return None
        code = self.failure_code or "generation_failed"
        return self.outcome.failure_reason or _DEFAULT_FAILURE_REASONS.get(code, "Generation failed")

    def state_at(self, now: float) -> str:
        if self.completes_at is not None and now >= self.completes_at:
            return self.outcome.state
        if now < self.created_at + QUEUED_FRACTION * self.latency:
            return "queued"
        return "processing"

    @property
    def state(self) -> str:
        return self.state_at(time.monotonic())

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL


# --------------------------------------------------------------------------------------------
# Internals
# --------------------------------------------------------------------------------------------


class _ApiError(Exception):
    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}


class _Drop(Exception):
    """Close the connection without an HTTP answer."""


@dataclass
class _Injection:
    kind: str  # "fail" | "drop" | "stall"
    status: int = 0
    detail: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    after_create: bool = False
    seconds: float = 0.0


_METHODS = {"POST": "POST", "CREATE": "POST", "GET": "GET", "DOWNLOAD": "DOWNLOAD"}


def _norm_method(method: str) -> str:
    try:
        return _METHODS[method.upper()]
    except KeyError:
        raise ValueError(f"method must be 'POST', 'GET' or 'DOWNLOAD', not {method!r}") from None


def _s3_denied(message: str, request_id: str) -> web.Response:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>AccessDenied</Code><Message>{message}</Message>"
        f"<RequestId>{request_id}</RequestId></Error>"
    )
    return web.Response(status=403, text=body, content_type="application/xml")


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------


class FakeLuma:
    """A fake Luma Agents API server on 127.0.0.1 (see the module docstring)."""

    def __init__(
        self,
        *,
        api_key: str = "luma-api-test-key",
        latency: float = 0.05,
        latency_fn: Callable[[], float] | None = None,
        latency_of_key: Callable[[str], float] | None = None,
        rpm_limit: int | None = None,
        concurrency_limit: int | None = None,
        rate_headers: bool = True,
        image_long_side: int = 64,
        url_ttl: float = 3600.0,
        rpm_window: float = 60.0,
        concurrency_retry_after: int = 60,
        retry_after_ms: bool = False,
        record_requests: bool = True,
        illustrate: bool = False,
    ) -> None:
        self.api_key = api_key
        self.latency = latency
        self.latency_fn = latency_fn
        # (each account its own draws: the same workload in every account, whatever the order)
        self.latency_of_key = latency_of_key
        self.rpm_limit = rpm_limit
        self.concurrency_limit = concurrency_limit
        self.rate_headers = rate_headers
        self.image_long_side = image_long_side
        self.url_ttl = url_ttl
        self.rpm_window = rpm_window
        self.concurrency_retry_after = concurrency_retry_after
        self.retry_after_ms = retry_after_ms  # also send the SDK's precise `retry-after-ms`
        self.record_requests = record_requests
        # Draw pictures that show what happened (the demo) instead of a flat colour per prompt.
        self.illustrate = illustrate

        # Other Luma accounts (a workspace's own key): key -> its limits. Each account sees only
        # its own generations and has its own limits.
        self.accounts: dict[str, FakeAccount] = {}

        self.base_url = ""
        self.root_url = ""
        self.port = 0
        self.requests: list[RecordedRequest] = []
        self.generations: dict[str, FakeGeneration] = {}
        self.stats: Counter[str] = Counter()
        # Bytes a `url` ImageRef resolves to (anything else that is not one of our own output
        # URLs answers 422 "URL fetch failed", as Luma cannot reach private hosts).
        self.url_images: dict[str, bytes] = {}

        self._create_bodies: list[dict] = []
        self._script: deque[Outcome] = deque()
        self._injections: dict[str, deque[_Injection]] = {
            "POST": deque(),
            "GET": deque(),
            "DOWNLOAD": deque(),
        }
        self._window: deque[float] = deque()  # monotonic times of accepted creates
        self._active: set[str] = set()  # non-terminal generation ids (lazily reaped)
        self._heap: list[tuple[float, str]] = []  # (completes_at, id) of non-held actives
        self._sigs: dict[str, tuple[str, float, int]] = {}  # sig -> (id, expires mono, unix)
        self._expired_sigs: set[str] = set()
        self._render_cache: dict[tuple, bytes] = {}
        self._runner: web.AppRunner | None = None

    # ---------------------------------------------------------------- lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        app = web.Application(client_max_size=_MAX_BODY_BYTES)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=0.2
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self.root_url = f"http://{host}:{self.port}"
        self.base_url = f"{self.root_url}/v1"

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> FakeLuma:
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()

    # ---------------------------------------------------------------- test controls

    @property
    def creates(self) -> list[dict]:
        """JSON bodies of every accepted create, in order (including ones whose 201 was lost
        through ``drop_next("POST", after_create=True)`` or a stall the client gave up on)."""
        return list(self._create_bodies)

    def output_bytes(self, generation_id: str) -> bytes:
        gen = self.generations[generation_id]
        if gen.output is None:
            raise ValueError(f"generation {generation_id} has no output (outcome {gen.outcome.state})")
        return gen.output

    def script(self, *outcomes: Outcome) -> None:
        """Queue outcomes consumed in order by the next created generations."""
        for outcome in outcomes:
            if outcome.state not in TERMINAL:
                raise ValueError(f"Outcome.state must be 'completed' or 'failed', not {outcome.state!r}")
        self._script.extend(outcomes)

    def fail_next(
        self,
        method: str,
        status: int,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        count: int = 1,
    ) -> None:
        """The next ``count`` requests of ``method`` ("POST" create, "GET" generation get,
        "DOWNLOAD" output download) answer ``status`` with ``{"detail": detail}`` and
        ``headers``, without creating anything.  ``detail`` defaults to the status phrase."""
        if detail is None:
            try:
                detail = http.HTTPStatus(status).phrase
            except ValueError:
                detail = "Error"
        inj = _Injection("fail", status=status, detail=detail, headers=dict(headers or {}))
        self._injections[_norm_method(method)].extend(inj for _ in range(count))

    def drop_next(self, method: str, *, count: int = 1, after_create: bool = False) -> None:
        """Close the connection of the next ``count`` requests of ``method`` without an HTTP
        answer.  ``after_create=True`` (POST): the request is processed first (the generation
        is created, counted and will complete) and only the answer is lost."""
        m = _norm_method(method)
        if after_create and m != "POST":
            raise ValueError("after_create only applies to POST")
        self._injections[m].extend(_Injection("drop", after_create=after_create) for _ in range(count))

    def stall_next(
        self, method: str, seconds: float, *, count: int = 1, after_create: bool = False
    ) -> None:
        """Delay the answer of the next ``count`` requests of ``method`` by ``seconds``.

        Default: the delay comes *before* the request is processed, and if the client has hung
        up by then (its timeout fired) nothing is processed, so nothing is created.
        ``after_create=True`` (POST): the generation is created at once and only the answer is
        late: the "timed out but accepted" case."""
        m = _norm_method(method)
        if after_create and m != "POST":
            raise ValueError("after_create only applies to POST")
        self._injections[m].extend(
            _Injection("stall", seconds=seconds, after_create=after_create) for _ in range(count)
        )

    def add_key(self, api_key: str, *, concurrency_limit: int | None = None, rpm_limit: int | None = None) -> None:
        """Another Luma account, reached with `api_key`, with its own limits (the requests-per-
        minute window is `rpm_window` long, as the main account's)."""
        self.accounts[api_key] = FakeAccount(concurrency_limit, rpm_limit)

    def created_with(self, api_key: str) -> list[FakeGeneration]:
        """The generations created with this key, in order."""
        return [g for g in self.generations.values() if g.api_key == api_key]

    def clear_injections(self) -> None:
        for q in self._injections.values():
            q.clear()

    def release(self, generation_id: str) -> None:
        """A held (or still running) generation turns terminal now, per its Outcome."""
        gen = self.generations[generation_id]
        now = time.monotonic()
        if gen.state_at(now) in TERMINAL:
            return
        gen.held = False
        gen.completes_at = now
        self._active.discard(generation_id)

    def release_all(self) -> None:
        for gid in list(self._active):
            self.release(gid)

    def expire_urls(self) -> None:
        """Every output URL minted so far answers 403 from now on."""
        self._expired_sigs.update(self._sigs)
        self._sigs.clear()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() >= deadline:
                raise AssertionError(f"condition not met within {timeout} s: {predicate!r}")
            await asyncio.sleep(0.005)

    def in_flight(self) -> int:
        """Non-terminal generations right now."""
        self._reap(time.monotonic())
        return len(self._active)

    # ---------------------------------------------------------------- helpers

    def _reap(self, now: float) -> None:
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, gid = heapq.heappop(heap)
            gen = self.generations.get(gid)
            # A released generation may have been re-timed; only drop it when it is terminal.
            if gen is not None and gen.completes_at is not None and gen.completes_at <= now:
                self._active.discard(gid)

    def _render(self, prompt: str, width: int, height: int, fmt: str) -> bytes:
        color = color_for_prompt(prompt)
        key = (width, height, color, fmt)
        data = self._render_cache.get(key)
        if data is None:
            buf = io.BytesIO()
            img = Image.new("RGB", (width, height), color)
            if fmt == "jpeg":
                img.save(buf, format="JPEG", quality=90)
            else:
                img.save(buf, format="PNG")
            data = buf.getvalue()
            if len(self._render_cache) >= 4096:
                self._render_cache.clear()
            self._render_cache[key] = data
        return data

    def _illustrate(self, body: dict, spec: dict, now: float) -> bytes:
        from .illustrate import draw_edit, draw_image

        if spec["type"] == "image":
            return draw_image(spec["prompt"], spec["width"], spec["height"], spec["format"])
        return draw_edit(self._ref_bytes(body["source"], now), spec["prompt"],
                         spec["width"], spec["height"], spec["format"])

    def _ref_bytes(self, ref: dict, now: float) -> bytes:
        """The image a validated ImageRef points to."""
        gen: FakeGeneration | None
        if ref.get("generation_id"):
            gen = self.generations[ref["generation_id"]]
        elif ref.get("data"):
            return _decode_data(ref["data"])
        elif ref["url"] in self.url_images:
            return self.url_images[ref["url"]]
        else:
            gen = self._resolve_own_url(ref["url"], now)
        assert gen is not None and gen.output is not None
        return gen.output

    def _mint_url(self, gen: FakeGeneration, now: float) -> str:
        sig = secrets.token_urlsafe(18)
        expires_unix = int(time.time() + self.url_ttl)
        self._sigs[sig] = (gen.id, now + self.url_ttl, expires_unix)
        ext = "jpg" if gen.output_format == "jpeg" else "png"
        return f"{self.root_url}/outputs/{gen.id}.{ext}?sig={sig}&expires={expires_unix}"

    def _generation_json(self, gen: FakeGeneration, state: str, now: float) -> dict:
        failed = state == "failed"
        output = None
        if state == "completed":
            output = [{"type": "image", "url": self._mint_url(gen, now)}]
        return {
            "id": gen.id,
            "created_at": gen.created_at_iso,
            "model": gen.model,
            "state": state,
            "type": gen.type,
            "failure_code": gen.failure_code if failed else None,
            "failure_reason": gen.failure_reason if failed else None,
            "output": output,
        }

    @staticmethod
    def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> web.Response:
        return web.Response(
            status=status,
            body=json.dumps(payload).encode(),
            content_type="application/json",
            headers=headers,
        )

    # ---------------------------------------------------------------- request handling

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        request_id = f"req_{uuid.uuid4().hex}"
        rec = RecordedRequest(
            method=request.method,
            path=request.path,
            headers={k.lower(): v for k, v in request.headers.items()},
            body=None,
            status=0,
            at=time.monotonic(),
            query=request.query_string,
            request_id=request_id,
        )
        if self.record_requests:
            self.requests.append(rec)
        try:
            resp = await self._dispatch(request, rec)
        except _ApiError as err:
            resp = self._json(err.status, {"detail": err.detail}, err.headers)
        except _Drop:
            rec.status = 0
            self.stats["dropped"] += 1
            request.protocol.force_close()  # closes the transport: no HTTP answer at all
            return web.Response(status=204)  # never written
        rec.status = resp.status
        resp.headers["X-Request-Id"] = request_id
        resp.headers["X-API-Version"] = API_VERSION
        return resp

    async def _dispatch(self, request: web.Request, rec: RecordedRequest) -> web.StreamResponse:
        path = request.path
        method = request.method
        if path.startswith("/outputs/"):
            if method not in ("GET", "HEAD"):
                raise _ApiError(405, "Method Not Allowed")
            return await self._download(request, rec)
        if path == "/v1" or path.startswith("/v1/"):
            auth = request.headers.get("Authorization", "")
            key = auth[len("Bearer "):] if auth.startswith("Bearer ") else ""
            if key != self.api_key and key not in self.accounts:
                raise _ApiError(401, "Invalid API key")
            if path.rstrip("/") == "/v1/generations":
                if method != "POST":
                    raise _ApiError(405, "Method Not Allowed")
                return await self._create(request, rec, key)
            parts = path.split("/")  # ["", "v1", "generations", id]
            if len(parts) == 4 and parts[2] == "generations" and parts[3]:
                if method != "GET":
                    raise _ApiError(405, "Method Not Allowed")
                return await self._get(request, rec, parts[3], key)
        raise _ApiError(404, "Not Found")

    def _take(self, method: str) -> _Injection | None:
        q = self._injections[method]
        return q.popleft() if q else None

    async def _before(self, request: web.Request, inj: _Injection | None) -> None:
        """Apply the part of an injection that happens before processing."""
        if inj is None or inj.after_create:
            return
        if inj.kind == "fail":
            self.stats["injected"] += 1
            raise _ApiError(inj.status, inj.detail, inj.headers)
        if inj.kind == "drop":
            raise _Drop()
        if inj.kind == "stall":
            self.stats["stalled"] += 1
            await asyncio.sleep(inj.seconds)
            transport = request.transport
            if transport is None or transport.is_closing():
                raise _Drop()  # the client gave up: nothing is processed

    async def _after(self, inj: _Injection | None) -> None:
        """Apply the part of an injection that happens after processing."""
        if inj is None or not inj.after_create:
            return
        if inj.kind == "drop":
            raise _Drop()
        if inj.kind == "stall":
            self.stats["stalled"] += 1
            await asyncio.sleep(inj.seconds)

    # ---------------------------------------------------------------- POST /v1/generations

    async def _create(self, request: web.Request, rec: RecordedRequest, key: str) -> web.StreamResponse:
        self.stats["posts"] += 1
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise _ApiError(413, "Request body too large") from None
        body: Any = None
        bad_json: str | None = None
        try:
            body = json.loads(raw) if raw else None
        except (ValueError, UnicodeDecodeError) as exc:
            bad_json = f"Invalid JSON body: {exc}"
        if isinstance(body, dict):
            rec.body = body

        inj = self._take("POST")
        await self._before(request, inj)
        try:
            if bad_json is not None:
                raise _ApiError(400, bad_json)
            if body is None:
                raise _ApiError(400, "body: a JSON object is required")
            if not isinstance(body, dict):
                raise _ApiError(400, "body: must be a JSON object")

            now = time.monotonic()
            self._check_limits(now, key)
            spec = self._validate(body, now)
            gen = self._new_generation(body, spec, now, key)
        except _ApiError:
            if inj is not None and inj.after_create and inj.kind == "drop":
                raise _Drop() from None
            raise
        rec.generation_id = gen.id
        headers = (self._rate_headers(now, key=key) if self._limits(key)[1] is not None and self.rate_headers
                   else {})
        payload = self._generation_json(gen, "queued", now)
        if inj is not None and inj.after_create:
            gen.answered = inj.kind != "drop"
        await self._after(inj)
        self.stats["201"] += 1
        return self._json(201, payload, headers)

    def _limits(self, key: str) -> tuple[int | None, int | None, deque[float]]:
        """(concurrency limit, requests-per-minute limit, recent creates) of the key's account."""
        account = self.accounts.get(key)
        if account is None:
            return self.concurrency_limit, self.rpm_limit, self._window
        return account.concurrency_limit, account.rpm_limit, account.window

    def _rate_headers(self, now: float, remaining: int | None = None, *, key: str | None = None) -> dict[str, str]:
        _, rpm_limit, window = self._limits(key or self.api_key)
        assert rpm_limit is not None
        if remaining is None:
            remaining = max(0, rpm_limit - len(window))
        if window:
            reset = time.time() + max(0.0, window[0] + self.rpm_window - now)
        else:
            reset = time.time()
        return {
            "X-RateLimit-Limit": str(rpm_limit),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": str(math.ceil(reset)),
        }

    def _check_limits(self, now: float, key: str) -> None:
        concurrency_limit, rpm_limit, window = self._limits(key)
        cutoff = now - self.rpm_window
        while window and window[0] <= cutoff:
            window.popleft()
        if rpm_limit is not None:
            if len(window) >= rpm_limit:
                wait = window[0] + self.rpm_window - now if window else self.rpm_window
                headers = {"Retry-After": str(max(1, math.ceil(wait)))}
                if self.retry_after_ms:
                    headers["Retry-After-Ms"] = str(max(1, math.ceil(wait * 1000)))
                if self.rate_headers:
                    headers.update(self._rate_headers(now, remaining=0, key=key))
                self.stats["429"] += 1
                self.stats["rate"] += 1
                raise _ApiError(429, "Rate limit exceeded", headers)
        if concurrency_limit is not None:
            self._reap(now)
            active = len(self._active)
            if self.accounts:  # only this account's generations count
                active = sum(1 for gid in self._active if self.generations[gid].api_key == key)
            if active >= concurrency_limit:
                headers = {"Retry-After": str(self.concurrency_retry_after)}
                if self.retry_after_ms:
                    headers["Retry-After-Ms"] = str(self.concurrency_retry_after * 1000)
                self.stats["429"] += 1
                self.stats["concurrency"] += 1
                raise _ApiError(429, "Too many concurrent jobs", headers)

    def _validate(self, body: dict, now: float) -> dict:
        prompt = body.get("prompt")
        if prompt is None:
            raise _ApiError(400, "prompt: field required")
        if not isinstance(prompt, str):
            raise _ApiError(400, "prompt: must be a string")
        if len(prompt) < 1:
            raise _ApiError(400, "prompt: must be at least 1 character")
        if len(prompt) > MAX_PROMPT_CHARS:
            raise _ApiError(400, f"prompt: must be at most {MAX_PROMPT_CHARS} characters")

        gtype = body.get("type")
        if gtype is None:
            gtype = "image"
        if gtype not in TYPES:
            raise _ApiError(400, f"type: unsupported type {gtype!r}; expected one of image, image_edit")

        model = body.get("model")
        if model is None:
            model = "uni-1"
        if model not in MODELS:
            raise _ApiError(400, f"Unknown model: {model}")

        style = body.get("style")
        if style is None:
            style = "auto"
        if style not in STYLES:
            raise _ApiError(400, f"style: must be one of auto, manga, not {style!r}")

        ratio: str | None = None
        if gtype == "image":
            ratio = body.get("aspect_ratio")
            if ratio is None:
                ratio = PORTRAIT_RATIOS[0] if style == "manga" else "1:1"
            if not isinstance(ratio, str) or ratio not in ASPECT_RATIOS:
                raise _ApiError(
                    400,
                    f"aspect_ratio: {ratio!r} is not supported for {model}; expected one of "
                    + ", ".join(ASPECT_RATIOS),
                )
            if style == "manga" and ratio not in PORTRAIT_RATIOS:
                raise _ApiError(
                    400,
                    f"style: manga needs a portrait aspect_ratio ({', '.join(PORTRAIT_RATIOS)}), "
                    f"not {ratio}",
                )

        fmt = body.get("output_format")
        if fmt is None:
            fmt = "png"  # "null lets the model pick": the fake picks png
        if fmt not in OUTPUT_FORMATS:
            raise _ApiError(400, f"output_format: must be png, jpeg or null, not {fmt!r}")

        user_id = body.get("user_id")
        if user_id is not None:
            if not isinstance(user_id, str):
                raise _ApiError(400, "user_id: must be a string")
            if len(user_id) > MAX_USER_ID_CHARS:
                raise _ApiError(400, f"user_id: must be at most {MAX_USER_ID_CHARS} characters")

        web_search = body.get("web_search")
        if web_search is not None and not isinstance(web_search, bool):
            raise _ApiError(400, "web_search: must be a boolean")

        source = body.get("source")
        source_size: tuple[int, int] | None = None
        if gtype == "image":
            if source is not None:
                raise _ApiError(400, "source: not allowed for type image (use type image_edit)")
        else:
            if source is None:
                raise _ApiError(400, "source: required for type image_edit")
            source_size = self._check_ref(source, "source", now)

        refs = body.get("image_ref")
        if refs is not None:
            if not isinstance(refs, list):
                raise _ApiError(400, "image_ref: must be a list")
            limit = MAX_IMAGE_REFS[gtype]
            if len(refs) > limit:
                raise _ApiError(400, f"image_ref: at most {limit} references for type {gtype}, got {len(refs)}")
            for i, ref in enumerate(refs):
                self._check_ref(ref, f"image_ref[{i}]", now)

        long_side = self.image_long_side
        if gtype == "image":
            assert ratio is not None
            width, height = size_for_ratio(*ASPECT_RATIOS[ratio], long_side)
        else:
            assert source_size is not None
            width, height = size_for_ratio(*source_size, long_side)
        return {
            "prompt": prompt,
            "type": gtype,
            "model": model,
            "ratio": ratio,
            "format": fmt,
            "width": width,
            "height": height,
        }

    def _check_ref(self, ref: Any, name: str, now: float) -> tuple[int, int]:
        """Validate one ImageRef; returns the (width, height) of the image it points to."""
        if not isinstance(ref, dict):
            raise _ApiError(400, f"{name}: must be an object with one of url, data, generation_id, file_id")
        given = [k for k in REF_KEYS if ref.get(k) is not None]
        if len(given) != 1:
            raise _ApiError(400, f"{name}: provide exactly one of url, data, generation_id, file_id")
        key = given[0]
        value = ref[key]
        if not isinstance(value, str) or not value:
            raise _ApiError(400, f"{name}.{key}: must be a non-empty string")

        if key == "generation_id":
            gen = self.generations.get(value)
            if gen is None:
                raise _ApiError(400, f"{name}: generation {value} not found")
            state = gen.state_at(now)
            if state != "completed" or gen.output is None:
                raise _ApiError(400, f"{name}: generation {value} has no output (state {state})")
            return gen.width, gen.height

        if key == "file_id":
            raise _ApiError(400, f"{name}: file {value} not found or not ready")

        if key == "data":
            media_type = ref.get("media_type")
            if not media_type:
                raise _ApiError(400, f"{name}: media_type is required with data")
            if not isinstance(media_type, str) or media_type.lower() not in IMAGE_MEDIA_TYPES:
                raise _ApiError(422, f"{name}: unsupported media_type {media_type!r}")
            if len(value) * 3 // 4 > MAX_IMAGE_BYTES + 3:
                raise _ApiError(413, f"{name}: image is larger than 50 MB")
            try:
                raw = _decode_data(value)
            except (binascii.Error, ValueError):
                raise _ApiError(422, f"{name}: data is not valid base64") from None
            if len(raw) > MAX_IMAGE_BYTES:
                raise _ApiError(413, f"{name}: image is larger than 50 MB")
            return self._image_size(raw, name)

        # url
        if not value.startswith(("https://", "http://")):
            raise _ApiError(400, f"{name}.url: must be an http(s) URL")
        if value in self.url_images:
            return self._image_size(self.url_images[value], name)
        own = self._resolve_own_url(value, now)
        if own is not None:
            return own.width, own.height
        raise _ApiError(422, f"{name}: URL fetch failed (could not fetch an image from {value})")

    def _image_size(self, raw: bytes, name: str) -> tuple[int, int]:
        try:
            with Image.open(io.BytesIO(raw)) as img:
                width, height = img.size
        except Exception:
            raise _ApiError(422, f"{name}: data is not a readable image") from None
        if width < 1 or height < 1:
            raise _ApiError(422, f"{name}: data is not a readable image")
        return width, height

    def _resolve_own_url(self, url: str, now: float) -> FakeGeneration | None:
        prefix = f"{self.root_url}/outputs/"
        if not self.root_url or not url.startswith(prefix):
            return None
        path, _, query = url[len(self.root_url):].partition("?")
        params = dict(p.partition("=")[::2] for p in query.split("&") if p)
        gen, _ = self._check_sig(path, params.get("sig"), params.get("expires"), now)
        return gen

    def _check_sig(
        self, path: str, sig: str | None, expires: str | None, now: float
    ) -> tuple[FakeGeneration | None, str]:
        match = _OUTPUT_PATH.fullmatch(path)
        if match is None:
            return None, "Access Denied"
        entry = self._sigs.get(sig or "")
        if entry is None:
            if sig in self._expired_sigs:
                return None, "Request has expired"
            return None, "Access Denied"
        gid, expires_mono, expires_unix = entry
        if gid != match.group(1) or expires != str(expires_unix):
            return None, "Access Denied"
        if now >= expires_mono:
            return None, "Request has expired"
        gen = self.generations.get(gid)
        if gen is None or gen.output is None:
            return None, "Access Denied"
        ext = "jpg" if gen.output_format == "jpeg" else "png"
        if match.group(2) != ext:
            return None, "Access Denied"
        return gen, ""

    def _new_generation(self, body: dict, spec: dict, now: float, key: str) -> FakeGeneration:
        outcome = self._script.popleft() if self._script else Outcome()
        if outcome.latency is not None:
            latency = outcome.latency
        elif self.latency_of_key is not None:
            latency = self.latency_of_key(key)
        elif self.latency_fn is not None:
            latency = self.latency_fn()
        else:
            latency = self.latency
        latency = max(0.0, float(latency))
        gid = str(uuid.uuid4())
        fmt = spec["format"]
        output = None
        if outcome.state == "completed":
            if self.illustrate:
                output = self._illustrate(body, spec, now)
            else:
                output = self._render(spec["prompt"], spec["width"], spec["height"], fmt)
        completes_at = None if outcome.hold else now + latency
        gen = FakeGeneration(
            id=gid,
            body=body,
            model=spec["model"],
            type=spec["type"],
            outcome=outcome,
            created_at=now,
            created_at_iso=_now_iso(),
            latency=latency,
            completes_at=completes_at,
            output=output,
            output_media_type="image/jpeg" if fmt == "jpeg" else "image/png",
            width=spec["width"],
            height=spec["height"],
            prompt=spec["prompt"],
            aspect_ratio=spec["ratio"],
            output_format=fmt,
            held=outcome.hold,
            api_key=key,
        )
        self.generations[gid] = gen
        self._create_bodies.append(body)
        self._limits(key)[2].append(now)
        self._active.add(gid)
        if completes_at is not None:
            heapq.heappush(self._heap, (completes_at, gid))
        self.stats["created"] += 1
        return gen

    # ---------------------------------------------------------------- GET /v1/generations/{id}

    async def _get(self, request: web.Request, rec: RecordedRequest, gid: str, key: str) -> web.StreamResponse:
        self.stats["gets"] += 1
        rec.generation_id = gid
        inj = self._take("GET")
        await self._before(request, inj)
        gen = self.generations.get(gid)
        if gen is None or gen.api_key != key:  # (another account's generation is not found either)
            raise _ApiError(404, "Generation not found")
        now = time.monotonic()
        gen.get_count += 1
        return self._json(200, self._generation_json(gen, gen.state_at(now), now))

    # ---------------------------------------------------------------- GET /outputs/...

    async def _download(self, request: web.Request, rec: RecordedRequest) -> web.StreamResponse:
        inj = self._take("DOWNLOAD")
        await self._before(request, inj)
        now = time.monotonic()
        gen, message = self._check_sig(
            request.path, request.query.get("sig"), request.query.get("expires"), now
        )
        if gen is None:
            self.stats["downloads_denied"] += 1
            return _s3_denied(message, rec.request_id)
        rec.generation_id = gen.id
        self.stats["downloads"] += 1
        assert gen.output is not None
        return web.Response(status=200, body=gen.output, content_type=gen.output_media_type)


# --------------------------------------------------------------------------------------------
# Offline demo: python -m lumabot.testing.fake_luma
# --------------------------------------------------------------------------------------------


async def _serve(args: argparse.Namespace) -> None:
    fake = FakeLuma(
        api_key=args.api_key,
        latency=args.latency,
        rpm_limit=args.rpm,
        concurrency_limit=args.concurrency,
        image_long_side=args.long_side,
        record_requests=False,
    )
    await fake.start(port=args.port)
    print(f"fake Luma listening on {fake.base_url} (api key {fake.api_key})", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await fake.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run a fake Luma Agents API server")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--api-key", default="luma-api-test-key")
    parser.add_argument("--latency", type=float, default=3.0)
    parser.add_argument("--rpm", type=int, default=None)
    parser.add_argument("--concurrency", type=int, default=None)
    parser.add_argument("--long-side", type=int, default=512)
    args = parser.parse_args(argv)
    try:
        asyncio.run(_serve(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
