"""Luma's finished images: downloaded from the presigned URL a completed generation carries."""

from __future__ import annotations

import asyncio

import httpx

from ..ports import DeliveryError, Output, OutputExpired

MAX_OUTPUT_BYTES = 50 * 1024 * 1024


class LumaOutputs:
    """Downloads output images. `transfers` is shared with the uploads to Slack: a burst of
    completions queues there, not inside httpcore's pool (which scans its whole wait queue on
    every request)."""

    def __init__(self, http: httpx.AsyncClient, transfers: asyncio.Semaphore):
        self.http = http
        self._transfers = transfers

    async def download(self, url: str) -> Output:
        """Fetch Luma's output. Raises OutputExpired on 403, DeliveryError otherwise."""
        try:
            async with self._transfers, self.http.stream("GET", url) as r:
                if r.status_code == 403:
                    raise OutputExpired()
                if r.status_code != 200:
                    raise DeliveryError(f"output download answered {r.status_code}",
                                        transient=r.status_code >= 500 or r.status_code == 429)
                chunks, size = [], 0
                async for chunk in r.aiter_bytes():
                    size += len(chunk)
                    if size > MAX_OUTPUT_BYTES:
                        raise DeliveryError("output is larger than 50 MB", transient=False)
                    chunks.append(chunk)
                media_type = r.headers.get("content-type", "image/png").split(";")[0].strip()
                return Output(b"".join(chunks), media_type)
        except httpx.TransportError as exc:
            raise DeliveryError(f"output download failed ({type(exc).__name__})", transient=True) from None
