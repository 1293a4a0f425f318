"""Admin controls end to end: `/luma admin` through the real Bolt app, the policy enforced at
every entry point, budgets under parallel requests, alerts, reports, the CSV export, retention
and forgetting."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import time
from datetime import datetime, timezone

from lumabot.jobs.models import GenerationParams, Job, JobState, KnownImage
from lumabot.testing.fake_luma import Outcome
from lumabot.testing.fake_slack import (
    app_home_opened_event,
    block_actions_payload,
    message_event,
    message_shortcut_payload,
)

ADMIN = "UADMIN"


async def admin(h, text: str, *, user: str = ADMIN) -> str:
    """`/luma admin <text>`; `text` as Slack sends it with escaping on (`<#C2|design>`)."""
    status, body, *_ = await h.slack.post_command(h.url, "/luma", f"admin {text}".strip(), user_id=user,
                                                  channel_id="C1", encoded=True,
                                                  response_url=h.slack.new_response_url("C1"))
    assert status == 200
    return json.loads(body)["text"]


async def answered_later(h, contains: str) -> str:
    """The text of an answer sent after the ack (through the command's response_url)."""
    post = await h.slack.wait_for(lambda: next((r for r in h.slack.responses if contains in (r.text or "")), None))
    return post.text


async def ack_text(h, text: str, **kw) -> str:
    status, body = await h.command(text, **kw)
    assert status == 200
    return json.loads(body)["text"] if body else ""


def ephemerals_for(h, user: str) -> list[str]:
    return [e.text or "" for e in h.slack.ephemerals if e.user == user]


def dms(h, user: str) -> list[str]:
    return [m.text or "" for m in h.slack.bot_messages("D" + user[1:])]


async def start(start_bot, **env):
    h = await start_bot(**env)
    h.slack.set_user(ADMIN, is_admin=True)
    return h


async def test_a_non_admin_is_refused_and_nothing_changes(start_bot):
    h = await start(start_bot)
    text = await admin(h, "channels only <#C2|design>", user="U1")
    assert text.startswith("Only workspace admins") and "Nothing was changed" in text
    assert "Only workspace admins" in await admin(h, "usage", user="U1")
    assert await h.bot.store.policy.log(h.slack.team_id) == []
    await h.imagine("still works in C1")
    # an admin's overview shows the policy and the commands
    overview = await admin(h, "")
    assert "Works every channel it is in" in overview and "/luma admin channels only" in overview


async def test_the_channel_allow_list_holds_at_every_entry_point(start_bot):
    h = await start(start_bot)
    first = await h.finished((await h.imagine("before the policy")).id)  # a lumabot thread in C1
    sent = len(h.luma.creates)
    text = await admin(h, "channels only <#C2|design> <#C3|marketing>")
    assert "lumabot works only in <#C2>, <#C3>" in text
    notice = "lumabot is not enabled in <#C1>; it works in <#C2>, <#C3>, direct messages with lumabot"

    assert notice in await ack_text(h, "a cat")                                   # /imagine
    assert notice in await ack_text(h, "")                                        # the /imagine form
    assert notice in await ack_text(h, "make it night", command="/edit")          # /edit
    assert notice in await ack_text(h, "session start", command="/luma")          # a session start
    await h.slack.user_posts(h.url, "a dog", user="U4", mention_bot=True)         # a mention
    await h.slack.wait_for(lambda: any(notice in t for t in ephemerals_for(h, "U4")))
    await h.slack.post_event(h.url, message_event("make it blue", user="U5", channel="C1",
                                                  thread_ts=first.status_ts))      # a reply in a lumabot thread
    await h.slack.wait_for(lambda: any(notice in t for t in ephemerals_for(h, "U5")))
    shortcut = message_event("an image", channel="C1")
    await h.slack.post_interaction(h.url, message_shortcut_payload(
        "edit_image", message=shortcut, channel_id="C1", response_url=h.slack.new_response_url()))
    view = (await h.slack.wait_for(lambda: h.slack.views))[0].view               # the shortcut
    assert notice in json.dumps(view)

    # message events say it once per person per channel per hour: a second mention is quiet
    await h.slack.user_posts(h.url, "another dog", user="U4", mention_bot=True)
    await h.slack.user_posts(h.url, "a third", user="U6", mention_bot=True)
    await h.slack.wait_for(lambda: ephemerals_for(h, "U6"))  # the later message was handled
    assert len(ephemerals_for(h, "U4")) == 1
    assert len(h.luma.creates) == sent and len(await h.jobs()) == 1  # nothing sent, nothing recorded

    await h.finished((await h.imagine("allowed here", channel_id="C2")).id)
    assert len(h.luma.creates) == sent + 1
    assert "also works in <#C1>" in await admin(h, "channels add <#C1|general>")
    await h.imagine("allowed again")
    assert "no longer works in <#C1>" in await admin(h, "channels remove <#C1|general>")
    assert notice.split(";")[0] in await ack_text(h, "a cat")
    assert "every channel it is in" in await admin(h, "channels all")
    assert "no list to remove from" in await admin(h, "channels remove <#C2|design>")
    await h.imagine("everywhere again")
    assert len((await h.bot.store.policy.log(h.slack.team_id))) == 4  # the refused edit is not logged


async def test_direct_messages_follow_the_dms_switch(start_bot):
    h = await start(start_bot)
    assert "direct messages off" in await admin(h, "dms off")
    await h.slack.user_posts(h.url, "a cat in a dm", channel="DU1", user="U1")
    await h.slack.wait_for(lambda: any("not enabled in direct messages" in t for t in ephemerals_for(h, "U1")))
    assert h.luma.creates == []
    await admin(h, "dms on")
    await h.slack.user_posts(h.url, "a cat in a dm", channel="DU1", user="U1")
    await h.wait_job(lambda j: j.channel_id == "DU1")


async def test_a_slack_connect_guest_follows_the_host_workspaces_policy(start_bot):
    h = await start(start_bot)
    await admin(h, "channels only <#C2|design>")
    status, body, *_ = await h.slack.post_command(h.url, "/imagine", "a cat", user_id="UEXT", channel_id="C1",
                                                  external_team="TEXTERNAL")
    assert "not enabled in <#C1>" in json.loads(body)["text"]
    status, body, *_ = await h.slack.post_command(h.url, "/imagine", "a cat", user_id="UEXT", channel_id="C2",
                                                  external_team="TEXTERNAL")
    job = await h.wait_job(lambda j: j.user_id == "UEXT")
    assert job.team_id == h.slack.team_id  # spends the host's budget


async def test_uni_1_max_for_admins_then_nobody(start_bot):
    h = await start(start_bot)
    plain = await h.finished((await h.imagine("a boat")).id)
    assert "uni-1-max for admins" in await admin(h, "max admins")
    refused = await ack_text(h, "a boat --max")
    assert "uni-1-max is for workspace admins" in refused
    await h.slack.post_interaction(h.url, block_actions_payload(            # the uni-1-max button
        "max", value=plain.id, user_id="U1", channel_id="C1", message_ts=plain.actions_ts,
        thread_ts=plain.root_ts, response_url=h.slack.new_response_url()))
    await h.slack.wait_for(lambda: any("for workspace admins" in (r.text or "") for r in h.slack.responses))
    mine = await h.finished((await h.imagine("a boat --max", user_id=ADMIN)).id)
    assert mine.params.model == "uni-1-max" and mine.state == JobState.DONE
    await admin(h, "max nobody")
    assert "uni-1-max is for nobody" in await ack_text(h, "a boat --max", user_id=ADMIN)
    assert [c["model"] for c in h.luma.creates] == ["uni-1", "uni-1-max"]


async def test_monthly_and_channel_budgets_hold_under_parallel_requests(start_bot):
    h = await start(start_bot, LUMABOT_LUMA_CONCURRENCY="1")
    assert "monthly budget $0.20" in await admin(h, "budget month 0.20")  # uni-1 costs $0.0404: 4 fit
    acks = await asyncio.gather(*(ack_text(h, f"cat {i}", user_id=f"U{i}") for i in range(8)))
    refused = [a for a in acks if a]
    assert len(refused) == 4 and all("monthly Luma budget of $0.20" in a for a in refused)
    assert len(await h.jobs()) == 4

    await admin(h, "budget off")
    assert "budget for <#C2> $0.10 a month" in await admin(h, "budget channel <#C2|design> 0.10")
    acks = await asyncio.gather(*(ack_text(h, f"dog {i}", user_id=f"U{i}", channel_id="C2") for i in range(5)))
    assert sum(1 for a in acks if "This channel has reached its monthly Luma budget of $0.10" in a) == 3
    assert len([j for j in await h.jobs() if j.channel_id == "C2"]) == 2
    await h.imagine("other channels are not limited", channel_id="C3")


async def test_budget_alerts_are_sent_once_per_threshold(start_bot):
    h = await start(start_bot, LUMABOT_ADMINS="UOPS")
    await admin(h, "budget month 0.20")
    for i in range(3):
        await h.imagine(f"cat {i}")  # $0.1212: 60 %
    await h.bot.alerts.idle()
    assert dms(h, ADMIN) == []
    await h.imagine("cat 3")  # $0.1616: 81 %
    await h.slack.wait_for(lambda: dms(h, ADMIN) and dms(h, "UOPS"))
    assert "used 80 % of its monthly Luma budget" in dms(h, ADMIN)[0] and "$0.16 of $0.20" in dms(h, ADMIN)[0]
    for i in range(2):  # refused: the budget is reached
        assert "monthly Luma budget" in await ack_text(h, f"more {i}")
    await h.bot.alerts.idle()
    for who in (ADMIN, "UOPS"):
        texts = dms(h, who)
        assert len(texts) == 2 and "used 100 %" in texts[1]
    assert "U1" not in [m.channel for m in h.slack.bot_messages()]  # nobody else is told


async def _four_jobs(h, luma):
    one = await h.finished((await h.imagine("one")).id)
    two = await h.finished((await h.imagine("two --max")).id)
    three = await h.finished((await h.imagine("three", user_id="U2", channel_id="C2")).id)
    luma.script(Outcome(state="failed", failure_code="content_moderated"))
    flagged = await h.finished((await h.imagine("=flagged")).id)
    return one, two, three, flagged


async def test_usage_report_and_csv_export_cell_by_cell(start_bot, luma):
    h = await start(start_bot)
    one, two, three, flagged = await _four_jobs(h, luma)
    month = datetime.now(timezone.utc).strftime("%B %Y")
    report = (await admin(h, "usage")).splitlines()
    assert report == [
        f"*Usage in {month}* (estimated spend; images delivered)",
        "*By person*", "1. <@U1>: 2 images · $0.14", "2. <@U2>: 1 image · $0.04",
        "*By channel*", "1. <#C1>: 2 images · $0.14", "2. <#C2>: 1 image · $0.04",
        "*By model*", "• uni-1-max images: 1 image · $0.10", "• uni-1 images: 2 images · $0.08",
        "*Total:* 3 images · $0.18",
    ]
    assert "not a month" in await admin(h, "usage 2026-13")

    assert "Preparing the usage export" in await admin(h, "export")
    key = datetime.now(timezone.utc).strftime("%Y-%m")
    await answered_later(h, f"Sent `lumabot-usage-{key}.csv`")
    (upload,) = [f for f in h.slack.files if "D" + ADMIN[1:] in f.channels]
    assert upload.filename == f"lumabot-usage-{key}.csv"
    rows = list(csv.reader(io.StringIO(upload.content.decode())))

    def iso(job):
        return datetime.fromtimestamp(job.created_at, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    assert rows == [
        ["time", "user_id", "channel_id", "model", "type", "outcome", "estimated_cost_usd", "job_id"],
        [iso(one), "U1", "C1", "uni-1", "image", "done", "0.0404", one.id],
        [iso(two), "U1", "C1", "uni-1-max", "image", "done", "0.1000", two.id],
        [iso(three), "U2", "C2", "uni-1", "image", "done", "0.0404", three.id],
        [iso(flagged), "U1", "C1", "uni-1", "image", "failed:content_moderated", "0.0000", flagged.id],
    ]
    await admin(h, "export --prompts")
    await h.slack.wait_for(lambda: len([f for f in h.slack.files if "D" + ADMIN[1:] in f.channels]) == 2)
    with_prompts = list(csv.reader(io.StringIO(h.slack.files[-1].content.decode())))
    assert with_prompts[0][-1] == "prompt"
    assert [r[-1] for r in with_prompts[1:]] == ["one", "two", "three", "'=flagged"]  # no formula


async def test_retention_sweep_and_forget_keep_reports_right(start_bot, luma):
    h = await start(start_bot)
    store, team = h.bot.store, h.slack.team_id
    old_at = time.time() - 40 * 86400
    old = Job(team_id=team, user_id="U3", channel_id="C1", params=GenerationParams(prompt="old"),
              state=JobState.DONE, settled=True, attempts=1, cost_usd=0.0404, created_at=old_at)
    await store.jobs.create(old)
    await store.sessions.save_thumbnail(old.id, b"thumb")
    await store.images.record(KnownImage(team_id=team, channel_id="C1", thread_ts="1.0", origin="lumabot",
                                         job_id=old.id, generation_id="g-old", slack_file_id="FOLD",
                                         created_at=old_at))
    old_month = datetime.fromtimestamp(old_at, timezone.utc).strftime("%Y-%m")
    before = await admin(h, f"usage {old_month}")
    assert "<@U3>: 1 image · $0.04" in before

    one, two, three, flagged = await _four_jobs(h, luma)
    assert "history kept 30 days" in await admin(h, "retention 30")
    swept = await answered_later(h, "Retention sweep done")
    assert "1 job" in swept and "1 thumbnail" in swept and "1 image record" in swept
    assert await store.jobs.get(old.id) is None and await store.sessions.thumbnails([old.id]) == {}
    assert await store.images.by_file(team, "FOLD") is None
    assert await admin(h, f"usage {old_month}") == before  # the totals stay
    assert await store.jobs.get(one.id) is not None         # younger than 30 days

    now_before = await admin(h, "usage")
    await admin(h, "forget <@U1|alice>")
    forgot = await answered_later(h, "Forgot <@U1>")
    assert "3 jobs" in forgot
    for job in (one, two, flagged):
        assert await store.jobs.get(job.id) is None
    assert await store.jobs.get(three.id) is not None
    after = await admin(h, "usage")
    assert "<@U1>" not in after and "a forgotten person" in after
    total = re.compile(r"\*Total:\* .*")
    assert total.search(after).group(0) == total.search(now_before).group(0) == "*Total:* 3 images · $0.18"

    log = await admin(h, "log")
    assert "<@UADMIN>: forgot <@U1>" in log and "<@UADMIN>: history kept 30 days" in log


async def test_own_limits_in_usage_and_app_home(start_bot):
    h = await start(start_bot, LUMABOT_USER_DAILY_IMAGES="10")
    assert "daily image limit of <@U1>: 100" in await admin(h, "limit <@U1|alice> 100")
    status, body = await h.command("usage", command="/luma", user_id="U1")
    assert "100 images a day (your own limit)" in json.loads(body)["text"]
    status, body = await h.command("usage", command="/luma", user_id="U2")
    assert "10 images a day per person" in json.loads(body)["text"]

    await h.slack.post_event(h.url, app_home_opened_event("U1"))
    await h.slack.post_event(h.url, app_home_opened_event(ADMIN))
    await h.slack.wait_for(lambda: h.slack.home_view("U1") and h.slack.home_view(ADMIN))
    mine, theirs = json.dumps(h.slack.home_view("U1")), json.dumps(h.slack.home_view(ADMIN))
    assert "Admin" not in mine and "100 images a day (your own limit)" in mine
    assert '"Admin"' in theirs and "top spenders" in theirs and "<@U1> 100" in theirs

    assert "daily image limit of <@U1>: the default" in await admin(h, "limit <@U1> default")
    status, body = await h.command("usage", command="/luma", user_id="U1")
    assert "10 images a day per person" in json.loads(body)["text"]


async def test_a_model_refusal_with_budgets_set_is_answered(start_bot):
    """An early refusal (place, model) while budgets are set once crashed the admission (its
    counts were looked up in nothing)."""
    h = await start(start_bot, LUMABOT_DAILY_BUDGET_USD="5")
    assert "Done" in await admin(h, "max nobody")
    assert "uni-1-max is for nobody" in await ack_text(h, "a boat --max")
