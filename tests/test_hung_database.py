"""A database that hangs (not one that fails) before the ack (issue #21, point 3): the person is
answered within the ack budget with "please try again", nothing starts, and a job the database
records once it wakes up is withdrawn, so whoever retypes pays once."""

from __future__ import annotations

import asyncio
import json
import logging
from contextlib import asynccontextmanager

from lumabot.intake import TRY_AGAIN
from lumabot.testing.fake_slack import app_mention_event


@asynccontextmanager
async def hung(h):
    """The database stops answering writes of jobs until the block ends: SQLite's one writer is
    held; PostgreSQL's jobs table is locked by another connection."""
    store = h.bot.store
    if store.shared:
        import asyncpg

        con = await asyncpg.connect(store.db.dsn)
        tx = con.transaction()
        await tx.start()
        await con.execute("LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE")
        try:
            yield
        finally:
            await tx.rollback()
            await con.close()
    else:
        async with store.db._lock:
            yield


def withdrawn(caplog) -> int:
    return sum("withdrew a job recorded after its deadline" in r.getMessage() for r in caplog.records)


async def test_a_hung_database_gets_try_again_and_a_late_record_is_withdrawn(start_bot, caplog):
    caplog.set_level(logging.INFO)
    h = await start_bot(LUMABOT_ACK_BUDGET="0.5")
    async with hung(h):
        status, body = await h.command("a lighthouse")
        assert status == 200 and json.loads(body)["text"] == TRY_AGAIN  # answered while it hangs
    await h.slack.wait_for(lambda: withdrawn(caplog) == 1)  # recorded once it woke, then withdrawn
    assert await h.jobs() == [] and h.luma.creates == []
    assert h.slack.count_calls("chat.postMessage") == 0
    done = await h.finished((await h.imagine("a lighthouse")).id)  # typed again: made once
    assert [c["prompt"] for c in h.luma.creates] == ["a lighthouse"] and done.settled


async def test_a_mention_answered_try_again_is_made_once_when_slack_retries(start_bot, caplog):
    caplog.set_level(logging.INFO)
    h = await start_bot(LUMABOT_ACK_BUDGET="0.5")
    mention = app_mention_event("<@UBOT> a red kite", user="U2", channel="C1")
    async with hung(h):
        status, _ = await h.slack.post_event(h.url, mention, event_id="EvHung1")
        assert status == 200
        await h.slack.wait_for(lambda: any(TRY_AGAIN in (m.text or "") for m in h.slack.messages + h.slack.ephemerals))
    await h.slack.wait_for(lambda: withdrawn(caplog) == 1)
    assert await h.jobs() == []
    # Slack retries the event: the dedupe key went with the withdrawn job, so it is made, once
    await h.slack.post_event(h.url, mention, event_id="EvHung1", retry_num=1)
    job = await h.wait_job(lambda j: j.settled)
    assert job.params.prompt == "a red kite" and len(h.luma.creates) == 1
