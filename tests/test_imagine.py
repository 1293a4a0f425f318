"""`/imagine` end to end: what the user types, what Luma receives, what lands in the thread."""

from __future__ import annotations

import json
import time

import aiohttp
import pytest

from lumabot.jobs.failures import FAILURE_MESSAGES, failure_message
from lumabot.jobs.models import ASPECT_RATIOS, JobState
from lumabot.testing.fake_luma import Outcome
from lumabot.testing.fake_slack import app_mention_event, app_uninstalled_event, tokens_revoked_event


def _images(h, job):
    return h.slack.files_in_thread(job.channel_id, job.status_ts)


async def test_imagine_posts_status_and_delivers_image_in_thread(harness):
    h = harness
    status, body = await h.command("a lighthouse at dusk --ar 16:9")  # (ack times: bench/ack.py)
    assert status == 200 and not (body and json.loads(body).get("text"))

    job = await h.wait_job(lambda j: j.status_ts is not None)
    root = h.slack.message("C1", job.status_ts)
    assert root.thread_ts is None  # the status message is top level: the thread root
    assert "<@U1>" in root.text and "a lighthouse at dusk" in root.text and "16:9" in root.text
    assert "--ar" not in root.text

    job = await h.finished(job.id)
    assert job.state == JobState.DONE
    files = _images(h, job)
    assert len(files) == 1
    (gen_id,) = h.luma.generations
    assert files[0].content == h.luma.output_bytes(gen_id)
    assert files[0].filename == "a-lighthouse-at-dusk.png"
    assert files[0].alt_txt == "a lighthouse at dusk"
    final = h.slack.message("C1", job.status_ts).text
    assert "Done in" in final

    (body,) = h.luma.creates
    assert body["prompt"] == "a lighthouse at dusk"
    assert body["aspect_ratio"] == "16:9"
    assert body["model"] == "uni-1"
    assert body["type"] == "image"


async def test_status_message_updated_on_state_changes_only(harness):
    h = harness
    h.luma.script(Outcome(latency=0.4))  # ~20 polls at 0.02 s
    job = await h.imagine("a slow painting of the sea")
    job = await h.finished(job.id)
    msg = h.slack.message("C1", job.status_ts)
    states = [text for text, _blocks in msg.history]
    # A slot was free: posted as "Generating…" (it went straight to Luma), then done: one update.
    assert len(states) == 2, states
    assert "Generating" in states[0] and "Done in" in states[1]
    assert not any(b.get("block_id") == "waiting" for b in msg.history[0][1])  # no Cancel: it is on its way
    assert h.luma.generations[job.generation_id].get_count > 3
    assert h.slack.count_calls("chat.update") == 1


async def test_a_job_that_waits_for_a_slot_says_queued_then_generating(start_bot):
    h = await start_bot(LUMABOT_LUMA_CONCURRENCY="1")
    h.luma.script(Outcome(hold=True))
    first = await h.imagine("holding the only slot")
    await h.luma.wait_for(lambda: len(h.luma.generations) == 1)
    waiting = await h.imagine("next in line")
    h.luma.release_all()
    waiting = await h.finished(waiting.id)
    states = [text for text, _blocks in h.slack.message("C1", waiting.status_ts).history]
    assert "Queued" in states[0] and any("Generating" in s for s in states[1:]) and "Done in" in states[-1]
    assert "Generating" in h.slack.message("C1", first.status_ts).history[0][0]


async def test_flags_reach_luma_and_are_removed_from_the_prompt(harness):
    # (Every flag and spelling: tests/unit/test_flags.py.)
    h = harness
    job = await h.imagine("--ar 2:3 a manga hero \u2014style manga --max")
    await h.finished(job.id)
    (body,) = h.luma.creates
    assert body["prompt"] == "a manga hero"
    assert (body["aspect_ratio"], body["style"], body["model"]) == ("2:3", "manga", "uni-1-max")


async def test_jpeg_output_gets_a_jpg_file_name(harness):
    h = harness
    job = await h.finished((await h.imagine("a red fox --format jpeg")).id)
    (f,) = _images(h, job)
    assert f.filename == "a-red-fox.jpg"
    assert f.content[:3] == b"\xff\xd8\xff"


async def test_bad_input_is_explained_and_nothing_is_submitted(harness):
    # (Every kind of bad input and its explanation: tests/unit/test_flags.py.)
    h = harness
    text, must_contain = "a cat --ar 4:3", ["`4:3` is not an aspect ratio", *ASPECT_RATIOS]
    status, body = await h.command(text)
    assert status == 200
    reply = json.loads(body)
    assert reply["response_type"] == "ephemeral"
    for piece in must_contain:
        assert piece in reply["text"], (piece, reply["text"])
    assert h.luma.requests == []
    assert await h.jobs() == []
    assert h.slack.count_calls("chat.postMessage") == 0


async def test_prompt_of_exactly_6000_chars_is_accepted(harness):
    h = harness
    job = await h.imagine("y" * 6000)
    await h.finished(job.id)
    assert len(h.luma.creates[0]["prompt"]) == 6000


async def test_empty_imagine_opens_the_form(harness):
    status, body = await harness.command("")
    assert status == 200 and not body
    await harness.slack.wait_for(lambda: len(harness.slack.views) == 1)
    assert harness.slack.views[0].view["callback_id"] == "imagine_modal"
    assert harness.luma.requests == []


@pytest.mark.parametrize("text", ["", "help", "what"])
async def test_luma_command_answers_with_help(harness, text):
    status, body = await harness.command(text, command="/luma")
    reply = json.loads(body)
    assert status == 200 and reply["response_type"] == "ephemeral"
    assert "/imagine" in reply["text"] and "--max" in reply["text"]


async def test_luma_user_id_is_a_stable_opaque_hash(harness):
    h = harness
    for user in ("U1", "U1", "U2"):
        job = await h.imagine("a tree", user_id=user)
        await h.finished(job.id)
        h.luma.script()  # no-op: keep default outcomes
    ids = [b["user_id"] for b in h.luma.creates]
    assert ids[0] == ids[1] != ids[2]
    for uid in ids:
        assert "U1" not in uid and "U2" not in uid and h.slack.team_id not in uid
        assert len(uid) <= 256


# -- failures --------------------------------------------------------------------------------

async def test_final_failure_codes_are_explained_in_the_thread(harness):
    # (Every code: tests/unit/test_runner.py and tests/unit/test_blocks.py.)
    h, code = harness, "content_moderated"
    h.luma.script(Outcome(state="failed", failure_code=code, failure_reason="upstream says no"))
    job = await h.finished((await h.imagine("a forbidden thing")).id)
    assert job.state == JobState.FAILED
    texts = h.thread_texts(job.status_ts)
    assert any(FAILURE_MESSAGES[code] in t for t in texts), texts
    assert "Failed" in h.status_text(job)
    assert len(h.luma.creates) == 1  # not retried
    assert _images(h, job) == []


async def test_retryable_failure_is_retried_once_then_explained(harness):
    h, code = harness, "output_not_found"
    h.luma.script(Outcome(state="failed", failure_code=code), Outcome(state="failed", failure_code=code))
    job = await h.finished((await h.imagine("an unlucky picture")).id)
    assert job.state == JobState.FAILED
    assert len(h.luma.creates) == 2
    texts = h.thread_texts(job.status_ts)
    assert sum(FAILURE_MESSAGES[code] in t for t in texts) == 1, texts


async def test_retryable_failure_then_success_delivers_one_image(harness):
    h = harness
    h.luma.script(Outcome(state="failed", failure_code="generation_failed"))
    job = await h.finished((await h.imagine("second time lucky")).id)
    assert job.state == JobState.DONE
    assert len(h.luma.creates) == 2
    (f,) = _images(h, job)
    assert f.content == h.luma.output_bytes(job.generation_id)
    history = [t for t, _ in h.slack.message("C1", job.status_ts).history]
    assert any("trying once more" in t for t in history), history


@pytest.mark.parametrize("status, detail, code", [
    (402, "Insufficient balance", "out_of_balance"),
    (401, "Invalid API key", "misconfigured"),
])
async def test_synchronous_luma_errors_are_explained(harness, caplog, status, detail, code):
    h = harness
    h.luma.fail_next("POST", status, detail)
    job = await h.finished((await h.imagine("a costly picture")).id)
    assert job.state == JobState.FAILED
    texts = h.thread_texts(job.status_ts)
    assert any(FAILURE_MESSAGES[code] in t for t in texts), texts
    assert len(h.luma.requests) == 1  # no retry
    if code == "misconfigured":
        loud = [r for r in caplog.records if r.levelname == "CRITICAL"]
        assert loud and "LUMA_AGENTS_API_KEY" in loud[0].getMessage()
        assert h.luma.api_key not in caplog.text


async def test_luma_400_detail_is_shown(harness):
    h = harness
    h.luma.fail_next("POST", 400, "prompt: contains unsupported characters")
    job = await h.finished((await h.imagine("a picture")).id)
    texts = h.thread_texts(job.status_ts)
    assert any(failure_message("bad_request", "prompt: contains unsupported characters") in t
               for t in texts), texts


async def test_generation_not_finished_by_deadline_gets_timeout_message(start_bot):
    h = await start_bot(LUMABOT_GENERATION_TIMEOUT="0.3")
    h.luma.script(Outcome(hold=True))
    job = await h.finished((await h.imagine("a never ending story")).id)
    assert job.state == JobState.FAILED and job.failure_code == "timeout"
    assert any(FAILURE_MESSAGES["timeout"] in t for t in h.thread_texts(job.status_ts))


# -- Luma faults -----------------------------------------------------------------------------

async def test_luma_429_on_submit_waits_and_job_stays_queued(harness):
    h = harness
    h.luma.fail_next("POST", 429, "Rate limit exceeded", count=2,
                     headers={"Retry-After": "0.2", "X-RateLimit-Remaining": "0"})
    job = await h.finished((await h.imagine("a busy day")).id)
    assert job.state == JobState.DONE
    assert len(h.luma.creates) == 1
    history = [t for t, _ in h.slack.message("C1", job.status_ts).history]
    waiting = [t for t in history if "waiting for capacity" in t]
    assert len(waiting) == 1, history  # shown once, not once per 429
    posts = [r for r in h.luma.requests if r.method == "POST"]
    assert posts[2].at - posts[0].at >= 0.35  # Retry-After was honoured twice


async def test_luma_5xx_and_lost_connections_on_get_are_retried(harness):
    h = harness
    h.luma.fail_next("GET", 500, "Internal error", count=2)
    h.luma.fail_next("GET", 502, "Upstream unavailable")
    h.luma.drop_next("GET")
    job = await h.finished((await h.imagine("a resilient picture")).id)
    assert job.state == JobState.DONE
    assert len(_images(h, job)) == 1


async def test_luma_get_timeout_is_retried(start_bot):
    h = await start_bot(LUMABOT_LUMA_REQUEST_TIMEOUT="0.3")
    h.luma.stall_next("GET", 1.0)  # longer than the bot's request timeout
    job = await h.finished((await h.imagine("a patient picture")).id, timeout=8)
    assert job.state == JobState.DONE
    assert len(_images(h, job)) == 1


async def test_luma_502_on_submit_is_retried_without_duplicates(harness):
    h = harness
    h.luma.fail_next("POST", 502, "Upstream unavailable", count=2)
    job = await h.finished((await h.imagine("try again")).id)
    assert job.state == JobState.DONE
    assert len(h.luma.generations) == 1


@pytest.mark.parametrize("fault", ["answer_lost", "timeout"])
async def test_submit_whose_answer_is_lost_is_not_sent_again(start_bot, fault):
    """No idempotency key: a create that may have reached Luma is never repeated."""
    h = await start_bot(LUMABOT_LUMA_REQUEST_TIMEOUT="0.3")
    if fault == "answer_lost":
        h.luma.drop_next("POST", after_create=True)
    else:
        h.luma.stall_next("POST", 1.0)  # longer than the bot's request timeout
    job = await h.finished((await h.imagine("a picture worth paying for once")).id, timeout=8)
    assert job.state == JobState.FAILED and job.failure_code == "submit_uncertain"
    assert len([r for r in h.luma.requests if r.method == "POST"]) == 1
    assert any(FAILURE_MESSAGES["submit_uncertain"] in t for t in h.thread_texts(job.status_ts))


async def test_expired_output_url_gets_a_fresh_one(harness):
    h = harness
    h.luma.fail_next("DOWNLOAD", 403, "Request has expired")
    job = await h.finished((await h.imagine("an old link")).id)
    assert job.state == JobState.DONE
    (f,) = _images(h, job)
    assert f.content == h.luma.output_bytes(job.generation_id)
    downloads = [r for r in h.luma.requests if r.path.startswith("/outputs/")]
    assert len(downloads) == 2 and downloads[0].status == 403 and downloads[1].status == 200


# -- Slack faults ----------------------------------------------------------------------------

async def test_slack_429_on_upload_is_retried_and_image_posted_once(harness):
    h = harness
    h.slack.fail_next("files.completeUploadExternal", status=429, retry_after=1)
    job = await h.finished((await h.imagine("a rate limited picture")).id, timeout=8)
    assert job.state == JobState.DONE
    assert len(_images(h, job)) == 1


async def test_slack_errors_beyond_sdk_retries_are_retried_by_lumabot(harness):
    h = harness
    h.slack.fail_next("files.getUploadURLExternal", status=503, count=4)
    h.slack.fail_upload_next(500)
    h.slack.fail_next("files.completeUploadExternal", error="internal_error")
    job = await h.finished((await h.imagine("a stubborn picture")).id, timeout=10)
    assert job.state == JobState.DONE
    files = _images(h, job)
    assert len(files) == 1 and files[0].content == h.luma.output_bytes(job.generation_id)


async def test_bot_not_in_channel_is_told_privately_and_nothing_is_generated(harness):
    h = harness
    h.slack.set_channel("C9", member=False)
    status, body = await h.command("a secret picture", channel_id="C9")
    assert status == 200
    await h.slack.wait_for(lambda: len(h.slack.responses) == 1)
    reply = h.slack.responses[0].body if hasattr(h.slack.responses[0], "body") else h.slack.responses[0]
    assert "/invite @lumabot" in json.dumps(reply)
    assert h.luma.requests == []


# -- Slack requests --------------------------------------------------------------------------


async def test_events_url_verification_and_uninstall_events_are_answered(harness):
    """Slack's check of the Request URL gets its challenge back; the uninstall and revocation
    events the manifest subscribes to are acknowledged and change nothing."""
    h = harness
    r = await h.slack.peer.post_url_verification(h.url, challenge="3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P")
    assert r.status == 200 and "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P" in r.body
    for event in (app_uninstalled_event(), tokens_revoked_event()):
        status, body, *_ = await h.slack.post_event(h.url, event)
        assert status == 200 and not body
    assert h.slack.count_calls("chat.postMessage") == 0 and await h.jobs() == []

async def test_event_retries_never_start_a_second_generation(harness):
    h = harness
    event = app_mention_event("<@UBOT> a lighthouse", user="U1", channel="C1")
    r1 = await h.slack.post_event(h.url, event, event_id="Ev001")
    r2 = await h.slack.post_event(h.url, event, event_id="Ev001", retry_num=1, retry_reason="http_timeout")
    r3 = await h.slack.post_event(h.url, event, event_id="Ev001", retry_num=2, retry_reason="http_timeout")
    assert [r[0] for r in (r1, r2, r3)] == [200, 200, 200]
    job = await h.wait_job(lambda j: j.state.finished)
    assert len(await h.jobs()) == 1
    assert len(h.luma.creates) == 1
    # The mention's own thread receives the status and the image.
    assert job.thread_ts == event["ts"]
    assert len(h.slack.files_in_thread("C1", event["ts"])) == 1


@pytest.mark.parametrize("tamper", ["bad_signature", "missing_signature", "stale_timestamp"])
async def test_bad_signature_gets_401_and_does_nothing(harness, tamper):
    h = harness
    from urllib.parse import urlencode

    from lumabot.testing.fake_slack import sign_request, slash_command_payload

    body = urlencode(slash_command_payload("/imagine", "a forged picture", team_id=h.slack.team_id,
                                           response_url=h.slack.new_response_url())).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if tamper == "bad_signature":
        headers.update(sign_request(body, "not-the-secret"))
    elif tamper == "stale_timestamp":
        headers.update(sign_request(body, h.slack.signing_secret, timestamp=int(time.time()) - 3600))
    async with aiohttp.ClientSession(trust_env=False) as s:
        async with s.post(h.url, data=body, headers=headers) as r:
            assert r.status == 401
    assert h.luma.requests == [] and await h.jobs() == []
    assert h.slack.count_calls("chat.postMessage") == 0


async def test_healthz_answers_200_when_ready(harness):
    async with aiohttp.ClientSession(trust_env=False) as s:
        async with s.get(f"http://127.0.0.1:{harness.port}/healthz") as r:
            assert r.status == 200
