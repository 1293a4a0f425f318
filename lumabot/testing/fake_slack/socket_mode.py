"""Socket Mode: apps.connections.open, the websocket, envelopes and acks."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import aiohttp
from aiohttp import web

from .records import _Ctx, SocketAck


class SocketMode:
    """Socket Mode of the fake."""

    def _apps_connections_open(self, p: dict, ctx: "_Ctx") -> dict:
        ticket = uuid.uuid4().hex
        self._ws_tickets.add(ticket)
        ws_base = self.base_url.replace("http://", "ws://", 1)
        return {"url": f"{ws_base}/socket?ticket={ticket}&app_id={self.app_id}"}

    # views

    async def _handle_socket(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket")
        if not ticket or ticket not in self._ws_tickets:
            return web.Response(status=401, text="invalid ticket", content_type="text/plain")
        self._ws_tickets.discard(ticket)
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.socket_connections_total += 1
        hello = {
            "type": "hello",
            "num_connections": 1,
            "debug_info": {
                "host": "applink-fake-1",
                "build_number": 1,
                "approximate_connection_time": 18060,
            },
            "connection_info": {"app_id": self.app_id},
        }
        await ws.send_str(json.dumps(hello))
        self._ws.append(ws)
        try:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    self._on_socket_text(msg.data)
                elif msg.type == aiohttp.WSMsgType.ERROR:
                    break
        finally:
            if ws in self._ws:
                self._ws.remove(ws)
        return ws

    def _on_socket_text(self, data: str) -> None:
        try:
            msg = json.loads(data)
        except ValueError:
            return
        if not isinstance(msg, dict):
            return
        self.socket_messages.append(msg)
        eid = msg.get("envelope_id")
        fut = self._pending_acks.pop(eid, None) if eid else None
        if fut is not None and not fut.done():
            fut.set_result(msg)

    def socket_connected(self) -> bool:
        return any(not ws.closed for ws in self._ws)

    async def wait_socket_connected(self, timeout: float = 5.0) -> None:
        await self.wait_for(self.socket_connected, timeout, message=f"no Socket Mode connection within {timeout}s")

    async def disconnect_socket(self) -> None:
        """Drop every Socket Mode connection (the client is expected to reconnect)."""
        for ws in list(self._ws):
            try:
                await asyncio.wait_for(ws.close(code=aiohttp.WSCloseCode.GOING_AWAY, message=b"bye"), 2.0)
            except Exception:
                pass
            if ws in self._ws:
                self._ws.remove(ws)

    async def send_raw_frame(self, text: str) -> None:
        """Send a text frame as it is (tests of frames the client cannot use)."""
        live = [ws for ws in self._ws if not ws.closed]
        if not live:
            raise AssertionError("no Socket Mode connection")
        await live[-1].send_str(text)

    async def send_envelope(
        self,
        type: str,
        payload: dict,
        *,
        accepts_response_payload: bool = True,
        retry_attempt: int = 0,
        retry_reason: str = "",
        timeout: float = 3.0,
        envelope_id: str | None = None,
    ) -> dict:
        """Send a Socket Mode envelope; return the client's ack (``{"envelope_id", "payload"?}``).

        For "events_api" a bare event is wrapped with `event_callback`. A falsy ``response_url``
        is filled with `new_response_url`; trigger ids are registered (views.open will accept
        them). AssertionError when there is no connection or no ack within `timeout`.
        """
        live = [ws for ws in self._ws if not ws.closed]
        if not live:
            raise AssertionError("no Socket Mode connection")
        ws = live[-1]
        payload = self.prepare_outgoing(type, payload)
        eid = envelope_id or str(uuid.uuid4())
        env = {
            "envelope_id": eid,
            "type": type,
            "payload": payload,
            "accepts_response_payload": accepts_response_payload,
            "retry_attempt": retry_attempt,
            "retry_reason": retry_reason,
        }
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        self._pending_acks[eid] = fut
        t0 = time.monotonic()
        await ws.send_str(json.dumps(env))
        try:
            ack = await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            self._pending_acks.pop(eid, None)
            raise AssertionError(f"no ack for {type} envelope {eid} within {timeout}s") from None
        self.acks.append(SocketAck(eid, type, env, ack, time.monotonic() - t0))
        return ack
