"""Waiting for an event, with a timeout, without losing a cancellation.

`asyncio.wait_for` on Python 3.11 runs what it waits for as a task of its own, and a
cancellation that arrives as that task finishes is swallowed (CPython gh-86296): a background
loop told to stop just as its event was set then waits a whole timeout again, or for ever (a
stop that never ends). `asyncio.timeout` cancels the waiting task itself and loses none."""

from __future__ import annotations

import asyncio


async def wait_event(event: asyncio.Event, timeout: float) -> bool:
    """True if `event` is set within `timeout` seconds, False after them."""
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
        return True
    except TimeoutError:
        return False
