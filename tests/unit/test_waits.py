"""Waiting for an event with a timeout (lumabot/waits.py): a stop is never lost."""

from __future__ import annotations

import asyncio

import pytest

from lumabot.waits import wait_event


async def test_it_says_whether_the_event_came_within_the_time():
    event = asyncio.Event()
    assert await wait_event(event, 0.01) is False
    event.set()
    assert await wait_event(event, 10) is True


async def test_a_cancel_that_arrives_as_the_event_is_set_stops_the_loop():
    """A background loop (the installations follower, the shared line's idle wait) cancelled at
    a stop in the same breath as its event is set: with Python 3.11's `asyncio.wait_for` the
    cancel was swallowed, the loop waited again, and the stop never ended (a PostgreSQL OAuth
    test hung 120 s)."""
    event, waiting = asyncio.Event(), asyncio.Event()

    async def follow() -> None:
        while True:
            waiting.set()
            await wait_event(event, 3600)
            event.clear()

    task = asyncio.ensure_future(follow())
    await waiting.wait()
    event.set()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(10):
            await task
