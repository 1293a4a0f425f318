"""Admin input and export cells that could hurt (issue #21, points 9 and 11): numbers are bounded
and refused with a clear message, CSV cells that a spreadsheet in any locale would read as a
formula stay text, and group DMs are governed by the channel allow-list (`dms off` is about
one-to-one DMs with lumabot)."""

from __future__ import annotations

import json

import pytest

from lumabot.admin.reports import csv_cell

from .test_admin import admin, ack_text, ephemerals_for, start


async def test_admin_numbers_are_bounded_with_a_clear_message(start_bot):
    h = await start(start_bot)
    huge = "9" * 400
    for command, message in ((f"budget month {huge}", "is not an amount in dollars from 0 to 1,000,000"),
                             ("budget day 1000001", "is not an amount in dollars from 0 to 1,000,000"),
                             (f"budget channel <#C2|design> {huge}", "is not an amount in dollars"),
                             (f"limit <@U1|alice> {'7' * 5000}", "is not a number of images a day from 0 to 100,000"),
                             ("limit <@U1|alice> 100001", "is not a number of images a day"),
                             (f"retention {'3' * 5000}", "is not a number of days from 1 to 3,650"),
                             ("retention 0", "is not a number of days from 1 to 3,650")):
        answer = await admin(h, command)
        assert message in answer, command
        assert len(answer) < 4000 and "inf" not in answer.split("\n\n")[0]
    assert await h.bot.store.policy.log(h.slack.team_id) == []  # nothing was stored
    assert "monthly budget $1,000,000.00" in await admin(h, "budget month 1000000")
    assert "daily image limit of <@U1>: 100000" in await admin(h, "limit <@U1|alice> 100000")
    assert "history kept 3650 days" in await admin(h, "retention 3650")


@pytest.mark.parametrize("text", [
    "=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1", " =1", "  @x", ";=1+1", ",=1", "; =HYPERLINK(x)",
    "\uff1d1+1", "\uff0b1", "\uff20x", "\uff1b\uff1d1", "\u3000=1", "\n=1",
])
def test_csv_cells_that_could_be_a_formula_stay_text(text):
    assert csv_cell(text) == "'" + text


@pytest.mark.parametrize("text", ["a cat", "cats = dogs", "1+1", "e-mail", "", "C1", "a;=b"])
def test_ordinary_csv_cells_are_left_alone(text):
    assert csv_cell(text) == text


async def test_group_dms_follow_the_allow_list_and_dms_off_is_one_to_one(start_bot):
    h = await start(start_bot)
    assert "direct messages off" in await admin(h, "dms off")
    # a group DM (mpim): no allow-list, so lumabot works there though DMs are off
    status, body, *_ = await h.slack.post_command(h.url, "/imagine", "a group picture", user_id="U1",
                                                  channel_id="GMPIM1", channel_name="mpdm-alice--bob-1")
    assert status == 200 and not body
    await h.wait_job(lambda j: j.channel_id == "GMPIM1")
    # ... while a one-to-one DM is refused
    assert "not enabled in direct messages" in await ack_text(h, "a private picture", channel_id="DU1")
    # with an allow-list, a group DM is a place like any channel: outside the list, refused
    await admin(h, "channels only <#C2|design>")
    status, body, *_ = await h.slack.post_command(h.url, "/imagine", "again", user_id="U1",
                                                  channel_id="GMPIM1", channel_name="mpdm-alice--bob-1")
    assert "not enabled in <#GMPIM1>" in json.loads(body)["text"]
    assert len([j for j in await h.jobs() if j.channel_id == "GMPIM1"]) == 1
    assert ephemerals_for(h, "U1") == []
