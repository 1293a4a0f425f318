"""The fake Luma server follows luma-api.md, also as seen through the official SDK."""

from __future__ import annotations

import asyncio
import base64
import io
import time

import aiohttp
import httpx
import luma_agents
import pytest
from PIL import Image

from lumabot.testing.fake_luma import (
    FakeLuma,
    Outcome,
    color_for_prompt,
)

KEY = "luma-api-test-key"


@pytest.fixture
async def fake():
    f = FakeLuma(latency=0.02)
    await f.start()
    yield f
    await f.stop()


@pytest.fixture
async def http(fake):
    async with httpx.AsyncClient(
        base_url=fake.base_url, headers={"Authorization": f"Bearer {KEY}"}, trust_env=False, timeout=5
    ) as c:
        yield c


@pytest.fixture
async def sdk(fake):
    client = luma_agents.AsyncLuma(auth_token=KEY, base_url=fake.base_url, max_retries=0)
    yield client
    await client.close()


def png_b64(size=(40, 20), color=(10, 20, 30), fmt="PNG") -> str:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format=fmt)
    return base64.b64encode(buf.getvalue()).decode()


async def wait_done(sdk, gid, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        gen = await sdk.generations.get(gid)
        if gen.state in ("completed", "failed"):
            return gen
        assert time.monotonic() < deadline, f"{gid} still {gen.state}"
        await asyncio.sleep(0.005)


# ----------------------------------------------------------------------------- SDK round trip


async def test_sdk_create_poll_download(fake, sdk):
    gen = await sdk.generations.create(prompt="a red fox", aspect_ratio="16:9", user_id="u1")
    assert gen.state == "queued"
    assert gen.type == "image" and gen.model == "uni-1"
    assert gen.output is None and gen.failure_code is None
    done = await wait_done(sdk, gen.id)
    assert done.state == "completed"
    assert len(done.output) == 1 and done.output[0].type == "image"
    url = done.output[0].url
    assert url.startswith(f"http://127.0.0.1:{fake.port}/outputs/{gen.id}.png?sig=")
    assert "&expires=" in url
    async with httpx.AsyncClient(trust_env=False) as c:
        r = await c.get(url)
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/png"
    assert r.content == fake.output_bytes(gen.id)
    img = Image.open(io.BytesIO(r.content))
    assert img.size == (64, 36)
    assert img.getpixel((0, 0)) == color_for_prompt("a red fox")
    assert fake.creates == [{"prompt": "a red fox", "aspect_ratio": "16:9", "user_id": "u1"}]
    assert fake.stats["201"] == 1 and fake.stats["downloads"] == 1
    assert fake.generations[gen.id].get_count >= 1


async def test_states_progress_with_time(fake, http):
    fake.script(Outcome(latency=0.2))
    r = await http.post("/generations", json={"prompt": "p"})
    gid = r.json()["id"]
    assert (await http.get(f"/generations/{gid}")).json()["state"] == "queued"
    await fake.wait_for(lambda: fake.generations[gid].state == "processing")
    assert (await http.get(f"/generations/{gid}")).json()["state"] == "processing"
    assert fake.in_flight() == 1
    await fake.wait_for(lambda: fake.in_flight() == 0)
    body = (await http.get(f"/generations/{gid}")).json()
    assert body["state"] == "completed"


async def test_fresh_url_each_get_and_jpeg(fake, sdk):
    gen = await sdk.generations.create(prompt="p", output_format="jpeg", aspect_ratio="1:3")
    done = await wait_done(sdk, gen.id)
    again = await sdk.generations.get(gen.id)
    assert done.output[0].url != again.output[0].url
    assert ".jpg?" in again.output[0].url
    async with httpx.AsyncClient(trust_env=False) as c:
        r1 = await c.get(done.output[0].url)
        r2 = await c.get(again.output[0].url)
    assert r1.content == r2.content == fake.output_bytes(gen.id)
    assert r1.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(r1.content)).size == (21, 64)


async def test_same_prompt_same_bytes(fake, http):
    ids = []
    for _ in range(2):
        ids.append((await http.post("/generations", json={"prompt": "same", "aspect_ratio": "2:1"})).json()["id"])
    assert fake.output_bytes(ids[0]) == fake.output_bytes(ids[1])
    other = (await http.post("/generations", json={"prompt": "other", "aspect_ratio": "2:1"})).json()["id"]
    assert fake.output_bytes(other) != fake.output_bytes(ids[0])


async def test_headers_on_every_answer(fake, http):
    ok = await http.post("/generations", json={"prompt": "p"})
    bad = await http.post("/generations", json={"prompt": ""})
    nf = await http.get("/generations/nope")
    unauth = await http.get("/generations/nope", headers={"Authorization": "Bearer wrong"})
    ids = {r.headers["x-request-id"] for r in (ok, bad, nf, unauth)}
    assert len(ids) == 4
    assert all(r.headers.get("x-api-version") for r in (ok, bad, nf, unauth))
    assert "x-ratelimit-limit" not in ok.headers  # no rpm_limit configured


# ----------------------------------------------------------------------------- SDK errors


async def test_sdk_auth_error(fake):
    client = luma_agents.AsyncLuma(auth_token="luma-api-wrong", base_url=fake.base_url, max_retries=0)
    with pytest.raises(luma_agents.AuthenticationError) as ei:
        await client.generations.create(prompt="p")
    assert ei.value.status_code == 401
    assert ei.value.body == {"detail": "Invalid API key"}
    await client.close()
    assert fake.creates == []


async def test_missing_auth_header(fake):
    async with httpx.AsyncClient(trust_env=False) as c:
        r = await c.post(f"{fake.base_url}/generations", json={"prompt": "p"})
    assert r.status_code == 401 and r.json() == {"detail": "Invalid API key"}


async def test_sdk_bad_ratio_and_manga(fake, sdk):
    for ratio in ("4:3", "21:9", "3:4"):
        with pytest.raises(luma_agents.BadRequestError) as ei:
            await sdk.generations.create(prompt="p", aspect_ratio=ratio)
        assert "aspect_ratio" in ei.value.body["detail"]
    with pytest.raises(luma_agents.BadRequestError) as ei:
        await sdk.generations.create(prompt="p", style="manga", aspect_ratio="16:9")
    assert ei.value.body["detail"].startswith("style:")
    ok = await sdk.generations.create(prompt="p", style="manga", aspect_ratio="9:16")
    assert ok.state == "queued"
    assert len(fake.creates) == 1


async def test_sdk_not_found(sdk):
    with pytest.raises(luma_agents.NotFoundError) as ei:
        await sdk.generations.get("00000000-0000-0000-0000-000000000000")
    assert ei.value.body == {"detail": "Generation not found"}


async def test_sdk_unknown_model(sdk):
    with pytest.raises(luma_agents.BadRequestError) as ei:
        await sdk.generations.create(prompt="p", model="ray-3.2")
    assert ei.value.body == {"detail": "Unknown model: ray-3.2"}


@pytest.mark.parametrize(
    "body, status, field",
    [
        ({}, 400, "prompt:"),
        ({"prompt": ""}, 400, "prompt:"),
        ({"prompt": 5}, 400, "prompt:"),
        ({"prompt": "x" * 6001}, 400, "prompt:"),
        ({"prompt": "p", "type": "video"}, 400, "type:"),
        ({"prompt": "p", "style": "anime"}, 400, "style:"),
        ({"prompt": "p", "output_format": "webp"}, 400, "output_format:"),
        ({"prompt": "p", "user_id": "u" * 257}, 400, "user_id:"),
        ({"prompt": "p", "source": {"url": "https://example.com/a.png"}}, 400, "source:"),
        ({"prompt": "p", "type": "image_edit"}, 400, "source:"),
        ({"prompt": "p", "type": "image_edit", "source": {}}, 400, "source:"),
        ({"prompt": "p", "type": "image_edit", "source": {"data": "AAAA"}}, 400, "source:"),
        (
            {"prompt": "p", "type": "image_edit", "source": {"generation_id": "a", "file_id": "b"}},
            400,
            "source:",
        ),
        ({"prompt": "p", "type": "image_edit", "source": {"generation_id": "nope"}}, 400, "source:"),
        (
            {"prompt": "p", "type": "image_edit", "source": {"data": "!!notbase64!!", "media_type": "image/png"}},
            422,
            "source:",
        ),
        (
            {
                "prompt": "p",
                "type": "image_edit",
                "source": {"data": base64.b64encode(b"not an image").decode(), "media_type": "image/png"},
            },
            422,
            "source:",
        ),
        (
            {
                "prompt": "p",
                "type": "image_edit",
                "source": {"url": "https://files.slack.com/files-pri/T1-F1/a.png"},
            },
            422,
            "source:",
        ),
        ({"prompt": "p", "image_ref": [{"data": png_b64(), "media_type": "image/png"}] * 10}, 400, "image_ref:"),
        (
            {"prompt": "p", "image_ref": [{"data": png_b64(), "media_type": "image/png"}] * 2 + [{"url": None}]},
            400,
            "image_ref[2]:",
        ),
    ],
)
async def test_validation(fake, http, body, status, field):
    r = await http.post("/generations", json=body)
    assert r.status_code == status, r.text
    assert r.json()["detail"].startswith(field), r.json()
    assert fake.creates == []


async def test_image_ref_limits_per_type(fake, http):
    ref = {"data": png_b64(), "media_type": "image/png"}
    assert (await http.post("/generations", json={"prompt": "p", "image_ref": [ref] * 9})).status_code == 201
    edit = {"prompt": "p", "type": "image_edit", "source": ref}
    assert (await http.post("/generations", json={**edit, "image_ref": [ref] * 9})).status_code == 400
    assert (await http.post("/generations", json={**edit, "image_ref": [ref] * 8})).status_code == 201


async def test_bad_json_and_unknown_route(http):
    r = await http.post("/generations", content=b"{nope", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "detail" in r.json()
    r = await http.get("/files")
    assert r.status_code == 404 and r.json() == {"detail": "Not Found"}


async def test_too_large_image(fake, http):
    big = base64.b64encode(b"\0" * (50 * 1024 * 1024 + 10)).decode()
    r = await http.post(
        "/generations",
        json={"prompt": "p", "type": "image_edit", "source": {"data": big, "media_type": "image/png"}},
        timeout=30,
    )
    assert r.status_code == 413 and r.json()["detail"].startswith("source:")


# ----------------------------------------------------------------------------- image_edit


async def test_edit_shapes(fake, sdk):
    base = await sdk.generations.create(prompt="base", aspect_ratio="9:16")
    await wait_done(sdk, base.id)
    # generation_id source: the shape of the source generation; aspect_ratio ignored
    edit = await sdk.generations.create(
        prompt="edit", type="image_edit", source={"generation_id": base.id}, aspect_ratio="4:3"
    )
    assert edit.type == "image_edit"
    await wait_done(sdk, edit.id)
    img = Image.open(io.BytesIO(fake.output_bytes(edit.id)))
    assert img.size == (36, 64)
    assert img.getpixel((0, 0)) == color_for_prompt("edit")
    # data source: the decoded image's aspect
    edit2 = await sdk.generations.create(
        prompt="edit2",
        type="image_edit",
        source={"data": png_b64((300, 100), fmt="JPEG"), "media_type": "image/jpeg"},
    )
    assert Image.open(io.BytesIO(fake.output_bytes(edit2.id))).size == (64, 21)


async def test_edit_from_unfinished_or_failed_source(fake, http):
    fake.script(Outcome(hold=True), Outcome(state="failed", latency=0))
    held = (await http.post("/generations", json={"prompt": "a"})).json()["id"]
    failed = (await http.post("/generations", json={"prompt": "b"})).json()["id"]
    for gid in (held, failed):
        r = await http.post("/generations", json={"prompt": "e", "type": "image_edit", "source": {"generation_id": gid}})
        assert r.status_code == 400 and r.json()["detail"].startswith("source:")


async def test_url_source_own_output_and_registered(fake, sdk, http):
    base = await sdk.generations.create(prompt="base", aspect_ratio="3:1")
    done = await wait_done(sdk, base.id)
    r = await http.post("/generations", json={"prompt": "e", "type": "image_edit", "source": {"url": done.output[0].url}})
    assert r.status_code == 201
    fake.url_images["https://cdn.example.com/x.png"] = base64.b64decode(png_b64((10, 20)))
    r = await http.post(
        "/generations", json={"prompt": "e", "type": "image_edit", "source": {"url": "https://cdn.example.com/x.png"}}
    )
    assert r.status_code == 201
    assert fake.generations[r.json()["id"]].height == 64


# ----------------------------------------------------------------------------- limits


async def test_rpm_limit_with_sdk_raw_headers():
    async with FakeLuma(latency=0.0, rpm_limit=2, rpm_window=60) as fake:
        async with luma_agents.AsyncLuma(auth_token=KEY, base_url=fake.base_url, max_retries=0) as sdk:
            raw = await sdk.generations.with_raw_response.create(prompt="p")
            assert raw.status_code == 201
            assert raw.headers["x-ratelimit-limit"] == "2"
            assert raw.headers["x-ratelimit-remaining"] == "1"
            reset = int(raw.headers["x-ratelimit-reset"])
            assert time.time() + 55 <= reset <= time.time() + 61
            gen = await raw.parse()
            assert gen.state == "queued" and gen.id in fake.generations
            raw = await sdk.generations.with_raw_response.create(prompt="p")
            assert raw.headers["x-ratelimit-remaining"] == "0"
            with pytest.raises(luma_agents.RateLimitError) as ei:
                await sdk.generations.create(prompt="p")
            resp = ei.value.response
            assert ei.value.body == {"detail": "Rate limit exceeded"}
            assert 55 <= int(resp.headers["retry-after"]) <= 60
            assert resp.headers["x-ratelimit-remaining"] == "0"
            assert fake.stats["rate"] == 1 and fake.stats["concurrency"] == 0
            assert len(fake.creates) == 2


async def test_rpm_window_slides():
    async with FakeLuma(latency=0.0, rpm_limit=1, rpm_window=0.2) as fake:
        async with httpx.AsyncClient(
            base_url=fake.base_url, headers={"Authorization": f"Bearer {KEY}"}, trust_env=False
        ) as c:
            assert (await c.post("/generations", json={"prompt": "p"})).status_code == 201
            r = await c.post("/generations", json={"prompt": "p"})
            assert r.status_code == 429 and r.headers["retry-after"] == "1"  # at least 1
            await asyncio.sleep(0.21)
            assert (await c.post("/generations", json={"prompt": "p"})).status_code == 201


async def test_rate_headers_off():
    async with FakeLuma(rpm_limit=5, rate_headers=False) as fake:
        async with httpx.AsyncClient(
            base_url=fake.base_url, headers={"Authorization": f"Bearer {KEY}"}, trust_env=False
        ) as c:
            r = await c.post("/generations", json={"prompt": "p"})
            assert r.status_code == 201 and "x-ratelimit-limit" not in r.headers


async def test_concurrency_limit_with_sdk():
    async with FakeLuma(latency=0.02, concurrency_limit=2) as fake:
        fake.script(Outcome(hold=True), Outcome(hold=True))
        async with luma_agents.AsyncLuma(auth_token=KEY, base_url=fake.base_url, max_retries=0) as sdk:
            a = await sdk.generations.create(prompt="a")
            await sdk.generations.create(prompt="b")
            assert fake.in_flight() == 2
            with pytest.raises(luma_agents.RateLimitError) as ei:
                await sdk.generations.create(prompt="c")
            assert ei.value.body == {"detail": "Too many concurrent jobs"}
            assert ei.value.response.headers["retry-after"] == "60"
            assert "x-ratelimit-remaining" not in ei.value.response.headers
            assert fake.stats["concurrency"] == 1
            fake.release(a.id)
            assert fake.in_flight() == 1
            c = await sdk.generations.create(prompt="c")
            assert (await wait_done(sdk, c.id)).state == "completed"
            assert (await sdk.generations.get(a.id)).state == "completed"


# ----------------------------------------------------------------------------- scripted faults


async def test_script_failure(fake, sdk):
    fake.script(Outcome(state="failed", failure_code="content_moderated", failure_reason="nope"), Outcome(state="failed"))
    g1 = await sdk.generations.create(prompt="p")
    g2 = await sdk.generations.create(prompt="p")
    g3 = await sdk.generations.create(prompt="p")
    d1, d2, d3 = [await wait_done(sdk, g.id) for g in (g1, g2, g3)]
    assert (d1.state, d1.failure_code, d1.failure_reason, d1.output) == ("failed", "content_moderated", "nope", None)
    assert d2.state == "failed" and d2.failure_code == "generation_failed" and d2.failure_reason
    assert d3.state == "completed"
    with pytest.raises(ValueError):
        fake.output_bytes(g1.id)


async def test_hold_and_release(fake, sdk):
    fake.script(Outcome(hold=True, latency=0.01), Outcome(hold=True, state="failed", failure_code="rate_limited"))
    a = await sdk.generations.create(prompt="a")
    b = await sdk.generations.create(prompt="b")
    await asyncio.sleep(0.05)
    assert (await sdk.generations.get(a.id)).state == "processing"
    assert fake.in_flight() == 2
    fake.release(a.id)
    assert (await sdk.generations.get(a.id)).state == "completed"
    assert (await sdk.generations.get(b.id)).state == "processing"
    fake.release(b.id)
    got = await sdk.generations.get(b.id)
    assert (got.state, got.failure_code) == ("failed", "rate_limited")
    assert fake.in_flight() == 0


async def test_fail_next(fake, sdk):
    fake.fail_next("POST", 502, "upstream down", headers={"Retry-After": "7"}, count=2)
    for _ in range(2):
        with pytest.raises(luma_agents.InternalServerError) as ei:
            await sdk.generations.create(prompt="p")
        assert ei.value.body == {"detail": "upstream down"}
        assert ei.value.response.headers["retry-after"] == "7"
    assert fake.creates == [] and fake.generations == {}
    gen = await sdk.generations.create(prompt="p")
    fake.fail_next("GET", 402, "Insufficient balance")
    with pytest.raises(luma_agents.APIStatusError) as ei:
        await sdk.generations.get(gen.id)
    assert ei.value.status_code == 402
    assert (await wait_done(sdk, gen.id)).state == "completed"
    assert [r.status for r in fake.requests][:3] == [502, 502, 201]


async def test_drop_next_before_create(fake, sdk):
    fake.drop_next("POST")
    with pytest.raises(luma_agents.APIConnectionError):
        await sdk.generations.create(prompt="p")
    assert fake.creates == [] and fake.in_flight() == 0
    assert fake.requests[-1].status == 0


async def test_drop_next_after_create(fake, sdk):
    fake.drop_next("POST", after_create=True)
    async with httpx.AsyncClient(
        base_url=fake.base_url, headers={"Authorization": f"Bearer {KEY}"}, trust_env=False
    ) as c:
        with pytest.raises(httpx.RemoteProtocolError):
            await c.post("/generations", json={"prompt": "lost"})
    assert fake.creates == [{"prompt": "lost"}]
    (gen,) = fake.generations.values()
    assert not gen.answered
    await fake.wait_for(lambda: gen.state == "completed")
    assert fake.in_flight() == 0
    # the SDK sees a connection error too
    fake.drop_next("POST", after_create=True)
    with pytest.raises(luma_agents.APIConnectionError):
        await sdk.generations.create(prompt="lost2")
    assert len(fake.creates) == 2


async def test_drop_next_get(fake, sdk):
    gen = await sdk.generations.create(prompt="p")
    fake.drop_next("GET")
    with pytest.raises(luma_agents.APIConnectionError):
        await sdk.generations.get(gen.id)
    assert (await wait_done(sdk, gen.id)).state == "completed"


async def test_stall_next(fake, sdk):
    fake.stall_next("POST", 0.3)
    with pytest.raises(luma_agents.APITimeoutError):
        await sdk.generations.create(prompt="p", timeout=0.05)
    await asyncio.sleep(0.3)
    assert fake.creates == []  # the client had hung up when the stall ended
    fake.stall_next("POST", 0.3, after_create=True)
    with pytest.raises(luma_agents.APITimeoutError):
        await sdk.generations.create(prompt="p", timeout=0.05)
    assert len(fake.creates) == 1  # accepted, answer never seen
    # a stall shorter than the timeout just delays the answer
    gen = await sdk.generations.create(prompt="p")
    fake.stall_next("GET", 0.05)
    t0 = time.monotonic()
    await sdk.generations.get(gen.id)
    assert time.monotonic() - t0 >= 0.05


async def test_injection_order_is_fifo(fake, http):
    fake.fail_next("POST", 500)
    fake.drop_next("POST")
    assert (await http.post("/generations", json={"prompt": "p"})).status_code == 500
    with pytest.raises(httpx.RemoteProtocolError):
        await http.post("/generations", json={"prompt": "p"})
    assert (await http.post("/generations", json={"prompt": "p"})).status_code == 201


async def test_expire_urls(fake, sdk):
    gen = await sdk.generations.create(prompt="p")
    done = await wait_done(sdk, gen.id)
    old = done.output[0].url
    fake.expire_urls()
    async with httpx.AsyncClient(trust_env=False) as c:
        r = await c.get(old)
        assert r.status_code == 403
        assert "<Code>AccessDenied</Code>" in r.text and "expired" in r.text
        fresh = (await sdk.generations.get(gen.id)).output[0].url
        r = await c.get(fresh)
        assert r.status_code == 200 and r.content == fake.output_bytes(gen.id)
        # tampered / unknown signatures
        assert (await c.get(fresh.replace("sig=", "sig=x"))).status_code == 403
        assert (await c.get(f"{fake.root_url}/outputs/{gen.id}.png")).status_code == 403


async def test_url_ttl():
    async with FakeLuma(latency=0, url_ttl=0.05) as fake:
        async with httpx.AsyncClient(
            base_url=fake.base_url, headers={"Authorization": f"Bearer {KEY}"}, trust_env=False
        ) as c:
            gid = (await c.post("/generations", json={"prompt": "p"})).json()["id"]
            url = (await c.get(f"/generations/{gid}")).json()["output"][0]["url"]
            assert (await c.get(url)).status_code == 200
            await asyncio.sleep(0.06)
            assert (await c.get(url)).status_code == 403


# ----------------------------------------------------------------------------- bookkeeping & load


async def test_recorded_requests(fake, http):
    await http.post("/generations", json={"prompt": "p"}, headers={"X-Extra": "1"})
    rec = fake.requests[-1]
    assert rec.method == "POST" and rec.path == "/v1/generations"
    assert rec.headers["authorization"] == f"Bearer {KEY}" and rec.headers["x-extra"] == "1"
    assert rec.body == {"prompt": "p"} and rec.status == 201 and rec.at <= time.monotonic()
    assert rec.generation_id in fake.generations


async def test_latency_fn_and_many_generations():
    async with FakeLuma(latency_fn=lambda: 0.01, concurrency_limit=1000, rpm_limit=10_000) as fake:
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {KEY}"}) as s:

            async def one(i):
                async with s.post(f"{fake.base_url}/generations", json={"prompt": f"p{i % 7}"}) as r:
                    await r.read()
                    return r.status

            t0 = time.monotonic()
            statuses = await asyncio.gather(*(one(i) for i in range(1000)))
            assert set(statuses) == {201}
            await fake.wait_for(lambda: fake.in_flight() == 0)
            assert time.monotonic() - t0 < 10
            assert all(g.latency == 0.01 for g in fake.generations.values())
            assert fake.stats["created"] == 1000 and len(fake.creates) == 1000


# ----------------------------------------------------------------------------- illustrate (the demo)


async def test_illustrated_images_show_their_prompt_and_edits_their_source():
    """`FakeLuma(illustrate=True)` (issue #26): an image is a picture, not a flat colour, different
    per prompt; an edit is visibly its source changed ("night" darker), for every kind of source."""
    from PIL import ImageChops, ImageStat

    fake = FakeLuma(latency=0.01, image_long_side=256, illustrate=True)
    await fake.start()
    client = luma_agents.AsyncLuma(auth_token=KEY, base_url=fake.base_url, max_retries=0)
    try:
        async def image_of(**params) -> Image.Image:
            gen = await client.generations.create(**params)
            await wait_done(client, gen.id)
            return Image.open(io.BytesIO(fake.output_bytes(gen.id))).convert("RGB")

        lighthouse = await image_of(prompt="a lighthouse at dusk", aspect_ratio="16:9")
        fox = await image_of(prompt="a red fox", aspect_ratio="16:9")
        assert len(lighthouse.getcolors(1 << 20) or []) > 50  # a picture, with the prompt written on it
        assert ImageChops.difference(lighthouse, fox).getbbox() is not None

        gens = [g for g in fake.generations.values() if g.prompt == "a lighthouse at dusk"]
        sources = [{"generation_id": gens[0].id},
                   {"data": base64.b64encode(fake.output_bytes(gens[0].id)).decode(), "media_type": "image/png"}]
        for source in sources:
            night = await image_of(prompt="make it night", type="image_edit", source=source)
            assert night.size == lighthouse.size
            # Its source, darker: the sky (top rows, under the source's caption) is the same
            # picture at a lower brightness, not another picture.
            box = (0, lighthouse.height // 3, lighthouse.width, lighthouse.height // 2)
            src, out = ImageStat.Stat(lighthouse.crop(box)), ImageStat.Stat(night.crop(box))
            assert sum(out.mean) < 0.7 * sum(src.mean)
            unrelated = await image_of(prompt="make it night", type="image_edit",
                                       source={"data": png_b64((256, 144), (200, 200, 200)), "media_type": "image/png"})
            assert (ImageChops.difference(night.crop(box), unrelated.crop(box)).getbbox() is not None)
    finally:
        await client.close()
        await fake.stop()
