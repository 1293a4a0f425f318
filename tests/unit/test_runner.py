"""The runner over in-memory ports: each path of the job state machine, as the person sees it."""

from __future__ import annotations

import asyncio
import time

from lumabot.jobs.identity import luma_user_id
from lumabot.jobs.models import Job, JobState
from lumabot.luma.client import Generation, LumaRateLimited, LumaRejected, LumaUnavailable
from lumabot.ports import DeliveryError, InputError
from lumabot.runner import runner as runner_module
from lumabot.store import StoreUnavailable

from .conftest import CONFIG, eventually, new_job


async def test_a_job_goes_from_queued_to_its_image_in_the_thread(rig):
    job = await rig.run(new_job())
    assert job.state == JobState.DONE
    ((params, user_id),) = rig.luma.creates
    assert params.prompt == "a lighthouse at dusk"
    assert user_id == luma_user_id("T1", "U1", CONFIG.user_hash_salt)  # never the Slack id
    (status,) = rig.notifier.of("status", job.id)
    assert job.status_ts == status.ts
    (upload,) = rig.notifier.uploads
    assert upload.content == f"image at https://outputs.example/{job.generation_id}.png?v=0".encode()
    assert upload.remembered_before_share and job.slack_file_id == upload.file_id
    # seen running at its first poll, completed at its second: kept for the planner's restarts
    assert job.running_seen is not None and 0.0 <= job.running_seen < job.completed_at - job.submitted_at
    # The status message changes only when what it shows changes: posted as generating (a slot
    # was free: the job went straight to Luma), then done.
    assert [shown[0] for _, shown in rig.notifier.posted_shown] == ["generating"]
    assert [shown[0] for _, shown in rig.notifier.status_updates] == ["done"]
    image = await rig.store.images.by_file(job.team_id, upload.file_id)
    assert image is not None and image.generation_id == job.generation_id


async def test_polls_do_not_update_the_status_message(rig):
    rig.luma.script([("queued", None)] + [("processing", None)] * 10 + [("completed", None)])
    job = await rig.run(new_job())
    assert rig.luma.generations[job.generation_id].gets >= 12
    assert [shown[0] for _, shown in rig.notifier.status_updates] == ["done"]


async def test_luma_at_capacity_sends_the_job_back_to_the_line_then_delivers(rig):
    rig.luma.create_errors.append(LumaRateLimited("Too many concurrent jobs", retry_after=0.01,
                                                  kind="concurrency"))
    job = await rig.run(new_job())
    assert job.state == JobState.DONE and len(rig.luma.creates) == 2
    shown = [s for _, s in rig.notifier.status_updates]
    assert ("queued", "capacity", None) in shown  # "waiting for capacity at Luma"


async def test_a_final_luma_answer_fails_the_job_and_says_why_in_the_thread(rig):
    rig.luma.create_errors.append(LumaRejected("Insufficient balance", code="out_of_balance", status=402))
    job = await rig.run(new_job())
    assert job.state == JobState.FAILED and job.failure_code == "out_of_balance"
    (failure,) = rig.notifier.of("failure", job.id)
    assert failure.text == "out_of_balance"
    assert len(rig.luma.creates) == 1 and rig.notifier.uploads == []


async def test_a_create_that_may_have_reached_luma_is_never_sent_again(rig):
    rig.luma.create_errors.append(LumaUnavailable("timed out", maybe_created=True))
    job = await rig.run(new_job())
    assert job.failure_code == "submit_uncertain" and len(rig.luma.creates) == 1


async def test_a_create_that_never_left_is_retried(rig):
    rig.luma.create_errors.append(LumaUnavailable("connection refused", maybe_created=False))
    job = await rig.run(new_job())
    assert job.state == JobState.DONE and len(rig.luma.creates) == 2


async def test_a_retryable_luma_failure_is_tried_once_more(rig):
    rig.luma.script([("failed", "generation_failed")])
    job = await rig.run(new_job())
    assert job.state == JobState.DONE and job.attempts == 2 and len(rig.luma.creates) == 2
    assert ("queued", "retrying", None) in [s for _, s in rig.notifier.status_updates]


async def test_a_final_luma_failure_is_explained(rig):
    rig.luma.script([("failed", "content_moderated")])
    job = await rig.run(new_job())
    assert job.failure_code == "content_moderated" and len(rig.luma.creates) == 1
    assert not job.charged  # refunded by Luma, not counted as spend
    assert rig.notifier.of("failure", job.id)[0].text == "content_moderated"


async def test_a_workspace_policy_on_the_status_message_stops_everything_and_tells_privately(rig):
    rig.notifier.fail("post_status", DeliveryError("restricted", transient=False,
                                                   policy="restricted_action_thread_only_channel"))
    job = await rig.run(new_job())
    assert job.failure_code == "slack_policy"
    assert job.failure_detail == "restricted_action_thread_only_channel"
    assert rig.luma.creates == []  # nothing paid for
    assert len(rig.notifier.of("private", job.id)) == 1


async def test_transient_slack_errors_are_retried(rig):
    rig.notifier.fail("post_status", DeliveryError("ratelimited", transient=True), times=2)
    rig.notifier.fail("upload_image", DeliveryError("500", transient=True), times=2)
    job = await rig.run(new_job())
    assert job.state == JobState.DONE and len(rig.notifier.uploads) == 1


async def test_an_unusable_input_image_fails_the_job_before_luma(rig):
    rig.inputs.fail(InputError("image_no_access"))
    job = await rig.run(new_job())
    assert job.failure_code == "image_no_access" and rig.luma.creates == []


async def test_an_expired_output_url_is_fetched_fresh_once(rig):
    rig.luma.url_version = 0
    first = "https://outputs.example/gen-1.png?v=0"
    rig.outputs.expired.add(first)

    original_get = rig.luma.get

    async def get(gid):  # every later GET mints a new URL
        gen = await original_get(gid)
        if gen.state == "completed":
            rig.luma.url_version += 1
        return gen

    rig.luma.get = get
    job = await rig.run(new_job())
    assert job.state == JobState.DONE
    assert rig.outputs.downloads == [first, "https://outputs.example/gen-1.png?v=1"]


async def test_database_faults_delay_a_job_but_never_lose_it(rig):
    real_save = rig.store.jobs.save
    faults = {"left": 3}

    async def flaky_save(job, **kw):
        if faults["left"] and job.state == JobState.DELIVERING:
            faults["left"] -= 1
            raise StoreUnavailable("database is locked")
        await real_save(job, **kw)

    rig.store.jobs.save = flaky_save
    job = await rig.run(new_job())
    assert job.state == JobState.DONE and faults["left"] == 0
    assert rig.metrics.store_errors._value.get() == 3


async def test_a_create_interrupted_by_a_crash_is_resent_once_then_never(make_rig):
    rig = await make_rig()
    job = new_job()
    job.state, job.status_ts, job.blind_resends = JobState.SUBMITTING, "1.1", 0
    await rig.store.jobs.create(job)
    assert await rig.runner.resume() == 1
    assert (await rig.settled(job.id)).state == JobState.DONE
    assert len(rig.luma.creates) == 1

    again = new_job("second")
    again.state, again.status_ts, again.blind_resends = JobState.SUBMITTING, "1.2", 1
    await rig.store.jobs.create(again)
    await rig.runner.resume()
    done = await rig.settled(again.id)
    assert done.failure_code == "create_uncertain" and len(rig.luma.creates) == 1


async def test_a_drain_lets_a_create_in_flight_finish(rig):
    gate = asyncio.Event()
    real_create = rig.luma.create

    async def slow_create(params, *, user_id):
        await gate.wait()
        return await real_create(params, user_id=user_id)

    rig.luma.create = slow_create
    job = new_job()
    await rig.runner.submit(job)
    await eventually(lambda: rig.runner.shutdown.in_critical)
    drain = asyncio.create_task(rig.runner.drain(timeout=5))
    gate.set()
    await drain
    stored = await rig.store.jobs.get(job.id)
    assert stored.state == JobState.GENERATING and stored.generation_id  # recorded, not lost


FINAL_CODES = ["content_moderated", "budget_exhausted", "image_too_large", "unsupported_format",
               "corrupt_input", "invalid_request"]
RETRYABLE_CODES = ["generation_failed", "output_not_found", "rate_limited"]


async def test_every_final_luma_failure_ends_the_job_without_a_retry(rig):
    rig.luma.script(*[[("failed", code)] for code in FINAL_CODES])
    jobs = [new_job(f"picture {i}", user=f"U{i}") for i in range(len(FINAL_CODES))]
    for job in jobs:
        await rig.runner.submit(job)
    settled = [await rig.settled(job.id) for job in jobs]
    assert sorted(j.failure_code for j in settled) == sorted(FINAL_CODES)
    assert len(rig.luma.creates) == len(FINAL_CODES)
    assert sorted(p.text for p in rig.notifier.of("failure")) == sorted(FINAL_CODES)


async def test_every_retryable_luma_failure_is_tried_twice_then_explained(rig):
    rig.luma.script(*[[("failed", code)] for code in RETRYABLE_CODES for _ in range(2)])
    for code in RETRYABLE_CODES:
        job = await rig.run(new_job(code))
        assert job.failure_code == code and job.attempts == 2
    assert len(rig.luma.creates) == 2 * len(RETRYABLE_CODES)


async def test_a_job_cancelled_elsewhere_is_never_sent_when_its_turn_comes(make_rig):
    """The cancel was recorded by another replica (this one was not told): the move to
    `submitting` fails in the store, so nothing reaches Luma."""
    rig = await make_rig(concurrency=1)
    rig.luma.holding = True
    first, second = new_job("first"), new_job("second", user="U2")
    await rig.runner.submit(first)
    await eventually(lambda: rig.luma.creates)
    await rig.runner.submit(second)
    await eventually(lambda: rig.scheduler.waiting == 1)
    assert await rig.store.jobs.request_cancel(second.id, "U2")
    rig.luma.holding = False
    done = await rig.settled(second.id)
    assert done.state == JobState.CANCELLED and done.cancelled_by == "U2"
    assert [p.prompt for p, _ in rig.luma.creates] == ["first"]
    assert (second.id, ("cancelled", None, None)) in rig.notifier.status_updates
    assert not await rig.store.jobs.request_cancel(first.id, "U1")  # sent to Luma: too late


async def test_after_a_restart_the_likeliest_finished_generations_are_polled_first(make_rig):
    rig = await make_rig()
    now = time.time()

    async def delivered(model: str, latency: float) -> None:
        job = new_job(f"before {model} {latency}", model=model)
        job.state, job.settled, job.attempts = JobState.DONE, True, 1
        job.submitted_at, job.completed_at = now - 5000, now - 5000 + latency
        await rig.store.jobs.create(job)

    for i in range(20):  # what the last run learned: uni-1 takes 1-40 s, uni-1-max 40-135 s
        await delivered("uni-1", 1.0 + i * 2)
        await delivered("uni-1-max", 40.0 + i * 5)

    async def generating(model: str, age: float) -> Job:
        job = new_job(f"{model} sent {age} s ago", model=model)
        gen, _ = await rig.luma.create(job.params, user_id="u")
        job.state, job.status_ts, job.generation_id, job.attempts = JobState.GENERATING, "1.1", gen.id, 1
        job.submitted_at, job.deadline = now - age, now + 30
        await rig.store.jobs.create(job)
        return job

    # oldest first (creation order) would be: max, then the two uni-1
    rig.luma.script(*[[("completed", None)]] * 3)  # each is found finished at its first poll
    slow = await generating("uni-1-max", 100.0)  # 65 % of uni-1-max are done by 100 s
    likely = await generating("uni-1", 35.0)      # 90 % of uni-1 by 35 s
    unlikely = await generating("uni-1", 24.0)    # 60 % by 24 s
    assert await rig.runner.resume() == 3
    for job in (slow, likely, unlikely):
        await rig.settled(job.id)
    first_polls = list(dict.fromkeys(rig.luma.polled))
    assert first_polls == [likely.generation_id, slow.generation_id, unlikely.generation_id]


async def test_a_restart_resumes_every_unfinished_job_batch_by_batch(make_rig, monkeypatch):
    """Every unfinished job is resumed, claimed 64 at a time; the queued ones wait as ids, and
    the generation still at Luma (claimed in the last batch) keeps the one slot: no queued job
    is let through on it until it finishes."""
    monkeypatch.setattr(runner_module, "CLAIM_BATCH", 64)
    rig = await make_rig(concurrency=1)
    rig.luma.holding = True
    for i in range(600):
        job = new_job(f"waiting {i}", user=f"U{i % 7}")
        job.status_ts = f"1.{i}"
        await rig.store.jobs.create(job)
    sent = new_job("sent before the restart")
    gen, _ = await rig.luma.create(sent.params, user_id="u")
    sent.state, sent.status_ts, sent.generation_id, sent.attempts = JobState.GENERATING, "2.0", gen.id, 1
    sent.submitted_at, sent.deadline = time.time(), time.time() + 60
    await rig.store.jobs.create(sent)
    assert await rig.runner.resume() == 601
    assert rig.scheduler.parked == 600 and rig.scheduler.in_flight == 1
    await eventually(lambda: gen.id in rig.luma.polled)
    assert len(rig.luma.creates) == 1  # (the generation made above): the slot is still held
    assert len(rig.runner._tasks) == 1
    rig.luma.holding = False
    await rig.settled(sent.id)
    await eventually(lambda: len(rig.luma.creates) >= 2)
    assert rig.luma.creates[1][0].prompt == "waiting 0"


async def test_a_job_waiting_for_a_slot_holds_no_task_until_its_turn(make_rig):
    rig = await make_rig(concurrency=1)
    rig.luma.holding = True
    jobs = [new_job(f"job {i}", user=f"U{i}") for i in range(4)]
    for job in jobs:
        await rig.runner.submit(job)
    await eventually(lambda: rig.scheduler.parked == 3 and len(rig.runner._tasks) == 1)  # (their tasks end)
    assert rig.runner.active == 4  # one in flight, three parked
    assert [j for j, _ in await rig.scheduler.front(10)] == [j.id for j in jobs[1:]]
    await rig.runner.lines.report_once()  # places shown on parked jobs, loaded from the store
    assert (jobs[1].id, ("queued", None, 1)) in rig.notifier.status_updates
    rig.luma.holding = False
    for job in jobs:
        assert (await rig.settled(job.id)).state == JobState.DONE
    assert [p.prompt for p, _ in rig.luma.creates] == [f"job {i}" for i in range(4)]  # in turn
    # (a job is settled by its task's last write; the task is forgotten a turn of the loop later)
    await eventually(lambda: rig.scheduler.parked == 0 and not rig.runner._tasks)


async def _line_of_three(make_rig, monkeypatch):
    """One slot; A at Luma, B and C waiting, each generation held "processing" while its prompt
    is in `held`. A finishes: B's turn; C is next in line."""
    rig = await make_rig(concurrency=1)
    held = {"A", "B"}
    get = rig.luma.get

    async def held_get(generation_id: str) -> Generation:
        if rig.luma.generations[generation_id].params.prompt in held:
            return Generation(id=generation_id, state="processing")
        return await get(generation_id)

    monkeypatch.setattr(rig.luma, "get", held_get)
    jobs = {p: new_job(p, user=f"U{i}") for i, p in enumerate("ABC")}
    for job in jobs.values():
        await rig.runner.submit(job)
    await eventually(lambda: rig.scheduler.parked == 2)
    held.discard("A")
    await eventually(lambda: [p.prompt for p, _ in rig.luma.creates] == ["A", "B"])
    return rig, jobs, held


async def test_the_job_next_in_line_is_read_ahead_so_its_turn_waits_for_no_read(make_rig, monkeypatch):
    """A freed slot's next create waits for no read from the store: the job next in line was
    read while the slot was still held."""
    rig, jobs, held = await _line_of_three(make_rig, monkeypatch)
    c = jobs["C"].id
    await eventually(lambda: c in rig.runner._ahead and rig.runner._ahead[c].done())
    reads: list[str] = []
    read = rig.store.jobs.get

    async def counted(job_id: str) -> Job | None:
        if len(rig.luma.creates) < 3:  # until C is sent
            reads.append(job_id)
        return await read(job_id)

    monkeypatch.setattr(rig.store.jobs, "get", counted)
    held.discard("B")
    await eventually(lambda: len(rig.luma.creates) == 3)
    assert [p.prompt for p, _ in rig.luma.creates] == ["A", "B", "C"]
    assert c not in reads and not rig.runner._ahead
    assert (await rig.settled(c)).state == JobState.DONE


async def test_a_job_read_ahead_then_cancelled_elsewhere_is_never_sent(make_rig, monkeypatch):
    """The copy read ahead is stale once another replica records a cancel: the move to
    `submitting` is refused, so nothing reaches Luma and the person sees it cancelled."""
    rig, jobs, held = await _line_of_three(make_rig, monkeypatch)
    c = jobs["C"].id
    await eventually(lambda: c in rig.runner._ahead and rig.runner._ahead[c].done())
    assert await rig.store.jobs.request_cancel(c, "U2")
    held.discard("B")
    done = await rig.settled(c)
    assert done.state == JobState.CANCELLED and done.cancelled_by == "U2"
    assert [p.prompt for p, _ in rig.luma.creates] == ["A", "B"]
    assert (c, ("cancelled", None, None)) in rig.notifier.status_updates


async def test_a_job_read_ahead_and_cancelled_here_leaves_the_line_at_once(make_rig, monkeypatch):
    rig, jobs, held = await _line_of_three(make_rig, monkeypatch)
    c = jobs["C"].id
    await eventually(lambda: c in rig.runner._ahead)
    assert await rig.store.jobs.request_cancel(c, "U2")
    rig.runner.cancel(c, "U2")
    assert (await rig.settled(c)).state == JobState.CANCELLED  # while B still runs
    assert not rig.runner._ahead and rig.scheduler.parked == 0
    held.discard("B")
    assert (await rig.settled(jobs["B"].id)).state == JobState.DONE
    assert [p.prompt for p, _ in rig.luma.creates] == ["A", "B"]


async def test_polls_planned_while_nobody_waited_are_planned_again_when_a_backlog_begins(make_rig, monkeypatch):
    """Without a line a generation is polled sparsely; once jobs wait for a slot, a finished
    generation left unseen keeps one of them waiting, so its next poll is planned again."""
    rig = await make_rig(concurrency=1)
    asked: list[bool] = []

    def next_poll_age(key, last_age, *, backlog, polling=1):
        asked.append(backlog)
        return (last_age or 0.0) + (0.0 if backlog else 600.0)  # steady: in ten minutes

    monkeypatch.setattr(rig.runner.polls, "next_poll_age", next_poll_age)
    first = new_job("alone", user="U1")
    await rig.runner.submit(first)
    await eventually(lambda: asked == [False])  # generating, its poll planned for later
    second = new_job("waits", user="U2")
    await rig.runner.submit(second)  # no slot: it waits, and the first's poll comes now
    assert (await rig.settled(first.id)).state == JobState.DONE
    assert asked[:2] == [False, True]


async def test_the_next_poll_is_planned_from_when_the_last_was_sent(rig, monkeypatch):
    """A poll that takes a while to answer does not push every later poll back by its round trip."""
    ages: list[float | None] = []
    slow_get = rig.luma.get

    async def get(generation_id):
        answer = await slow_get(generation_id)
        await asyncio.sleep(0.2)  # a slow answer
        return answer

    def next_poll_age(key, last_age, *, backlog, polling=1):
        ages.append(last_age)
        return (last_age or 0.0) + 0.01

    monkeypatch.setattr(rig.luma, "get", get)
    monkeypatch.setattr(rig.runner.polls, "next_poll_age", next_poll_age)
    job = await rig.run(new_job())
    assert job.state == JobState.DONE
    first, second = ages  # planned before the first poll, then after it (still processing)
    assert first is None and second is not None
    assert second < 0.2 and rig.runner.poll_step.lead > 0.0  # from when it was sent, not answered


async def test_a_generation_planned_for_a_backlog_keeps_that_plan_when_the_line_empties(make_rig, monkeypatch):
    """The last generations of a burst are what the burst's last images wait for: once their
    polls are planned for a backlog, they stay on that plan after the line empties."""
    rig = await make_rig(concurrency=1)
    rig.luma.holding = True
    asked: list[bool] = []

    def next_poll_age(key, last_age, *, backlog, polling=1):
        asked.append(backlog)
        return (last_age or 0.0) + (0.01 if backlog else 600.0)

    monkeypatch.setattr(rig.runner.polls, "next_poll_age", next_poll_age)
    first, second = new_job("first", user="U1"), new_job("waits", user="U2")
    await rig.runner.submit(first)
    await eventually(lambda: asked == [False])
    await rig.runner.submit(second)
    await eventually(lambda: asked.count(True) >= 3)  # polled densely while the second waits
    assert await rig.store.jobs.request_cancel(second.id, "U2")
    rig.runner.cancel(second.id, "U2")
    assert (await rig.settled(second.id)).state == JobState.CANCELLED
    assert rig.scheduler.waiting == 0
    seen = len(asked)
    await eventually(lambda: len(asked) >= seen + 3)  # still polled densely, the line empty
    rig.luma.holding = False
    assert (await rig.settled(first.id)).state == JobState.DONE
    assert asked[1:] == [True] * (len(asked) - 1)


async def test_after_a_restart_the_planner_learns_the_intervals_the_last_run_saw(make_rig):
    """A generation is only known to have finished between two polls: after a restart the planner
    learns that interval again (not the moment it was seen finished, which is late)."""
    rig = await make_rig()
    now = time.time()
    for i in range(20):
        job = new_job(f"before {i}")
        job.state, job.settled, job.attempts = JobState.DONE, True, 1
        job.submitted_at, job.completed_at, job.running_seen = now - 500, now - 500 + 12.0, 8.0
        await rig.store.jobs.create(job)
    await rig.runner.resume()
    learned = rig.runner.polls._learned(("uni-1", "image"))
    assert learned is not None and 8.0 <= learned.age_at(0.5) <= 12.0  # within (8, 12], not at 12
    assert learned.age_at(0.5) < 11.5


async def test_after_a_restart_the_planner_keeps_what_densely_polled_generations_taught_it(make_rig):
    """The intervals of generations polled densely from their first poll are kept past the
    planner's window: after a restart too, read before the window's."""
    rig = await make_rig()
    rig.runner.polls.window = 20   # (keeps 4)
    now = time.time()
    for i in range(24):
        job = new_job(f"before {i}")
        job.state, job.settled, job.attempts = JobState.DONE, True, 1
        job.submitted_at = now - 500 + i
        if i < 4:   # a burst, each seen done within a second, at 11 .. 12 s
            job.completed_at, job.running_seen, job.polled_densely = job.submitted_at + 12.0, 11.0, True
        else:       # then a quiet spell, each seen done at its first poll, at 20 s
            job.completed_at, job.running_seen = job.submitted_at + 20.0, 0.0
        await rig.store.jobs.create(job)
    await rig.runner.resume()
    learned = rig.runner.polls._learned(("uni-1", "image"))
    assert learned is not None and len(learned) == 20
    assert learned.cdf(9.0) < 0.05 and 11.0 <= learned.age_at(0.5) <= 12.5   # not spread over (0, 20 s]


async def test_a_generation_is_kept_for_the_planner_if_polled_densely_from_its_first_poll(make_rig, monkeypatch):
    """Whether a generation is kept past the window is settled when its polls begin (jobs wait
    for a slot), not when a backlog begins later: a long generation is likelier to see one, and
    keeping those would teach the planner latencies longer than they are."""
    rig = await make_rig(concurrency=1)
    for i in range(20):   # learned (before, every generation is polled densely: the fallback's polls)
        rig.runner.polls.record(("uni-1", "image"), 0.01 + 0.001 * i)
    taught: dict[float, bool] = {}
    record_seen = rig.runner.polls.record_seen

    def record(key, running_at, done_at, *, dense=False):
        taught[done_at] = dense
        record_seen(key, running_at, done_at, dense=dense)

    monkeypatch.setattr(rig.runner.polls, "record_seen", record)
    jobs = [new_job(prompt, user=f"U{i}") for i, prompt in enumerate("ABC")]
    rig.luma.holding = True
    await rig.runner.submit(jobs[0])
    await eventually(lambda: rig.luma.polled)   # A is polled, nobody waiting
    for job in jobs[1:]:   # B and C wait for A's slot (A's polls planned again), then B runs while C waits
        await rig.runner.submit(job)
    rig.luma.holding = False
    done = [await rig.settled(job.id) for job in jobs]
    assert [job.state for job in done] == [JobState.DONE] * 3
    assert [job.polled_densely for job in done] == [False, True, False]
    assert sorted(taught.values()) == [False, False, True] and len(taught) == 3


async def test_a_generation_resumed_after_a_restart_is_not_kept_for_the_planner(make_rig):
    """A generation still running when the last process stopped is likelier a long one: what it
    teaches is not kept past the window, though its polls are dense (nothing learned yet)."""
    rig = await make_rig()
    now = time.time()
    resumed = new_job("sent before the restart")
    gen, _ = await rig.luma.create(resumed.params, user_id="u")
    resumed.state, resumed.status_ts, resumed.generation_id, resumed.attempts = JobState.GENERATING, "1.1", gen.id, 1
    resumed.submitted_at, resumed.deadline = now - 30, now + 30
    await rig.store.jobs.create(resumed)
    assert await rig.runner.resume() == 1
    new = await rig.run(new_job("sent after it"))
    assert (await rig.settled(resumed.id)).state == new.state == JobState.DONE
    assert not (await rig.store.jobs.get(resumed.id)).polled_densely and new.polled_densely


async def test_stop_returns_once_what_it_stopped_has_finished(make_rig, monkeypatch):
    """A read it had begun (here the read ahead of the job next in line) is cancelled and waited
    for: nothing the runner started holds a database connection after stop(), which closes the
    store next."""
    read, cleaning, released = None, asyncio.Event(), asyncio.Event()
    cleaned: list[str] = []

    async def slow_for_c(job_id: str) -> Job | None:
        job = await read(job_id)
        if job is not None and job.params.prompt == "C":
            try:
                await asyncio.Event().wait()   # the read of C never answers
            except asyncio.CancelledError:
                cleaning.set()
                await released.wait()           # (a connection going back to its pool)
                cleaned.append(job_id)
                raise
        return job

    rig = await make_rig(concurrency=1)
    read = rig.store.jobs.get
    monkeypatch.setattr(rig.store.jobs, "get", slow_for_c)

    async def this_rig(**_kw):
        return rig

    _, jobs, _ = await _line_of_three(this_rig, monkeypatch)
    c = jobs["C"].id
    await eventually(lambda: c in rig.runner._ahead)
    stopping = asyncio.create_task(rig.runner.stop())
    try:
        await cleaning.wait()
        await eventually(lambda: not rig.runner._tasks)   # the jobs' tasks stopped
        for _ in range(20):
            await asyncio.sleep(0)   # (what is left of stop() takes a few turns of the loop)
        assert not stopping.done()
    finally:
        released.set()
    await stopping
    assert cleaned == [c]


async def test_a_job_that_goes_straight_to_luma_records_its_status_message_with_its_create(rig, monkeypatch):
    """A slot was free: the status message's ts is written with the `submitting` write, the
    create's first (one commit fewer), not on its own."""
    writes: list[dict] = []
    save = rig.store.jobs.save

    async def recorded(job: Job, **kw) -> None:
        changes, _ = rig.store.jobs._written.changes(job)
        writes.append(changes)
        await save(job, **kw)

    monkeypatch.setattr(rig.store.jobs, "save", recorded)
    job = await rig.run(new_job())
    assert job.state == JobState.DONE and job.status_ts == rig.notifier.of("status", job.id)[0].ts
    first = writes[0]
    assert first["state"] == "submitting" and first["status_ts"] == job.status_ts


async def test_a_job_that_must_wait_after_all_records_its_status_message_before_it_waits(make_rig, monkeypatch):
    """A slot looked free when its status message went out ("Generating…"), but another job
    took it meanwhile: the job waits in line without a task, so its status message's ts is
    written before it does. When its turn comes (read from the store) it goes on under that
    message: one status message, never a second. (With Luma's slots in the database:
    test_replicas.py.)"""
    await must_wait_after_all(await make_rig(concurrency=1), monkeypatch)


async def must_wait_after_all(rig, monkeypatch) -> None:
    """One slot: A's status message goes out while the slot looks free, B takes the slot
    meanwhile; A parks with its status message's ts stored, and goes on under it."""
    rig.luma.holding = True
    post = rig.notifier.post_status
    first_posting, let_first_go = asyncio.Event(), asyncio.Event()

    async def slow_for_a(job: Job) -> str:
        if job.params.prompt == "A":
            first_posting.set()
            await let_first_go.wait()
        return await post(job)

    monkeypatch.setattr(rig.notifier, "post_status", slow_for_a)
    a, b = new_job("A"), new_job("B", user="U2")
    await rig.runner.submit(a)
    await first_posting.wait()             # A's status message goes out as "Generating…"
    await rig.runner.submit(b)             # B takes the slot meanwhile
    await eventually(lambda: len(rig.luma.creates) == 1)
    let_first_go.set()
    await eventually(lambda: rig.scheduler.parked == 1)   # A waits in line, its task gone
    stored = await rig.store.jobs.get(a.id)
    assert stored is not None and stored.status_ts == rig.notifier.of("status", a.id)[0].ts
    rig.luma.holding = False
    assert (await rig.settled(a.id)).state == JobState.DONE
    assert len(rig.notifier.of("status", a.id)) == 1
    assert [p.prompt for p, _ in rig.luma.creates] == ["B", "A"]
