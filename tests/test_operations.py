"""What operators see: /metrics, logs, and a graceful SIGTERM."""

from __future__ import annotations

import json
import signal

import aiohttp

from lumabot.jobs.models import JobState
from lumabot.testing.fake_luma import Outcome

from .conftest import bot_env
from lumabot.testing.process import BotProcess, free_port

from .test_restart import _all_jobs, _wait


async def _get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession(trust_env=False) as s:
        async with s.get(url) as r:
            return r.status, await r.text()


def _value(text: str, name: str, labels: str = "") -> float:
    for line in text.splitlines():
        if line.startswith(name + (labels if labels else "")) and not line.startswith("#"):
            head, _, value = line.rpartition(" ")
            if labels or head == name:
                return float(value)
    raise AssertionError(f"{name}{labels} not in metrics")


async def test_metrics_endpoint_reports_jobs_requests_latencies_and_errors(harness):
    h = harness
    h.slack.fail_next("chat.update", error="ratelimited")  # a Slack API error, by method
    job = await h.finished((await h.imagine("a measured picture")).id)
    assert job.state == JobState.DONE
    h.luma.script(Outcome(state="failed", failure_code="content_moderated"))
    await h.finished((await h.imagine("a flagged picture")).id)
    status, text = await _get(f"http://127.0.0.1:{h.port}/metrics")
    assert status == 200
    assert _value(text, "lumabot_jobs_finished_total", '{outcome="done"}') == 1
    assert _value(text, "lumabot_jobs_finished_total", '{outcome="failed"}') == 1
    assert _value(text, "lumabot_luma_requests_total", '{kind="create",outcome="ok"}') == 2
    assert _value(text, "lumabot_luma_requests_total", '{kind="get",outcome="ok"}') >= 2
    assert _value(text, "lumabot_generation_latency_seconds_count", '{model="uni-1"}') == 1  # completed only
    assert _value(text, "lumabot_delivery_latency_seconds_count") == 1
    assert _value(text, "lumabot_slack_api_errors_total", '{error="ratelimited",method="chat.update"}') == 1
    assert _value(text, "lumabot_queue_depth") == 0
    assert _value(text, "lumabot_jobs", '{state="queued"}') == 0
    assert "lumabot_event_loop_lag_seconds_bucket" in text
    import gc
    gc.collect()  # a full collection is measured
    status, text = await _get(f"http://127.0.0.1:{h.port}/metrics")
    assert _value(text, "lumabot_gc_pause_seconds_count") >= 1
    for secret in (h.slack.bot_token, h.slack.signing_secret, h.luma.api_key):
        assert secret not in text


async def test_sigterm_finishes_uploads_in_progress_and_leaves_the_rest(tmp_path, slack, luma):
    env = bot_env(tmp_path, slack, luma, LUMABOT_LOG_FORMAT="json")
    db_path = tmp_path / "lumabot.db"
    bot = BotProcess(env, tmp_path)
    await bot.start()
    try:
        luma.script(Outcome(latency=0.05), Outcome(hold=True))
        gate = slack.hold("files.completeUploadExternal")
        await slack.post_command(bot.url, "/imagine", "uploading when stopped", user_id="U1", channel_id="C1")
        await slack.wait_for(lambda: slack.held["files.completeUploadExternal"] == 1)
        await slack.post_command(bot.url, "/imagine", "still generating", user_id="U2", channel_id="C1")
        await luma.wait_for(lambda: len(luma.generations) == 2)
        luma.fail_next("POST", 402, "Insufficient balance")
        await slack.post_command(bot.url, "/imagine", "no money", user_id="U3", channel_id="C1")

        async def failed_once():
            return any(j.state == JobState.FAILED and j.settled for j in await _all_jobs(db_path))
        await _wait(failed_once)
        bot.proc.send_signal(signal.SIGTERM)

        async def stopping():
            return "finishing uploads in progress" in bot.log_text
        await _wait(stopping)  # the upload is released only once the shutdown has begun
        slack.release("files.completeUploadExternal")
        gate.set()
        rc = await bot.wait(12)
    finally:
        await bot.stop()
    stderr = bot.log_text
    assert rc == 0, stderr
    jobs = {j.params.prompt: j for j in await _all_jobs(db_path)}
    assert jobs["uploading when stopped"].state == JobState.DONE
    assert len([f for f in slack.files if f.shared]) == 1
    pending = jobs["still generating"]
    assert pending.state == JobState.GENERATING and not pending.settled  # left for the next start

    # Logs: JSON, one event per line, with context, no secrets.
    events = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert events and all({"ts", "level", "logger", "message"} <= set(e) for e in events)
    refused = [e for e in events if "refused" in e["message"] and e.get("luma_request_id")]
    assert refused and refused[0]["job_id"] == jobs["no money"].id and refused[0]["channel"] == "C1"
    submitted = [e for e in events if e["message"] == "submitted"]
    assert submitted and all(e.get("generation_id") for e in submitted)
    for secret in (slack.bot_token, slack.signing_secret, luma.api_key):
        assert secret not in stderr

    # The next start picks the pending job up.
    restarted = BotProcess(env, tmp_path)
    await restarted.start()
    try:
        luma.release_all()

        async def all_settled():
            return all(j.settled for j in await _all_jobs(db_path))
        await _wait(all_settled)
    finally:
        await restarted.stop()
    outcome = {j.params.prompt: (j.state, j.failure_code) for j in await _all_jobs(db_path)}
    assert outcome["still generating"] == (JobState.DONE, None)
    assert len([f for f in slack.files if f.shared]) == 2


async def test_socket_mode_serves_health_and_metrics_on_the_metrics_port(tmp_path, slack, luma):
    port = free_port()
    env = bot_env(tmp_path, slack, luma, SLACK_APP_TOKEN=slack.app_token, LUMABOT_METRICS_PORT=str(port))
    env.pop("SLACK_SIGNING_SECRET")
    bot = BotProcess(env, tmp_path, health_port=port)  # /healthz is on the metrics port
    await bot.start()
    try:
        await slack.wait_socket_connected()
        status, text = await _get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200 and "lumabot_queue_depth" in text
        # what start built is kept out of the collector's way (a full collection stops acks)
        assert _value(text, "lumabot_gc_frozen_objects") > 10_000
        assert "lumabot_gc_pause_seconds_bucket" in text
        async with aiohttp.ClientSession(trust_env=False) as s:
            async with s.post(f"http://127.0.0.1:{port}/slack/events", data=b"{}") as r:
                assert r.status in (404, 405)  # Socket Mode takes no HTTP requests from Slack
    finally:
        await bot.stop()


def test_once_up_what_start_built_is_frozen_and_young_collections_are_rarer():
    """`lumabot run` keeps what start built out of the collector's way, and collects the young
    generation far less often than Python does (at its 700, a request's objects were counted old
    and full collections of 50-100 ms followed every few seconds under load)."""
    import gc

    from lumabot.app import keep_out_of_collections

    before = gc.get_threshold()
    try:
        keep_out_of_collections()
        assert gc.get_freeze_count() > 10_000
        assert gc.get_threshold()[0] >= 10 * before[0] and gc.get_threshold()[2] > before[2]
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()
