"""An admin is an admin of THIS workspace (issue #21, point 1): a Slack Connect guest who
administers their own organisation (users.info says `is_admin: true`) gets no admin power
here, at any admin-gated entry point; on Enterprise Grid an org-wide install makes the
organisation's admins admins, and nobody else's."""

from __future__ import annotations

import json

from lumabot.jobs.models import JobState
from lumabot.slack.admins import Installation, admin_here
from lumabot.testing.fake_luma import Outcome
from lumabot.testing.fake_slack import app_home_opened_event, block_actions_payload

from .test_admin import ADMIN, admin, start

OUTSIDER = "UOUTSIDE"   # an admin and owner of their own organisation, a guest in a shared channel


async def outsider_setup(start_bot, **env):
    h = await start(start_bot, **env)
    h.slack.set_user(OUTSIDER, is_admin=True, is_owner=True, team_id="TEXTERNAL",
                     enterprise_id="EEXTERNAL", org_admin=True)
    return h


async def outsider_admin(h, text: str) -> str:
    status, body, *_ = await h.slack.post_command(
        h.url, "/luma", f"admin {text}".strip(), user_id=OUTSIDER, channel_id="C1", encoded=True,
        response_url=h.slack.new_response_url("C1"), external_team="TEXTERNAL")
    assert status == 200
    return json.loads(body)["text"]


async def test_an_outside_admin_can_use_no_admin_command(start_bot):
    h = await outsider_setup(start_bot)
    mine = await h.finished((await h.imagine("a local prompt", user_id="U1")).id)
    for verb in ("", "channels only <#C2|design>", "dms off", "max nobody", "budget month 1",
                 "limit <@U1|alice> 0", "usage", "export --prompts", "retention 1",
                 "forget <@U1|alice>", "log"):
        answer = await outsider_admin(h, verb)
        assert answer.startswith("Only workspace admins") and "Nothing was changed" in answer, verb
    assert await h.bot.store.policy.log(h.slack.team_id) == []
    assert not any(f.filename.endswith(".csv") for f in h.slack.files)   # no export went anywhere
    assert (await h.bot.store.jobs.get(mine.id)).params.prompt == "a local prompt"  # not forgotten
    # the same commands from a local admin work (the refusal above is about who, not what)
    assert "lumabot works only in <#C2>" in await admin(h, "channels only <#C2|design>")


async def test_an_outside_admin_cannot_delete_or_cancel_anothers_work(start_bot):
    h = await outsider_setup(start_bot, LUMABOT_LUMA_CONCURRENCY="1")
    done = await h.finished((await h.imagine("mine to keep", user_id="U1")).id)
    await h.slack.post_interaction(h.url, block_actions_payload(
        "delete", value=done.id, user_id=OUTSIDER, channel_id="C1", message_ts=done.actions_ts,
        thread_ts=done.root_ts, response_url=h.slack.new_response_url()), external_team="TEXTERNAL")
    await h.slack.wait_for(lambda: any("Only the person who asked" in (r.text or "") for r in h.slack.responses))
    assert not (await h.bot.store.jobs.get(done.id)).deleted
    assert not h.slack.message("C1", done.actions_ts).deleted

    h.luma.script(Outcome(hold=True))
    first = await h.imagine("holds the slot", user_id="U1")
    await h.luma.wait_for(lambda: len(h.luma.generations) == 2)
    waiting = await h.imagine("waits in line", user_id="U2")
    await h.slack.post_interaction(h.url, block_actions_payload(
        "cancel", value=waiting.id, user_id=OUTSIDER, channel_id="C1", message_ts=waiting.status_ts,
        response_url=h.slack.new_response_url()), external_team="TEXTERNAL")
    await h.slack.wait_for(lambda: any("can cancel it" in (r.text or "") for r in h.slack.responses))
    assert (await h.bot.store.jobs.get(waiting.id)).state == JobState.QUEUED
    h.luma.release_all()
    assert (await h.finished(waiting.id)).state == JobState.DONE
    await h.finished(first.id)


async def test_an_outside_admin_sees_no_admin_home_and_no_admin_only_model(start_bot):
    h = await outsider_setup(start_bot)
    await admin(h, "max admins")
    await h.slack.post_event(h.url, app_home_opened_event(OUTSIDER))
    await h.slack.post_event(h.url, app_home_opened_event(ADMIN))
    await h.slack.wait_for(lambda: h.slack.home_view(OUTSIDER) and h.slack.home_view(ADMIN))
    assert '"Admin"' not in json.dumps(h.slack.home_view(OUTSIDER))
    assert '"Admin"' in json.dumps(h.slack.home_view(ADMIN))
    status, body, *_ = await h.slack.post_command(h.url, "/imagine", "a boat --max", user_id=OUTSIDER,
                                                  channel_id="C1", external_team="TEXTERNAL")
    assert "uni-1-max is for workspace admins" in json.loads(body)["text"]
    mine = await h.finished((await h.imagine("a boat --max", user_id=ADMIN)).id)
    assert mine.params.model == "uni-1-max"
    assert [c["model"] for c in h.luma.creates] == ["uni-1-max"]


async def test_an_org_wide_install_makes_the_organisations_admins_admins(start_bot, slack):
    slack.enterprise_id, slack.enterprise_install = "EORG", True
    h = await start(start_bot)
    # an org admin whose home is another workspace of the organisation
    h.slack.set_user("UORGADMIN", team_id="TSISTER", enterprise_id="EORG", org_admin=True)
    # a workspace admin who is no org admin, and an outside org's admin
    h.slack.set_user("UWSADMIN", is_admin=True)
    h.slack.set_user(OUTSIDER, is_admin=True, team_id="TEXTERNAL", enterprise_id="EEXTERNAL", org_admin=True)
    assert "lumabot works only in <#C2>" in await admin(h, "channels only <#C2|design>", user="UORGADMIN")
    assert (await admin(h, "channels all", user=OUTSIDER)).startswith("Only workspace admins")
    assert (await admin(h, "channels all", user="UWSADMIN")).startswith("Only workspace admins")
    assert len(await h.bot.store.policy.log(h.slack.team_id)) == 1


def test_admin_here_compares_the_persons_workspace_with_the_installation():
    home = Installation("T1")
    local = {"team_id": "T1", "is_admin": True}
    assert admin_here(local, home) and admin_here({"team_id": "T1", "is_owner": True}, home)
    assert not admin_here({"team_id": "T2", "is_admin": True, "is_owner": True}, home)
    assert not admin_here({"is_admin": True}, home)                     # workspace unknown
    assert not admin_here(local, Installation(None))                   # not connected yet
    grid = Installation("T1", "E1")
    sister = {"team_id": "T2", "is_admin": True,
              "enterprise_user": {"enterprise_id": "E1", "teams": ["T2", "T1"], "is_admin": False}}
    assert admin_here(sister, grid)                                    # a member here, same org
    assert not admin_here({**sister, "enterprise_user": {**sister["enterprise_user"], "teams": ["T2"]}}, grid)
    org = Installation("T1", "E1", enterprise_install=True)
    assert admin_here({"team_id": "T9", "enterprise_user": {"enterprise_id": "E1", "is_admin": True}}, org)
    assert not admin_here(local, org)                                  # an org install: org admins
    assert not admin_here({"team_id": "T9", "enterprise_user": {"enterprise_id": "E2", "is_admin": True}}, org)
