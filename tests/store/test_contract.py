"""The store contract: what every Store implementation (lumabot/store/__init__.py) promises,
method by method. A new implementation passes when it is added to STORES in conftest.py."""

from __future__ import annotations

import asyncio
import time

import pytest

from lumabot.jobs.failures import REFUNDED_FAILURE_CODES
from lumabot.jobs.models import GenerationParams, JobState, KnownImage, Session, SlackFile
from lumabot.jobs.policy import Limits
from lumabot.jobs.admission import AdmissionRules
from lumabot.store import Store

from .conftest import job
from lumabot.testing.store import job_ids, unsettled_count


async def test_a_job_round_trips_every_field(store: Store):
    j = job(params=GenerationParams(prompt="a fox", model="uni-1-max", aspect_ratio="2:3"),
            thread_ts="1.2", response_url="https://hooks.example/x", cost_usd=0.1)
    assert (await store.jobs.create(j)).status == "created"
    j.state, j.generation_id, j.attempts, j.status_ts = JobState.GENERATING, "gen-1", 1, "9.9"
    j.submitted_at, j.deadline, j.blind_resends, j.waiting_reason = 10.0, 310.0, 1, "capacity"
    await store.jobs.save(j)
    stored = await store.jobs.get(j.id)
    assert stored == j.model_copy(update={"queue_position": None})
    assert await store.jobs.get("nope") is None


async def test_a_job_is_unsaved_from_a_change_until_it_is_saved(store: Store):
    j = job()
    await store.jobs.create(j)
    assert not store.jobs.unsaved(j)
    j.status_ts = "9.9"            # (held by the runner for its next write)
    assert store.jobs.unsaved(j)
    await store.jobs.save(j)
    assert not store.jobs.unsaved(j)


async def test_a_dedupe_key_creates_one_job(store: Store):
    first, second = job(), job()
    assert (await store.jobs.create(first, dedupe_key="Ev1")).status == "created"
    assert (await store.jobs.create(second, dedupe_key="Ev1")).status == "duplicate"
    assert await job_ids(store) == [first.id]


async def test_admission_counts_waiting_jobs_images_and_spend(store: Store):
    day = 1000.0
    rules = admission(max_waiting=2, day=day)
    for _ in range(2):
        assert (await store.jobs.create(job(created_at=day + 1), rules=rules)).status == "created"
    refused = await store.jobs.create(job(created_at=day + 2), rules=rules)
    assert (refused.status, refused.refusal, refused.counts.waiting) == ("refused", "waiting", 2)
    assert (await store.jobs.create(job(user_id="U2", created_at=day + 2), rules=rules)).status == "created"

    budget = admission(daily_budget=0.10, day=day)
    assert (await store.jobs.create(job(team_id="T2", cost_usd=0.06, created_at=day + 1),
                                   rules=budget)).status == "created"
    over = await store.jobs.create(job(team_id="T2", cost_usd=0.06, created_at=day + 1), rules=budget)
    assert over.refusal == "daily_budget" and abs(over.counts.committed_today - 0.06) < 1e-9


async def test_unsettled_jobs_are_claimed_oldest_first(store: Store):
    old, new, told = job(created_at=1.0), job(created_at=2.0), job(created_at=0.5)
    for j in (new, old, told):
        await store.jobs.create(j)
    told.state, told.settled = JobState.DONE, True
    await store.jobs.save(told)
    assert [j.id for j in await store.jobs.claim("r1", stale_after=0)] == [old.id, new.id]
    assert await unsettled_count(store) == 2
    assert await job_ids(store) == [told.id, old.id, new.id]


async def test_claim_key_once_or_once_per_window(store: Store):
    assert await store.keys.claim("k")
    assert not await store.keys.claim("k")
    assert await store.keys.claim("w", window=60)
    assert not await store.keys.claim("w", window=60)
    assert await store.keys.claim("w", window=0)  # the window has passed


async def test_recent_jobs_are_a_persons_newest_first(store: Store):
    mine = [job(created_at=float(i)) for i in range(3)]
    for j in mine + [job(user_id="U2"), job(team_id="T2")]:
        await store.jobs.create(j)
    assert [j.id for j in await store.jobs.recent("T1", "U1", limit=2)] == [mine[2].id, mine[1].id]


async def test_usage_counts_images_requests_and_charged_spend(store: Store):
    now = time.time()
    done = job(cost_usd=0.04, attempts=1, state=JobState.DONE, settled=True)
    refunded = job(cost_usd=0.04, attempts=1, state=JobState.FAILED, failure_code="content_moderated")
    charged_failure = job(cost_usd=0.10, attempts=1, state=JobState.FAILED, failure_code="timeout")
    waiting = job(cost_usd=0.04)
    other = job(user_id="U2", cost_usd=0.04, attempts=1, state=JobState.DONE)
    for j in (done, refunded, charged_failure, waiting, other):
        await store.jobs.create(j)
    mine = await store.policy.usage("T1", now - 60, user_id="U1")
    assert mine.images == 1 and abs(mine.spend - 0.14) < 1e-9 and abs(mine.pending - 0.04) < 1e-9
    team = await store.policy.usage("T1", now - 60)
    assert team.images == 2 and abs(team.spend - 0.18) < 1e-9
    assert (await store.policy.usage("T1", now + 60)).images == 0


async def test_images_are_found_by_thread_channel_file_and_message(store: Store):
    made = job(state=JobState.DONE, status_ts="4.0")
    await store.jobs.create(made)
    theirs = KnownImage(team_id="T1", channel_id="C1", thread_ts="1.0", message_ts="1.5", origin="user",
                        slack_file_id="F1", file=SlackFile(id="F1", name="a.png"), user_id="U1",
                        created_at=1.0)
    ours = KnownImage(team_id="T1", channel_id="C1", thread_ts="1.0", message_ts="2.5", origin="lumabot",
                      job_id=made.id,
                      generation_id="gen-1", slack_file_id="F2", created_at=2.0)
    elsewhere = KnownImage(team_id="T1", channel_id="C1", thread_ts="3.0", origin="user", slack_file_id="F3",
                           created_at=3.0)
    # Another workspace with the same channel id (and even the same file id): another channel.
    other_team = KnownImage(team_id="T2", channel_id="C1", thread_ts="1.0", message_ts="9.5", origin="lumabot",
                            job_id="other", generation_id="gen-9", slack_file_id="F2", created_at=9.0)
    for image in (theirs, ours, elsewhere, theirs, other_team):  # recording twice is harmless
        await store.images.record(image)
    assert (await store.images.latest_in_thread("T1", "C1", "1.0")).slack_file_id == "F2"
    assert (await store.images.latest_in_channel("T1", "C1")).slack_file_id == "F3"
    assert await store.images.latest_in_channel("T1", "C9") is None
    assert (await store.images.by_file("T1", "F2")).generation_id == "gen-1"
    assert await store.images.by_file("T1", "F1") is None  # only images lumabot made
    assert await store.images.is_lumabot_thread("T1", "C1", "1.0")
    assert not await store.images.is_lumabot_thread("T1", "C1", "3.0")
    assert await store.images.is_lumabot_thread("T1", "C1", "4.0")  # the thread of a status message
    assert (await store.jobs.for_message("T1", "C1", "2.5")).id == made.id
    assert await store.jobs.for_message("T1", "C1", "7.7") is None
    # ...and nothing of T1's is found from T2, nor T2's from T1.
    assert (await store.images.latest_in_thread("T2", "C1", "1.0")).generation_id == "gen-9"
    assert (await store.images.by_file("T2", "F2")).generation_id == "gen-9"
    assert (await store.images.latest_in_channel("T2", "C1")).generation_id == "gen-9"
    assert not await store.images.is_lumabot_thread("T2", "C1", "4.0")
    assert not await store.images.is_lumabot_thread("T3", "C1", "1.0")
    assert await store.jobs.for_message("T2", "C1", "2.5") is None


async def test_mark_deleted_touches_nothing_else(store: Store):
    j = job()
    await store.jobs.create(j)
    await store.jobs.mark_deleted(j.id)
    j.state = JobState.DONE
    await store.jobs.save(j)  # a full write from a copy that predates the delete
    stored = await store.jobs.get(j.id)
    assert stored.deleted and stored.state == JobState.DONE


async def test_one_running_session_per_channel_and_its_life(store: Store):
    s = Session(team_id="T1", channel_id="C1", started_by="U1", flags={"model": "uni-1-max"},
                theme="noir")
    assert await store.sessions.create(s)
    assert not await store.sessions.create(Session(team_id="T1", channel_id="C1", started_by="U2"))
    assert (await store.sessions.running("T1", "C1")).id == s.id
    # The same channel id in another workspace is another channel: a session of its own.
    elsewhere = Session(team_id="T2", channel_id="C1", started_by="U1")
    assert await store.sessions.create(elsewhere)
    assert (await store.sessions.running("T2", "C1")).id == elsewhere.id
    assert await store.sessions.end(elsewhere.id, 70.0, "idle")
    elsewhere.ended_at, elsewhere.end_reason, elsewhere.recap_posted = 70.0, "idle", True
    await store.sessions.save(elsewhere)
    s.banner_ts = "5.5"
    await store.sessions.save(s)
    assert (await store.sessions.get(s.id)).banner_ts == "5.5"
    await store.sessions.touch(s.id, 77.0)
    assert (await store.sessions.get(s.id)).last_prompt_at == 77.0
    assert [o.id for o in await store.sessions.unfinished()] == [s.id]
    assert await store.sessions.end(s.id, 80.0, "idle")
    assert not await store.sessions.end(s.id, 90.0, "stopped:U1")  # only a running one ends
    ended = await store.sessions.get(s.id)
    assert (ended.ended_at, ended.end_reason) == (80.0, "idle")
    assert await store.sessions.running("T1", "C1") is None
    assert [o.id for o in await store.sessions.unfinished()] == [s.id]  # its recap is not posted yet
    ended.recap_posted = True
    await store.sessions.save(ended)
    assert await store.sessions.unfinished() == []
    assert await store.sessions.create(Session(team_id="T1", channel_id="C1", started_by="U2"))


async def test_session_jobs_votes_and_thumbnails(store: Store):
    s = Session(team_id="T1", channel_id="C1", started_by="U1")
    await store.sessions.create(s)
    a, b, outside = job(session_id=s.id, created_at=1.0), job(session_id=s.id, created_at=2.0), job()
    for j in (a, b, outside):
        await store.jobs.create(j)
    assert [j.id for j in await store.sessions.jobs(s.id)] == [a.id, b.id]
    await store.sessions.set_vote(s.id, a.id, "U1", True)
    await store.sessions.set_vote(s.id, a.id, "U1", True)  # one vote per person
    await store.sessions.set_vote(s.id, a.id, "U2", True)
    await store.sessions.set_vote(s.id, b.id, "U3", True)
    await store.sessions.set_vote(s.id, b.id, "U3", False)  # taken back
    assert await store.sessions.votes(s.id) == {a.id: 2}
    await store.sessions.save_thumbnail(a.id, b"jpeg-a")
    assert await store.sessions.thumbnails([a.id, b.id]) == {a.id: b"jpeg-a"}


async def test_jobs_are_claimed_from_nobody_or_the_dead_and_old_copies_are_fenced(store: Store):
    from lumabot.store import JobLost

    mine, theirs, unowned = job(owner="A"), job(owner="B"), job()
    for j in (mine, theirs, unowned):
        await store.jobs.create(j)
    await store.jobs.heartbeat("A")
    await store.jobs.heartbeat("B")
    claimed = await store.jobs.claim("A", stale_after=3600)
    assert [j.id for j in claimed] == [unowned.id] and claimed[0].epoch == 1  # B is alive
    own = await store.jobs.claim("A", stale_after=3600, include_own=True)  # (A restarted)
    assert {j.id for j in own} == {mine.id, unowned.id}
    with pytest.raises(JobLost):
        await store.jobs.save(mine)  # the copy from before the claim is fenced
    taken = await store.jobs.claim("C", stale_after=0)  # every heartbeat is older than "now"
    assert {j.id for j in taken} == {mine.id, theirs.id, unowned.id}
    assert all(j.owner == "C" for j in taken)
    fresh = {j.id: j for j in taken}[theirs.id]
    fresh.state = JobState.QUEUED
    await store.jobs.save(fresh)  # the new owner writes
    assert await store.jobs.release("C") == 3
    assert len(await store.jobs.claim("D", stale_after=3600)) == 3  # handed back: anyone's


async def test_a_claim_finds_each_kind_of_orphan_alone(store: Store):
    """Each reason a job is claimable, with no other claimable job beside it (the claim first
    asks whether anything is claimable, from the owners alone)."""
    await store.jobs.heartbeat("A")
    await store.jobs.heartbeat("B")
    alive = job(owner="B")
    await store.jobs.create(alive)
    assert await store.jobs.claim("A", stale_after=3600) == []  # B is alive: nothing to take
    gone = job(owner="G")  # its replica never heartbeat (or left): no row
    await store.jobs.create(gone)
    assert [j.id for j in await store.jobs.claim("A", stale_after=3600)] == [gone.id]
    assert await store.jobs.claim("A", stale_after=3600) == []  # A's now, and A is alive
    assert {j.id for j in await store.jobs.claim("C", stale_after=0)} == {alive.id, gone.id}  # stale


async def test_own_jobs_are_claimed_in_batches_each_once(store: Store):
    """A restart claims its own jobs batch by batch (`after`: the last one claimed), including
    jobs created in the same instant, each exactly once."""
    jobs = [job(owner="A", created_at=1000.0 + i // 3) for i in range(7)]  # three share each instant
    for j in jobs:
        await store.jobs.create(j)
    await store.jobs.heartbeat("A")
    seen: list[str] = []
    after: tuple[float, str] | None = None
    while batch := await store.jobs.claim("A", stale_after=0, include_own=True, limit=2, after=after):
        assert len(batch) <= 2 and all(j.epoch == 1 for j in batch)
        seen += [j.id for j in batch]
        after = (batch[-1].created_at, batch[-1].id)
    assert seen == [j.id for j in sorted(jobs, key=lambda j: (j.created_at, j.id))]


async def test_settled_jobs_are_never_claimed(store: Store):
    j = job(owner="A", state=JobState.DONE, settled=True)
    await store.jobs.create(j)
    assert await store.jobs.claim("B", stale_after=0) == []


async def test_a_waiting_job_can_be_cancelled_until_it_is_sent(store: Store):
    from lumabot.store import JobCancelled

    waiting, sent = job(owner="A"), job(owner="A", state=JobState.SUBMITTING)
    for j in (waiting, sent):
        await store.jobs.create(j)
    assert not await store.jobs.request_cancel(sent.id, "U1")
    assert await store.jobs.request_cancel(waiting.id, "U1")
    assert not await store.jobs.request_cancel(waiting.id, "U2")  # once
    assert await store.jobs.cancel_requests("A") == [(waiting.id, "U1")]
    assert await store.jobs.cancel_requests("B") == []
    waiting.waiting_reason = "capacity"
    await store.jobs.save(waiting)  # still waiting: writes go on
    waiting.state = JobState.SUBMITTING
    with pytest.raises(JobCancelled):
        await store.jobs.save(waiting)  # but it is never sent
    waiting.state = JobState.CANCELLED
    await store.jobs.save(waiting)
    stored = await store.jobs.get(waiting.id)
    assert stored.state == JobState.CANCELLED and stored.cancelled_by == "U1"


# -- admin policy, admission under it, reports, retention ----------------------------------------
def admission(*, max_waiting: int = 100, daily_images: int | None = None, daily_budget: float | None = None,
              monthly_budget: float | None = None, day: float = 0.0, is_admin: bool | None = None) -> AdmissionRules:
    return AdmissionRules(limits=Limits(max_queued_per_user=max_waiting, user_daily_images=daily_images,
                                        daily_budget_usd=daily_budget, monthly_budget_usd=monthly_budget),
                          day_start=day, month_start=day, is_admin=is_admin)


async def test_the_policy_is_edited_in_one_transaction_and_logged(store: Store):
    from lumabot.jobs.policy import Policy

    assert await store.policy.get("T1") == Policy()
    await store.policy.update("T1", lambda p: p.model_copy(update={"channels": ["C1"]}), by="UA", change="only C1")
    await store.policy.update("T1", lambda p: p.model_copy(update={"day_budget": None}), by="UB", change="day off")
    policy = await store.policy.get("T1")
    assert policy.channels == ["C1"] and policy.day_budget is None
    assert policy.model_fields_set == {"channels", "day_budget"}  # set: overrides the environment
    assert await store.policy.get("T2") == Policy()
    log = await store.policy.log("T1")
    assert [(c.user_id, c.change) for c in log] == [("UB", "day off"), ("UA", "only C1")]
    # concurrent edits serialise: none is lost
    await asyncio.gather(*(store.policy.update("T1", lambda p, i=i: p.model_copy(
        update={"user_limits": {**p.user_limits, f"U{i}": i}}), by="UA", change=f"limit {i}") for i in range(10)))
    assert (await store.policy.get("T1")).user_limits == {f"U{i}": i for i in range(10)}


async def test_admission_applies_the_policy_in_the_same_transaction(store: Store):
    edit = lambda **kw: store.policy.update("T1", lambda p: p.model_copy(update=kw), by="UA", change="x")  # noqa: E731
    await edit(channels=["C1"], dms=False, max_model="admins")
    assert (await store.jobs.create(job(channel_id="C2"), rules=admission())).refusal == "channel"
    assert (await store.jobs.create(job(channel_id="D1"), rules=admission())).refusal == "dms"
    maxed = job(params=GenerationParams(prompt="a cat", model="uni-1-max"))
    assert (await store.jobs.create(maxed, rules=admission())).refusal == "max_model"
    assert (await store.jobs.create(maxed, rules=admission(is_admin=True))).status == "created"
    assert await job_ids(store) == [maxed.id]  # nothing refused was recorded

    await edit(channels=None, month_budget=0.10, channel_budgets={"C3": 0.05}, user_limits={"U9": 1})
    assert (await store.jobs.create(job(channel_id="C3", cost_usd=0.04), rules=admission())).status == "created"
    over = await store.jobs.create(job(channel_id="C3", cost_usd=0.04), rules=admission())
    assert over.refusal == "channel_budget" and abs(over.counts.committed_channel - 0.04) < 1e-9
    assert (await store.jobs.create(job(user_id="U9"), rules=admission())).status == "created"
    assert (await store.jobs.create(job(user_id="U9"), rules=admission())).refusal == "daily_images"
    month = await store.jobs.create(job(cost_usd=0.10), rules=admission())
    assert month.refusal == "monthly_budget" and month.rules.month_budget == 0.10


async def test_monthly_budget_holds_under_parallel_requests(store: Store):
    await store.policy.update("T1", lambda p: p.model_copy(update={"month_budget": 0.50}), by="UA", change="x")
    results = await asyncio.gather(*(store.jobs.create(job(user_id=f"U{i}", cost_usd=0.1), rules=admission())
                                     for i in range(12)))
    assert [r.status for r in results].count("created") == 5


def _done(j, *, charged: bool = True):
    j.state, j.settled, j.attempts = JobState.DONE, True, 1 if charged else 0
    return j


async def test_usage_lines_and_job_records(store: Store):
    a = _done(job(user_id="U1", channel_id="C1", cost_usd=0.04, created_at=100.0, prompt="=cmd"))
    b = _done(job(user_id="U2", channel_id="C2", cost_usd=0.10, created_at=200.0,
                  params=GenerationParams(prompt="b", model="uni-1-max")))
    c = job(user_id="U1", channel_id="C1", cost_usd=0.04, created_at=300.0, state=JobState.CANCELLED, settled=True)
    outside = _done(job(created_at=5000.0, cost_usd=1.0))
    for j in (a, b, c, outside):
        await store.jobs.create(j)
    lines = sorted(await store.policy.usage_lines("T1", 0, 1000), key=lambda u: (u.user_id, u.model))
    assert [(u.user_id, u.channel_id, u.model, u.type, u.images, round(u.spend, 4)) for u in lines] == [
        ("U1", "C1", "uni-1", "image", 1, 0.04), ("U2", "C2", "uni-1-max", "image", 1, 0.10)]
    records = await store.policy.job_records("T1", 0, 1000)
    assert [(r.id, r.user_id, r.model, r.outcome, round(r.cost, 4), r.prompt) for r in records] == [
        (a.id, "U1", "uni-1", "done", 0.04, "=cmd"), (b.id, "U2", "uni-1-max", "done", 0.10, "b"),
        (c.id, "U1", "uni-1", "cancelled", 0.0, "a cat")]


async def test_the_sweep_keeps_usage_totals_and_deletes_the_rest(store: Store):
    from lumabot.jobs.models import KnownImage

    old = _done(job(user_id="U1", cost_usd=0.04, created_at=86400.0 * 3 + 10))
    old_unsettled = job(created_at=86400.0 * 3 + 20, cost_usd=0.04)
    new = _done(job(user_id="U1", cost_usd=0.04, created_at=86400.0 * 9))
    for j in (old, old_unsettled, new):
        await store.jobs.create(j)
    await store.sessions.save_thumbnail(old.id, b"png")
    await store.images.record(KnownImage(team_id="T1", channel_id="C1", thread_ts="1.0", origin="lumabot",
                                         job_id=old.id, generation_id="g", slack_file_id="F1",
                                         created_at=86400.0 * 3))
    before = await store.policy.usage("T1", 0, user_id="U1")
    elsewhere = _done(job(team_id="T2", user_id="U1", created_at=86400.0 * 3 + 10))   # another workspace's
    await store.jobs.create(elsewhere)
    removed = await store.policy.sweep("T1", 86400.0 * 5)
    assert (removed.jobs, removed.thumbnails, removed.images) == (1, 1, 1)
    assert await store.jobs.get(elsewhere.id) is not None   # kept: its workspace has its own period
    assert await store.policy.teams() == ["T1", "T2"]
    assert await store.jobs.get(old.id) is None and await store.jobs.get(old_unsettled.id) is not None
    assert await store.sessions.thumbnails([old.id]) == {}
    after = await store.policy.usage("T1", 0, user_id="U1")
    assert (after.images, round(after.spend, 4)) == (before.images, round(before.spend, 4)) == (2, 0.08)
    lines = await store.policy.usage_lines("T1", 0, 86400.0 * 30)
    assert sum(u.images for u in lines) == 2
    again = await store.policy.sweep("T1", 86400.0 * 5)
    assert again.jobs == 0 and (await store.policy.usage("T1", 0)).images == 2  # counted once


async def test_forget_removes_a_persons_history_and_keeps_their_spend_anonymously(store: Store):
    from lumabot.jobs.models import KnownImage

    mine = _done(job(user_id="U7", cost_usd=0.04, created_at=1000.0))
    theirs = _done(job(user_id="U8", cost_usd=0.04, created_at=1000.0))
    for j in (mine, theirs):
        await store.jobs.create(j)
    await store.sessions.save_thumbnail(mine.id, b"png")
    await store.images.record(KnownImage(team_id="T1", channel_id="C1", thread_ts="1.0", origin="user",
                                         slack_file_id="F7", user_id="U7"))
    removed = await store.policy.forget("T1", "U7", "forgotten:abc")
    assert (removed.jobs, removed.thumbnails, removed.images) == (1, 1, 1)
    assert await store.jobs.get(mine.id) is None and await store.jobs.get(theirs.id) is not None
    assert (await store.policy.usage("T1", 0, user_id="U7")).images == 0
    assert (await store.policy.usage("T1", 0, user_id="forgotten:abc")).images == 1
    assert round((await store.policy.usage("T1", 0)).spend, 4) == 0.08


async def test_forgetting_a_workspace_deletes_all_of_it_and_nothing_of_another(store: Store):
    from lumabot.jobs.models import KnownImage

    for team in ("T1", "T2"):
        done = _done(job(team_id=team, user_id="U1", cost_usd=0.04, created_at=1000.0))
        await store.jobs.create(done)
        await store.sessions.save_thumbnail(done.id, b"png")
        await store.images.record(KnownImage(team_id=team, channel_id="C1", thread_ts="1.0", origin="lumabot",
                                             job_id=done.id, slack_file_id="F1"))
        await store.policy.update(team, lambda p: p.model_copy(update={"retention_days": 7}), by="UADMIN",
                                  change="history kept 7 days")
        await store.tenants.remember(team, "E9")
        assert await store.keys.claim(f"msg:{team}:C1:1.0")
    await store.jobs.create(job(team_id="T1", created_at=2000.0))   # still waiting
    assert await store.policy.unsettled("T1") == 1
    removed = await store.policy.forget_workspace("T1")
    assert (removed.jobs, removed.images, removed.thumbnails, removed.dedupe_keys) == (2, 1, 1, 1)
    assert await store.policy.teams() == ["T2"]
    assert (await store.policy.usage("T1", 0)).images == 0 and await store.policy.log("T1", limit=10) == []
    assert (await store.policy.get("T1")).retention_days is None
    assert await store.tenants.in_enterprise("E9") == ["T2"] and await store.tenants.enterprise_of("T1") is None
    assert (await store.policy.usage("T2", 0)).images == 1 and len(await store.policy.log("T2", limit=10)) == 1
    assert (await store.policy.get("T2")).retention_days == 7
    assert not await store.keys.claim("msg:T2:C1:1.0")   # T2's keys kept


async def test_recent_latencies_of_delivered_jobs_newest_first(store: Store):
    for i, (model, kind, web, state) in enumerate([
            ("uni-1", "image", False, JobState.DONE), ("uni-1-max", "image_edit", False, JobState.DONE),
            ("uni-1", "image", False, JobState.FAILED), ("uni-1", "image", True, JobState.DONE)]):
        j = job(params=GenerationParams(prompt="p", model=model, type=kind, web_search=web), state=state, settled=True)
        j.submitted_at, j.completed_at = 100.0, 100.0 + 10 * (i + 1)
        j.running_seen = None if i == 0 else 5.0 * (i + 1)  # (the first: recorded before it was kept)
        await store.jobs.create(j)
    await store.jobs.create(job())  # never sent
    assert await store.jobs.recent_latencies(10) == [
        (("uni-1", "image+web"), 20.0, 40.0, False), (("uni-1-max", "image_edit"), 10.0, 20.0, False),
        (("uni-1", "image"), 10.0, 10.0, False)]
    assert await store.jobs.recent_latencies(1) == [(("uni-1", "image+web"), 20.0, 40.0, False)]


async def test_recent_latencies_then_the_densely_polled_ones_before_them(store: Store):
    """After a restart the poll planner learns its window again, and before it the latest of the
    generations polled densely from their first poll (what it keeps past the window)."""
    for i in range(8):
        j = job(state=JobState.DONE, settled=True, polled_densely=i in (1, 2, 3, 6))
        j.submitted_at, j.completed_at, j.running_seen = 100.0 + i, 100.0 + i + 10 + i, 5.0
        await store.jobs.create(j)
    dense = lambda i: (("uni-1", "image"), 5.0, 10.0 + i, True)   # noqa: E731
    sparse = lambda i: (("uni-1", "image"), 5.0, 10.0 + i, False)  # noqa: E731
    assert await store.jobs.recent_latencies(3, kept=2) == [sparse(7), dense(6), sparse(5), dense(3), dense(2)]
    assert await store.jobs.recent_latencies(3) == [sparse(7), dense(6), sparse(5)]
    # fewer delivered than the window: all of them, nothing before
    assert len(await store.jobs.recent_latencies(10, kept=2)) == 8


async def test_concurrent_sweeps_and_forgets_count_usage_once(store: Store):
    """Issue #21, point 5: on PostgreSQL two sweeps (or a sweep and a forget) at once each rolled
    the same jobs into the daily totals, overstating spend for good."""
    jobs = [_done(job(user_id=f"U{i % 4}", cost_usd=0.04, created_at=86400.0 * 3 + i)) for i in range(40)]
    for j in jobs:
        await store.jobs.create(j)
    before = await store.policy.usage("T1", 0)
    await asyncio.gather(*(store.policy.sweep("T1", 86400.0 * 5) for _ in range(8)),
                         store.policy.forget("T1", "U1", "forgotten:x"),
                         *(store.policy.sweep("T1", 86400.0 * 5) for _ in range(8)))
    after = await store.policy.usage("T1", 0)
    assert (after.images, round(after.spend, 4)) == (before.images, round(before.spend, 4)) == (40, 1.6)
    lines = await store.policy.usage_lines("T1", 0, 86400.0 * 30)
    assert sum(u.images for u in lines) == 40 and round(sum(u.spend for u in lines), 4) == 1.6


async def test_job_records_are_read_a_page_at_a_time(store: Store):
    same_time = [job(created_at=500.0) for _ in range(4)]  # ties are ordered by id
    jobs = [job(created_at=100.0 + i) for i in range(5)] + same_time + [job(created_at=900.0)]
    for j in jobs:
        await store.jobs.create(j)
    await store.jobs.create(job(created_at=2000.0))  # outside [0, 1000)
    want = sorted(jobs, key=lambda j: (j.created_at, j.id))
    pages, after = [], None
    while page := await store.policy.job_records("T1", 0, 1000, after=after, limit=3):
        pages.append([r.id for r in page])
        after = (page[-1].created_at, page[-1].id)
    assert [len(p) for p in pages] == [3, 3, 3, 1]
    assert [i for p in pages for i in p] == [j.id for j in want]


async def test_a_released_key_can_be_claimed_again(store: Store):
    assert await store.keys.claim("lease", window=3600)
    assert not await store.keys.claim("lease", window=3600)
    await store.keys.release("lease")
    assert await store.keys.claim("lease", window=3600)


async def test_held_previews_and_studio_threads_are_swept(store: Store):
    import time as _time

    old, new = job(), job()
    assert await store.pending.hold("old", [old], dedupe_key=None, keep=1e9)
    await store.studio.save(channel_id="D1", thread_ts="1.0", context={"channel_id": "C1"}, team_id=old.team_id,
                            user_id="U1")
    assert await store.pending.sweep(_time.time() + 1) == 1          # the daily sweep: expired previews
    assert await store.pending.take("old", team_id=old.team_id, user_id=old.user_id, keep=1e9) is None
    assert await store.pending.hold("new", [new], dedupe_key=None, keep=1e9)
    await store.policy.sweep(new.team_id, _time.time() + 1)          # a workspace's retention sweep
    assert await store.pending.take("new", team_id=new.team_id, user_id=new.user_id, keep=1e9) is None
    assert await store.studio.context("D1", "1.0") is None
