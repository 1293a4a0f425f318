"""A workspace's own Luma key (issue #23): set by a workspace admin through a private form,
checked with Luma before it is saved, stored sealed and never shown or logged; the workspace's
images then go to that Luma account, which has its own line and limits. Judged by the key each
request reached Luma with, and by what each workspace sees."""

from __future__ import annotations

import asyncio
import logging
import time

from lumabot.jobs.models import JobState
from lumabot.testing.fake_luma import Outcome
from lumabot.testing.fake_slack import app_uninstalled_event, view_submission_payload

from .test_oauth import delivered, imagine, oauth_bot, org  # noqa: F401  (fixtures)

ADMIN = "UADMIN"
ACME_KEY = "luma-acme-7d1f0c2b9e"


def authorised_with(luma, generation_id: str) -> str:
    return next(r.headers["authorization"] for r in luma.requests
                if r.method == "POST" and r.generation_id == generation_id)


async def admin(app, team: str, text: str, *, user: str = ADMIN) -> str:
    ws = app.org.workspace(team)
    response = await ws.post_command(app.events, "/luma", f"admin {text}".strip(), user_id=user, channel_id="C1")
    assert response.status == 200, response.body
    return response.json()["text"] if response.body else ""


async def open_key_form(app, team: str) -> dict:
    ws = app.org.workspace(team)
    seen = len(ws.views)
    assert await admin(app, team, "luma-key") == ""   # no answer in the channel: a form opens
    call = await ws.wait_for(lambda: ws.views[seen] if len(ws.views) > seen else None)
    assert call.method == "views.open" and call.view["callback_id"] == "luma_key_modal"
    return call.view


async def submit_key(app, team: str, key: str, *, user: str = ADMIN):
    ws = app.org.workspace(team)
    return await ws.post_interaction(app.events, view_submission_payload(
        "luma_key_modal", {"key": {"key": key}}, user_id=user, team_id=team))


async def until_none(read, timeout: float = 10.0) -> None:
    until = time.monotonic() + timeout
    while await read() is not None:
        assert time.monotonic() < until, "still there"
        await asyncio.sleep(0.02)


def told_in_thread(ws, job) -> str:
    return "\n".join(getattr(m, "text", None) or "" for m in ws.thread("C1", job.root_ts))


def dms(ws, user: str) -> list[str]:
    return [m.text or "" for m in ws.bot_messages("D" + user[1:])]


async def test_an_admin_sets_the_workspace_key_in_a_form_and_its_images_go_to_that_account(
        org, luma, oauth_bot, caplog):
    from cryptography.fernet import Fernet

    caplog.set_level(logging.INFO)
    luma.add_key(ACME_KEY)
    app = await oauth_bot(LUMABOT_ENCRYPTION_KEY=Fernet.generate_key().decode())
    await app.install("T1")
    await app.install("T2")
    acme, globex = org.workspace("T1"), org.workspace("T2")
    acme.set_user(ADMIN, is_admin=True)
    globex.set_user(ADMIN, is_admin=True)
    assert "Luma account: the shared one" in await admin(app, "T1", "")
    assert (await admin(app, "T1", "luma-key", user="U1")).startswith("Only workspace admins")

    view = await open_key_form(app, "T1")
    key_input = next(b for b in view["blocks"] if b.get("block_id") == "key")
    assert "initial_value" not in key_input["element"]
    # A key Luma refuses: the form says so on its field, nothing is saved.
    response = await submit_key(app, "T1", "luma-not-a-real-key")
    assert response.status == 200 and response.json()["response_action"] == "errors"
    assert "Luma did not accept this key" in response.json()["errors"]["key"]
    assert await app.bot.store.luma_keys.get("T1") is None
    # A non-admin cannot save one through a forged submission either.
    response = await submit_key(app, "T1", ACME_KEY, user="U1")
    assert "Only workspace admins" in response.json()["errors"]["key"]
    assert await app.bot.store.luma_keys.get("T1") is None

    response = await submit_key(app, "T1", ACME_KEY)
    assert response.status == 200 and not response.body   # the form closes
    told = await acme.wait_for(lambda: next((t for t in dms(acme, ADMIN) if "own Luma account" in t), None))
    assert ACME_KEY not in told
    stored = (await app.bot.store.luma_keys.get("T1"))[0]
    assert stored.startswith("fernet:") and ACME_KEY not in stored   # sealed at rest
    # lumabot check counts them and tries the encryption key on them
    from pydantic import SecretStr

    from lumabot.check import run_checks

    assert "Luma: 1 workspace uses its own key (encrypted)" in (await run_checks(app.bot.settings)).render()
    other = app.bot.settings.model_copy(update={"encryption_key": SecretStr(Fernet.generate_key().decode())})
    report = (await run_checks(other)).render()
    assert "Luma: 1 workspace uses its own key, but none of the keys in LUMABOT_ENCRYPTION_KEY opens" in report
    assert ACME_KEY not in report
    assert "this workspace's own (key set by <@UADMIN>" in await admin(app, "T1", "")
    assert "Luma account: the shared one" in await admin(app, "T2", "")

    # Acme's images go to Acme's account; Globex's still to the shared one.
    await imagine(app, "T1", "a red kite")
    await imagine(app, "T2", "a blue kite")
    red = await app.wait(lambda j: j.params.prompt == "a red kite" and j.settled)
    blue = await app.wait(lambda j: j.params.prompt == "a blue kite" and j.settled)
    assert red.state == blue.state == JobState.DONE and (red.account, blue.account) == ("T1", "default")
    assert authorised_with(luma, red.generation_id) == f"Bearer {ACME_KEY}"
    assert authorised_with(luma, blue.generation_id) == f"Bearer {luma.api_key}"
    assert [g.prompt for g in luma.created_with(ACME_KEY)] == ["a red kite"]
    gets = [r for r in luma.requests if r.method == "GET" and r.path.startswith("/v1/")
            and r.generation_id == red.generation_id]
    assert gets and all(r.headers["authorization"] == f"Bearer {ACME_KEY}" for r in gets)
    assert delivered(acme, red) == [luma.output_bytes(red.generation_id)]

    # Removed: back to the shared key; the log says who did both.
    assert "Removed this workspace's Luma key" in await admin(app, "T1", "luma-key remove")
    assert "no Luma key of its own" in await admin(app, "T1", "luma-key remove")
    await imagine(app, "T1", "a green kite")
    green = await app.wait(lambda j: j.params.prompt == "a green kite" and j.settled)
    assert green.account == "default" and authorised_with(luma, green.generation_id) == f"Bearer {luma.api_key}"
    changes = [c.change for c in await app.bot.store.policy.log("T1", limit=10)]
    assert changes[:2] == ["own Luma key removed", "own Luma key set"]
    # The key was never logged, nor shown back.
    assert not [r for r in caplog.records if ACME_KEY in r.getMessage() or ACME_KEY in str(r.__dict__)]
    assert all(ACME_KEY not in str(v.view) for v in acme.views)


async def test_each_luma_account_has_its_own_line(org, luma, oauth_bot):
    luma.add_key(ACME_KEY, concurrency_limit=1)
    app = await oauth_bot(LUMABOT_LUMA_CONCURRENCY="1")
    await app.install("T1")
    await app.install("T2")
    org.workspace("T1").set_user(ADMIN, is_admin=True)
    await submit_key(app, "T1", ACME_KEY)
    # Acme's first image holds its account's one slot; its second waits behind it...
    luma.script(Outcome(hold=True))
    await imagine(app, "T1", "acme one")
    one = await app.wait(lambda j: j.params.prompt == "acme one" and j.generation_id is not None)
    await imagine(app, "T1", "acme two")
    await app.wait(lambda j: j.params.prompt == "acme two" and j.status_ts is not None)
    # ...while Globex, on the shared account, is not in that line.
    await imagine(app, "T2", "globex one")
    globex = await app.wait(lambda j: j.params.prompt == "globex one" and j.settled)
    assert globex.state == JobState.DONE
    two = await app.wait(lambda j: j.params.prompt == "acme two")
    assert two.state == JobState.QUEUED and not two.generation_id
    luma.release(one.generation_id)
    two = await app.wait(lambda j: j.params.prompt == "acme two" and j.settled)
    assert two.state == JobState.DONE and authorised_with(luma, two.generation_id) == f"Bearer {ACME_KEY}"
    assert luma.stats["429"] == 0   # lumabot kept to each account's limit itself


async def test_a_key_removed_or_revoked_fails_the_workspace_images_clearly(org, luma, oauth_bot, caplog):
    luma.add_key(ACME_KEY)
    app = await oauth_bot(LUMABOT_LUMA_CONCURRENCY="1")
    await app.install("T1")
    acme = org.workspace("T1")
    acme.set_user(ADMIN, is_admin=True)
    await submit_key(app, "T1", ACME_KEY)
    assert (await app.bot.store.luma_keys.get("T1")) is not None
    # Removed while an image waits for the account's slot: it fails, nothing more goes to Luma.
    luma.script(Outcome(hold=True))
    await imagine(app, "T1", "first")
    first = await app.wait(lambda j: j.params.prompt == "first" and j.generation_id is not None)
    await imagine(app, "T1", "waiting")
    waiting = await app.wait(lambda j: j.params.prompt == "waiting" and j.status_ts is not None)
    await admin(app, "T1", "luma-key remove")
    luma.release(first.generation_id)
    waiting = await app.wait(lambda j: j.id == waiting.id and j.settled)
    assert waiting.state == JobState.FAILED and waiting.failure_code == "luma_key_removed"
    assert "own Luma key was removed" in told_in_thread(acme, waiting)
    assert "waiting" not in [b["prompt"] for b in luma.creates]

    # Revoked at Luma: the workspace is told to set a new key (not that lumabot is misconfigured).
    await submit_key(app, "T1", ACME_KEY)
    del luma.accounts[ACME_KEY]
    await imagine(app, "T1", "revoked")
    revoked = await app.wait(lambda j: j.params.prompt == "revoked" and j.settled)
    assert revoked.failure_code == "own_key_refused"
    assert "`/luma admin luma-key`" in told_in_thread(acme, revoked)
    assert not [r for r in caplog.records if r.levelno >= logging.CRITICAL]

    # Uninstalled: the key goes with the workspace's tokens.
    org.uninstall("T1")
    assert (await acme.post_event(app.events, app_uninstalled_event())).status == 200
    await until_none(lambda: app.bot.store.luma_keys.get("T1"))


async def test_a_restart_with_a_new_encryption_key_first_seals_the_keys_with_it(org, luma, oauth_bot):
    from cryptography.fernet import Fernet

    from lumabot.secrets import Sealer

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    luma.add_key(ACME_KEY)
    app = await oauth_bot(LUMABOT_ENCRYPTION_KEY=old)
    await app.install("T1")
    org.workspace("T1").set_user(ADMIN, is_admin=True)
    await submit_key(app, "T1", ACME_KEY)
    await app.bot.stop()
    app = await oauth_bot(LUMABOT_ENCRYPTION_KEY=f"{new},{old}")     # the rotation's first step
    stored = (await app.bot.store.luma_keys.get("T1"))[0]
    assert Sealer([Fernet(new.encode())]).open(stored) == ACME_KEY   # the old key can go now
    await imagine(app, "T1", "a red kite")
    red = await app.wait(lambda j: j.params.prompt == "a red kite" and j.settled)
    assert authorised_with(luma, red.generation_id) == f"Bearer {ACME_KEY}"
