"""Sessions over in-memory ports: guard rails that several replicas run at once."""

from __future__ import annotations

import asyncio
import time

from lumabot.jobs.models import Session
from lumabot.ports import SessionRules
from lumabot.sessions import Sessions
from lumabot.testing.ports import MemoryNotifier

RULES = SessionRules(idle_minutes=1, max_images=10, vote_emoji="star")


async def test_replicas_checking_an_idle_session_at_once_post_one_recap(make_rig):
    rig = await make_rig()
    replicas = [Sessions(rig.store, MemoryNotifier(), RULES) for _ in range(3)]
    session = Session(team_id="T1", channel_id="C1", started_by="U1", last_prompt_at=time.time() - 3600)
    assert await rig.store.sessions.create(session)
    await asyncio.gather(*(s.check() for s in replicas))
    assert sum(len(s.notifier.recaps) for s in replicas) == 1
    ended = await rig.store.sessions.get(session.id)
    assert ended.end_reason == "idle" and ended.recap_posted
