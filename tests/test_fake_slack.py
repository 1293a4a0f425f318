"""The fake Slack, proven against the real slack_sdk / slack_bolt clients."""

from __future__ import annotations

import asyncio
import hashlib
import io

import json

import aiohttp
import pytest
from aiohttp import web
from PIL import Image
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from lumabot.testing.fake_slack import (
    FakeSlack,
    Message,
    UploadedFile,
    app_mention_event,
    block_actions_payload,
    iter_pattern,
    message_event,
    sign_request,
    slash_command_payload,
    validate_blocks,
)

from .conftest import served


@pytest.fixture
async def fake():
    async with FakeSlack() as f:
        yield f


@pytest.fixture
def client(fake):
    return AsyncWebClient(token=fake.bot_token, base_url=fake.api_url)


def png_bytes(color=(200, 30, 30), size=(8, 6)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


# ----------------------------------------------------------------------------- Web API basics


async def test_auth_test_and_scopes_header(fake, client):
    r = await client.auth_test()
    assert r["ok"] and r["user_id"] == "UBOT" and r["bot_id"] == "BBOT" and r["team_id"] == "T0TEST"
    assert "files:write" in r.headers["x-oauth-scopes"].split(",")
    assert fake.calls[-1][0] == "auth.test"


async def test_bad_tokens(fake):
    with pytest.raises(SlackApiError) as e:
        await AsyncWebClient(token="xoxb-wrong", base_url=fake.api_url).auth_test()
    assert e.value.response["error"] == "invalid_auth"
    with pytest.raises(SlackApiError) as e:
        await AsyncWebClient(base_url=fake.api_url).auth_test()
    assert e.value.response["error"] == "not_authed"
    with pytest.raises(SlackApiError) as e:
        await AsyncWebClient(token=fake.app_token, base_url=fake.api_url).auth_test()
    assert e.value.response["error"] == "not_allowed_token_type"
    with pytest.raises(SlackApiError) as e:
        await AsyncWebClient(token=fake.bot_token, base_url=fake.api_url).apps_connections_open(
            app_token=fake.bot_token
        )
    assert e.value.response["error"] == "not_allowed_token_type"
    r = await AsyncWebClient(base_url=fake.api_url).apps_connections_open(app_token=fake.app_token)
    assert r["url"].startswith("ws://127.0.0.1:")


async def test_token_as_form_param_and_unknown_method(fake):
    async with aiohttp.ClientSession(trust_env=False) as s:
        async with s.post(fake.api_url + "auth.test", data={"token": fake.bot_token}) as r:
            assert (await r.json())["ok"] is True
        async with s.post(fake.api_url + "no.such", data={"token": fake.bot_token}) as r:
            assert await r.json() == {"ok": False, "error": "unknown_method", "req_method": "no.such"}


async def test_post_update_delete_history(fake, client):
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*queued*"}}]
    r = await client.chat_postMessage(channel="C1", text="queued", blocks=blocks)
    ts = r["ts"]
    assert r["channel"] == "C1" and r["message"]["bot_id"] == "BBOT"
    r2 = await client.chat_postMessage(channel="C1", text="second")
    assert float(r2["ts"]) > float(ts)
    await client.chat_update(channel="C1", ts=ts, text="running")
    await client.chat_update(channel="C1", ts=ts, text="done", blocks=[])
    m = fake.message("C1", ts)
    assert [v[0] for v in m.history] == ["queued", "running", "done"]
    assert m.history[1][1] == blocks  # blocks kept when the update gives only text
    assert m.text == "done" and m.blocks == []
    assert [x.ts for x in fake.top_level("C1")] == [ts, r2["ts"]]

    with pytest.raises(SlackApiError) as e:
        await client.chat_update(channel="C1", ts="1.000001", text="x")
    assert e.value.response["error"] == "message_not_found"

    await client.chat_delete(channel="C1", ts=r2["ts"])
    assert fake.message("C1", r2["ts"]).deleted
    assert [x.ts for x in fake.top_level("C1")] == [ts]


async def test_threads_and_channel_rules(fake, client):
    parent = (await client.chat_postMessage(channel="C1", text="parent"))["ts"]
    reply = (await client.chat_postMessage(channel="C1", text="reply", thread_ts=parent))["ts"]
    assert [m.text for m in fake.thread("C1", parent)] == ["reply"]
    replies = await client.conversations_replies(channel="C1", ts=parent)
    assert [m["text"] for m in replies["messages"]] == ["parent", "reply"]
    for bad in (reply, "1234.567890"):
        with pytest.raises(SlackApiError) as e:
            await client.chat_postMessage(channel="C1", text="x", thread_ts=bad)
        assert e.value.response["error"] == "thread_not_found"

    fake.set_channel("C2", member=False)
    fake.set_channel("G3", member=False, private=True)
    fake.set_channel("C4", exists=False)
    for ch, err in (("C2", "not_in_channel"), ("G3", "channel_not_found"), ("C4", "channel_not_found")):
        with pytest.raises(SlackApiError) as e:
            await client.chat_postMessage(channel=ch, text="x")
        assert e.value.response["error"] == err
    with pytest.raises(SlackApiError) as e:
        await client.chat_postEphemeral(channel="C2", user="U1", text="x")
    assert e.value.response["error"] == "not_in_channel"
    r = await client.chat_postEphemeral(channel="C1", user="U1", text="only you", thread_ts=parent)
    assert fake.ephemerals[-1].user == "U1" and fake.ephemerals[-1].thread_ts == parent and r["message_ts"]
    assert fake.count_calls("chat.postMessage") == 7


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")
async def test_block_kit_validation(fake, client):
    with pytest.raises(SlackApiError) as e:
        await client.chat_postMessage(channel="C1", text="x", blocks=[{"type": "divider"}] * 51)
    assert e.value.response["error"] == "invalid_blocks"
    with pytest.raises(SlackApiError) as e:
        await client.chat_postMessage(
            channel="C1", text="x", blocks=[{"type": "image", "image_url": "https://x.test/a.png"}]
        )
    assert e.value.response["error"] == "invalid_blocks"
    assert "alt_text" in e.value.response["response_metadata"]["messages"][0]
    with pytest.raises(SlackApiError) as e:
        await client.chat_postMessage(channel="C1", text="x", blocks=[{"text": "no type"}])
    assert e.value.response["error"] == "invalid_blocks"
    with pytest.raises(SlackApiError) as e:
        await client.chat_postMessage(channel="C1")
    assert e.value.response["error"] == "no_text"
    long_text = {"type": "section", "text": {"type": "mrkdwn", "text": "a" * 3001}}
    assert validate_blocks([long_text])
    assert validate_blocks([{"type": "divider"}, {"type": "image", "image_url": "https://x/a.png", "alt_text": "a"}]) == []
    assert fake.messages == []


# ----------------------------------------------------------------------------- files


async def test_files_upload_v2_lands_in_thread(fake, client):
    parent = (await client.chat_postMessage(channel="C1", text="generating"))["ts"]
    data = png_bytes()
    r = await client.files_upload_v2(
        channel="C1", thread_ts=parent, content=data, filename="cat.png", alt_txt="a red cat", title="Cat"
    )
    fid = r["file"]["id"]
    items = fake.thread("C1", parent)
    assert len(items) == 1 and isinstance(items[0], UploadedFile)
    f = items[0]
    assert f.id == fid and f.content == data and f.mimetype == "image/png" and f.alt_txt == "a red cat"
    assert f.completed and f.shared and f.title == "Cat" and f.thread_ts == parent
    assert fake.files_in_thread("C1", parent) == [f]

    info = (await client.files_info(file=fid))["file"]
    share = info["shares"]["public"]["C1"][0]
    assert share["thread_ts"] == parent and share["ts"]
    assert info["alt_txt"] == "a red cat" and info["size"] == len(data) and info["original_w"] == 8

    # a reply after the file keeps the order
    await client.chat_postMessage(channel="C1", text="done", thread_ts=parent)
    assert [type(x) for x in fake.thread("C1", parent)] == [UploadedFile, Message]

    # the file can be shown in a slack_file image block once shared
    await client.chat_update(
        channel="C1",
        ts=parent,
        text="done",
        blocks=[{"type": "image", "slack_file": {"id": fid}, "alt_text": "a red cat"}],
    )

    # and downloaded with the bot token
    async with aiohttp.ClientSession(trust_env=False) as s:
        auth = {"Authorization": f"Bearer {fake.bot_token}"}
        async with s.get(info["url_private_download"], headers=auth) as resp:
            assert resp.status == 200 and await resp.read() == data


async def test_upload_into_reply_or_unknown_thread_is_refused(fake, client):
    parent = (await client.chat_postMessage(channel="C1", text="p"))["ts"]
    reply = (await client.chat_postMessage(channel="C1", text="r", thread_ts=parent))["ts"]
    for bad in (reply, "1111.222222"):
        with pytest.raises(SlackApiError) as e:
            await client.files_upload_v2(channel="C1", thread_ts=bad, content=b"x", filename="a.txt")
        assert e.value.response["error"] == "invalid_thread_ts"
    assert not any(f.shared for f in fake.files)


async def test_share_delay_and_slack_file_block():
    async with FakeSlack(share_delay=0.2) as fake:
        client = AsyncWebClient(token=fake.bot_token, base_url=fake.api_url)
        r = await client.files_upload_v2(channel="C1", content=png_bytes(), filename="a.png", alt_txt="alt")
        fid = r["file"]["id"]
        assert (await client.files_info(file=fid))["file"]["shares"] == {}
        block = [{"type": "image", "slack_file": {"id": fid}, "alt_text": "alt"}]
        with pytest.raises(SlackApiError) as e:
            await client.chat_postMessage(channel="C1", text="img", blocks=block)
        assert e.value.response["error"] == "invalid_blocks"
        await fake.wait_for(lambda: fake.file(fid).shared)
        info = (await client.files_info(file=fid))["file"]
        assert "C1" in info["shares"]["public"] and "thread_ts" not in info["shares"]["public"]["C1"][0]
        await client.chat_postMessage(channel="C1", text="img", blocks=block)
        # a top-level file share can be a thread parent
        share_ts = info["shares"]["public"]["C1"][0]["ts"]
        await client.chat_postMessage(channel="C1", text="about the file", thread_ts=share_ts)


async def test_an_upload_carries_blocks_unless_it_has_a_comment(fake, client):
    parent = (await client.chat_postMessage(channel="C1", text="p"))["ts"]
    buttons = [{"type": "actions", "elements": [
        {"type": "button", "action_id": "vary", "text": {"type": "plain_text", "text": "Vary"}, "value": "j1"}]}]

    async def upload(**kw):
        r = await client.files_getUploadURLExternal(filename="a.png", length=len(png_bytes()))
        async with aiohttp.ClientSession(trust_env=False) as s:
            async with s.post(r["upload_url"], data=png_bytes()) as resp:
                assert resp.status == 200
        await client.files_completeUploadExternal(files=[{"id": r["file_id"]}], channel_id="C1", thread_ts=parent, **kw)
        return fake.file(r["file_id"])

    f = await upload(blocks=json.dumps(buttons))
    assert f.blocks == buttons and fake.message("C1", f.share_ts) is f
    replies = (await client.conversations_replies(channel="C1", ts=parent))["messages"]
    assert replies[-1]["blocks"] == buttons and replies[-1]["files"][0]["id"] == f.id
    assert (await upload(blocks=json.dumps(buttons), initial_comment="hi")).blocks is None  # Slack ignores them
    with pytest.raises(SlackApiError) as e:
        await upload(blocks=json.dumps([{"type": "actions", "elements": []}]))
    assert e.value.response["error"] == "invalid_blocks"


async def test_upload_protocol_details(fake, client):
    r = await client.files_getUploadURLExternal(filename="a.bin", length=4)
    async with aiohttp.ClientSession(trust_env=False) as s:
        async with s.post(r["upload_url"], data=b"abc") as resp:
            assert resp.status == 400
        form = aiohttp.FormData()
        form.add_field("filename", b"abcd", filename="a.bin")
        async with s.post(r["upload_url"], data=form) as resp:
            assert resp.status == 200 and await resp.text() == "OK - 4"
    assert fake.file(r["file_id"]).content == b"abcd"
    files = [{"id": r["file_id"], "title": "A"}]
    await client.files_completeUploadExternal(files=files)  # no channel: private file
    assert fake.file(r["file_id"]).completed and not fake.file(r["file_id"]).shared
    with pytest.raises(SlackApiError) as e:
        await client.files_completeUploadExternal(files=files)
    assert e.value.response["error"] == "already_completed"
    r2 = await client.files_getUploadURLExternal(filename="b.bin", length=1)
    with pytest.raises(SlackApiError) as e:
        await client.files_completeUploadExternal(files=[{"id": r2["file_id"]}], channel_id="C1")
    assert e.value.response["error"] == "file_not_found"

    fake.fail_upload_next(500)
    with pytest.raises(SlackRequestError):
        await client.files_upload_v2(channel="C1", content=b"xyz", filename="c.txt")
    assert fake.upload_posts[-1][1] == 500


# ----------------------------------------------------------------------------- faults and holds


async def test_rate_limit_is_retried_by_slack_sdk(fake):
    client = AsyncWebClient(
        token=fake.bot_token,
        base_url=fake.api_url,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=2)],
    )
    fake.fail_next("chat.postMessage", status=429, retry_after=0)
    r = await client.chat_postMessage(channel="C1", text="hello")
    assert r["ok"] and fake.count_calls("chat.postMessage") == 2
    assert [m.text for m in fake.top_level("C1")] == ["hello"]


async def test_faults_without_retry_raise_and_leave_no_trace(fake, client):
    fake.fail_next("chat.postMessage", status=429, retry_after=1)
    with pytest.raises(SlackApiError) as e:
        await client.chat_postMessage(channel="C1", text="x")
    assert e.value.response.status_code == 429 and e.value.response.headers["Retry-After"] == "1"
    fake.fail_next("chat.postMessage", error="fatal_error", count=2)
    for _ in range(2):
        with pytest.raises(SlackApiError) as e:
            await client.chat_postMessage(channel="C1", text="x")
        assert e.value.response["error"] == "fatal_error"
    fake.fail_next("chat.update", status=503)
    with pytest.raises(SlackApiError) as e:
        await client.chat_update(channel="C1", ts="1.1", text="x")
    assert e.value.response.status_code == 503
    assert fake.messages == []
    await client.chat_postMessage(channel="C1", text="x")
    assert len(fake.messages) == 1


async def test_hold_before_and_after_effect(fake, client):
    fake.hold("chat.postMessage")
    task = asyncio.create_task(client.chat_postMessage(channel="C1", text="held"))
    await fake.wait_for(lambda: fake.held["chat.postMessage"] == 1)
    assert fake.messages == [] and not task.done()
    fake.release("chat.postMessage")
    await task
    assert len(fake.messages) == 1

    ev = fake.hold("chat.update", after_effect=True)
    task = asyncio.create_task(client.chat_update(channel="C1", ts=fake.messages[0].ts, text="changed"))
    await fake.wait_for(lambda: fake.held["chat.update"] == 1)
    assert fake.messages[0].text == "changed" and not task.done()
    ev.set()
    await task


# ----------------------------------------------------------------------------- private files


async def test_private_file_download_needs_bearer(fake, client):
    data = png_bytes((0, 0, 255))
    f = fake.add_user_file(data, name="photo.png", mimetype="image/png")
    assert f["url_private"].startswith(fake.base_url) and f["size"] == len(data)
    async with aiohttp.ClientSession(trust_env=False) as s:
        for url in (f["url_private"], f["url_private_download"]):
            async with s.get(url, headers={"Authorization": f"Bearer {fake.bot_token}"}) as r:
                assert r.status == 200 and r.content_type == "image/png" and await r.read() == data
        for headers in ({}, {"Authorization": "Bearer xoxb-nope"}):
            async with s.get(f["url_private"], headers=headers) as r:
                assert r.status == 200 and r.content_type == "text/html"
                assert "<html" in (await r.text()).lower()
    assert [d.authorized for d in fake.downloads] == [True, True, False, False]

    stub = fake.add_user_file(data, name="x.png", mimetype="image/png", mode="file_access")
    assert stub["file_access"] == "check_file_info" and "url_private" not in stub
    full = (await client.files_info(file=stub["id"]))["file"]
    assert full["url_private"] and full["mimetype"] == "image/png"


async def test_streamed_large_file_in_chunks(fake):
    size = 24 * 1024 * 1024 + 123
    f = fake.add_user_file(name="big.bin", mimetype="application/octet-stream", stream_size=size)
    expected = hashlib.sha256()
    for chunk in iter_pattern(size):
        expected.update(chunk)
    got = hashlib.sha256()
    n = chunks = 0
    async with aiohttp.ClientSession(trust_env=False) as s:
        async with s.get(f["url_private_download"], headers={"Authorization": f"Bearer {fake.bot_token}"}) as r:
            assert r.status == 200 and r.content_length == size
            async for chunk in r.content.iter_chunked(1 << 20):
                got.update(chunk)
                n += len(chunk)
                chunks += 1
    assert n == size and chunks > 1 and got.digest() == expected.digest()


# ----------------------------------------------------------------------------- response_url, views


async def test_response_url_five_uses(fake):
    url = fake.new_response_url()
    hook = AsyncWebhookClient(url)
    for i in range(5):
        r = await hook.send(text=f"n{i}")
        assert r.status_code == 200 and r.body == "ok"
    r = await hook.send(text="sixth")
    assert r.status_code == 404 and r.body == "used_url"
    assert [x.text for x in fake.responses] == [f"n{i}" for i in range(5)]


async def test_views_and_triggers(fake, client):
    view = {
        "type": "modal",
        "callback_id": "edit",
        "title": {"type": "plain_text", "text": "Edit image"},
        "submit": {"type": "plain_text", "text": "Go"},
        "blocks": [
            {
                "type": "input",
                "block_id": "prompt",
                "label": {"type": "plain_text", "text": "Prompt"},
                "element": {"type": "plain_text_input", "action_id": "value"},
            }
        ],
    }
    trig = fake.new_trigger("U1")
    r = await client.views_open(trigger_id=trig, view=view)
    vid = r["view"]["id"]
    assert fake.views[-1].user_id == "U1" and fake.open_view(vid)["callback_id"] == "edit"
    for t, err in ((trig, "exchanged_trigger_id"), ("1.2.3", "invalid_trigger_id")):
        with pytest.raises(SlackApiError) as e:
            await client.views_open(trigger_id=t, view=view)
        assert e.value.response["error"] == err
    fake.trigger_ttl = -1.0  # every trigger is already too old
    late = fake.new_trigger("U1")
    with pytest.raises(SlackApiError) as e:
        await client.views_open(trigger_id=late, view=view)
    assert e.value.response["error"] == "expired_trigger_id"

    home = {"type": "home", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}]}
    await client.views_publish(user_id="U1", view=home)
    assert fake.home_view("U1")["blocks"] == home["blocks"]
    with pytest.raises(SlackApiError) as e:
        await client.views_publish(user_id="U1", view={"type": "home", "blocks": [{"type": "divider"}] * 101})
    assert e.value.response["error"] == "invalid_arguments"

    fake.set_user("U9", is_admin=True, name="root")
    u = (await client.users_info(user="U9"))["user"]
    assert u["is_admin"] is True and u["name"] == "root"


# ----------------------------------------------------------------------------- Socket Mode


async def test_socket_mode_with_real_client(fake):
    received: list[SocketModeRequest] = []

    async def listener(smc: SocketModeClient, req: SocketModeRequest) -> None:
        received.append(req)
        payload = {"text": "on it"} if req.type == "slash_commands" else None
        await smc.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id, payload=payload))

    smc = SocketModeClient(app_token=fake.app_token, web_client=AsyncWebClient(base_url=fake.api_url))
    smc.socket_mode_request_listeners.append(listener)
    try:
        await smc.connect()
        await fake.wait_socket_connected()
        ack = await fake.send_envelope("slash_commands", slash_command_payload("/imagine", "a cat"))
        assert ack["payload"] == {"text": "on it"} and ack["envelope_id"] == fake.acks[-1].envelope_id
        assert received[-1].payload["command"] == "/imagine"
        assert received[-1].payload["response_url"].startswith(fake.base_url)
        assert fake.acks[-1].latency < 1

        ev = message_event("hello", channel="C1")
        ack = await fake.send_envelope("events_api", ev, accepts_response_payload=False, retry_attempt=1, retry_reason="timeout")
        assert "payload" not in ack
        assert received[-1].payload["type"] == "event_callback" and received[-1].retry_attempt == 1
        assert fake.message("C1", ev["ts"]).user == "U1"  # the user's message is now known

        await fake.disconnect_socket()
        await fake.wait_for(lambda: fake.socket_connections_total >= 2 and fake.socket_connected())
        ack = await fake.send_envelope("interactive", block_actions_payload("retry", value="x"))
        assert ack["envelope_id"]
    finally:
        await smc.close()


async def test_send_envelope_without_ack_raises(fake):
    smc = SocketModeClient(app_token=fake.app_token, web_client=AsyncWebClient(base_url=fake.api_url))
    try:
        await smc.connect()
        await fake.wait_socket_connected()
        with pytest.raises(AssertionError):
            await fake.send_envelope("events_api", app_mention_event("hi"), timeout=0.2)
    finally:
        await smc.close()


# ----------------------------------------------------------------------------- signed requests + Bolt


async def test_sign_request_matches_slack_sdk_verifier(fake):
    body = b"a=1&b=2"
    headers = sign_request(body, fake.signing_secret)
    assert SignatureVerifier(fake.signing_secret).is_valid_request(body, headers)
    assert not SignatureVerifier("other").is_valid_request(body, headers)


@pytest.fixture
async def bolt_app(fake):
    app = AsyncApp(
        client=AsyncWebClient(token=fake.bot_token, base_url=fake.api_url),
        signing_secret=fake.signing_secret,
    )
    async with served(app.web_app(path="/slack/events")) as port:
        yield app, f"http://127.0.0.1:{port}/slack/events"


async def test_bolt_http_mode_end_to_end(fake, bolt_app):
    app, url = bolt_app
    data = png_bytes()

    @app.command("/imagine")
    async def imagine(ack, command, respond, client):
        await ack("Queued")
        await respond(text="working on it")
        r = await client.chat_postMessage(channel=command["channel_id"], text=f"imagining {command['text']}")
        await client.files_upload_v2(
            channel=command["channel_id"], thread_ts=r["ts"], content=data, filename="out.png", alt_txt=command["text"]
        )

    @app.event("app_mention")
    async def mention(event, say):
        await say(text="hi there", thread_ts=event.get("thread_ts") or event["ts"])

    @app.action("again")
    async def again(ack, respond):
        await ack()
        await respond(text="again!", replace_original=True)

    status, body = await fake.post_command(url, "/imagine", "a red cat")
    assert status == 200 and "Queued" in body
    await fake.wait_for(lambda: fake.files and fake.files[0].shared)
    parent = fake.top_level("C1")[0]
    assert parent.text == "imagining a red cat"
    assert fake.thread("C1", parent.ts)[0].content == data
    await fake.wait_for(lambda: fake.responses)
    assert fake.responses[0].text == "working on it"

    ev = app_mention_event("draw a dog")
    resp = await fake.post_event(url, ev)
    assert resp.status == 200 and resp.elapsed < 3
    await fake.wait_for(lambda: fake.thread("C1", ev["ts"]))
    assert fake.thread("C1", ev["ts"])[0].text == "hi there"

    payload = block_actions_payload("again", value="1", message=parent)
    status, _ = await fake.post_interaction(url, payload)
    assert status == 200
    await fake.wait_for(lambda: len(parent.history) == 2)
    assert parent.text == "again!"

    # Slack's retries carry X-Slack-Retry-Num; a bad signature is refused
    resp = await fake.post_event(url, app_mention_event("again"), retry_num=1, retry_reason="http_timeout")
    assert resp.status == 200
    status, _ = await fake.post_command(url, "/imagine", "x", signing_secret="wrong")
    assert status == 401
    status, _ = await fake.post_event(url, ev, sign=False)
    assert status == 401


async def test_bolt_socket_mode(fake):
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    app = AsyncApp(client=AsyncWebClient(token=fake.bot_token, base_url=fake.api_url))

    @app.command("/imagine")
    async def imagine(ack, command, client):
        await ack("Queued")
        await client.chat_postMessage(channel=command["channel_id"], text=command["text"])

    handler = AsyncSocketModeHandler(app, fake.app_token)
    try:
        await handler.connect_async()
        await fake.wait_socket_connected()
        ack = await fake.send_envelope("slash_commands", slash_command_payload("/imagine", "a cat"))
        assert ack["payload"]["text"] == "Queued"
        await fake.wait_for(lambda: fake.top_level("C1"))
        assert fake.top_level("C1")[0].text == "a cat"
    finally:
        await handler.close_async()


# ----------------------------------------------------------------------------- the AI split view

# Slack's documented event (docs.slack.dev, assistant_thread_started), and a message.im in an
# assistant thread as Slack delivers it (with the `assistant_thread` action token).
DOCUMENTED_THREAD_STARTED = {
    "type": "assistant_thread_started",
    "assistant_thread": {"user_id": "U123ABC456",
                         "context": {"channel_id": "C123ABC456", "team_id": "T07XY8FPJ5C",
                                     "enterprise_id": "E480293PS82"},
                         "channel_id": "D123ABC456", "thread_ts": "1729999327.187299"},
    "event_ts": "1715873754.429808",
}
DOCUMENTED_USER_MESSAGE = {"type": "message", "user": "U0A3M4171BK", "text": "what's up?",
                           "thread_ts": "1765654724.967329", "parent_user_id": "U0A3BQUJQ5S",
                           "channel": "D0A387NCE2W", "assistant_thread": {"action_token": "1.2.3"},
                           "channel_type": "im"}


def _shape(value):
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    return type(value).__name__ if value is not None else "str"


async def test_the_split_view_events_and_methods_look_like_slacks(fake, client):
    received: list[dict] = []

    async def app(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(text="")

    server = web.Application()
    server.router.add_post("/slack/events", app)
    async with served(server) as port:
        url = f"http://127.0.0.1:{port}/slack/events"
        thread = await fake.open_assistant_thread(url, user="U1", looking_at="C1")
        await fake.assistant_says(url, thread, "a lighthouse")
    started, said = (body["event"] for body in received)
    started["assistant_thread"]["context"]["enterprise_id"] = "E1"   # (None outside Enterprise Grid)
    assert _shape(started) == _shape(DOCUMENTED_THREAD_STARTED)
    assert set(DOCUMENTED_USER_MESSAGE) <= set(said) and said["thread_ts"] == thread.thread_ts
    # the methods, through slack_sdk
    await client.assistant_threads_setStatus(channel_id=thread.channel, thread_ts=thread.thread_ts,
                                             status="is generating…")
    await client.assistant_threads_setSuggestedPrompts(channel_id=thread.channel, thread_ts=thread.thread_ts,
                                                       prompts=[{"title": "a", "message": "b"}])
    await client.assistant_threads_setTitle(channel_id=thread.channel, thread_ts=thread.thread_ts, title="t")
    assert thread.statuses == ["is generating…"] and thread.titles == ["t"] and thread.prompts == [
        [{"title": "a", "message": "b"}]]
    with pytest.raises(SlackApiError) as err:
        await client.assistant_threads_setSuggestedPrompts(channel_id=thread.channel, thread_ts=thread.thread_ts,
                                                           prompts=[{"title": str(i), "message": "m"} for i in range(5)])
    assert err.value.response["error"] == "invalid_arguments"
    fake.scopes = [s for s in fake.scopes if s != "assistant:write"]
    with pytest.raises(SlackApiError) as err:
        await client.assistant_threads_setStatus(channel_id=thread.channel, thread_ts=thread.thread_ts, status="")
    assert err.value.response["error"] == "missing_scope"
