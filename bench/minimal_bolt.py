"""The reference for bench/ingress.py: a minimal Bolt app that only acks `/imagine` (signature
checked by Bolt, aiohttp as lumabot serves HTTP), in a process of its own.

    python -m bench.minimal_bolt PORT SIGNING_SECRET BOT_TOKEN SLACK_API_URL
"""

from __future__ import annotations

import sys

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient


def main() -> None:
    port, secret, token, api_url = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    # The token is checked once with auth.test, against the same (fake) Slack lumabot uses.
    app = AsyncApp(signing_secret=secret, client=AsyncWebClient(token=token, base_url=api_url),
                   process_before_response=True)

    @app.command("/imagine")
    async def imagine(ack) -> None:  # type: ignore[no-untyped-def]
        await ack()

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
