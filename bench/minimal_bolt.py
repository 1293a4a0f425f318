"""The references for bench/ingress.py: a minimal Bolt app that only acks `/imagine` (signature
checked by Bolt, aiohttp as lumabot serves HTTP), in a process of its own; with `--posts`, a
naive bot that also posts one message per command after the ack (chat.postMessage, as lumabot's
status message), nothing stored.

    python -m bench.minimal_bolt PORT SIGNING_SECRET BOT_TOKEN SLACK_API_URL [--posts]
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient


def main() -> None:
    port, secret, token, api_url = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    posts = "--posts" in sys.argv[5:]
    pending: set[asyncio.Task[object]] = set()
    # The token is checked once with auth.test, against the same (fake) Slack lumabot uses.
    app = AsyncApp(signing_secret=secret, client=AsyncWebClient(token=token, base_url=api_url),
                   process_before_response=True)

    @app.command("/imagine")
    async def imagine(ack: Any, command: dict[str, Any], client: Any) -> None:
        await ack()
        if posts:   # after the ack, as lumabot posts its status message
            task = asyncio.ensure_future(client.chat_postMessage(channel=command["channel_id"],
                                                                 text=f"Generating: {command['text']}"))
            pending.add(task)
            task.add_done_callback(pending.discard)

    async def events(request: web.Request) -> web.Response:
        return await to_aiohttp_response(await app.async_dispatch(await to_bolt_request(request)))

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    server = web.Application()
    server.router.add_post("/slack/events", events)
    server.router.add_get("/healthz", healthz)
    web.run_app(server, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()
