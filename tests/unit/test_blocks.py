"""What lumabot's messages say (pure rendering, slack/blocks.py)."""

from __future__ import annotations

import pytest

from lumabot.jobs.failures import FAILURE_MESSAGES
from lumabot.jobs.models import GenerationParams, Job, JobState
from lumabot.slack import blocks


def _job(**kw) -> Job:
    return Job(team_id="T1", user_id="U1", channel_id="C1",
               params=GenerationParams(prompt="a <b> & c"), **kw)


@pytest.mark.parametrize("code", sorted(FAILURE_MESSAGES))
def test_every_failure_code_has_its_own_explanation(code):
    text = blocks.failure_text(_job(state=JobState.FAILED, failure_code=code))
    assert FAILURE_MESSAGES[code] in text


@pytest.mark.parametrize("job, words", [
    (_job(), "Queued"),
    (_job(queue_position=3), "#3 in line"),
    (_job(waiting_reason="capacity", queue_position=2), "waiting for capacity at Luma · #2 in line"),
    (_job(waiting_reason="retrying"), "trying once more"),
    (_job(state=JobState.GENERATING), "Generating"),
    (_job(state=JobState.DELIVERING), "Generating"),
    (_job(state=JobState.DONE, created_at=0, finished_at=12), "Done in 12"),
    (_job(state=JobState.FAILED, created_at=0, finished_at=3), "Failed after 3"),
])
def test_the_status_line_follows_what_the_domain_says_is_shown(job, words):
    assert words in blocks.status_line(job)


def test_status_text_escapes_the_prompt():
    assert "a &lt;b&gt; &amp; c" in blocks.status_text(_job())


def test_what_is_shown_changes_exactly_when_the_status_line_does():
    """The runner updates the message when Job.shown_status changes; the line must agree."""
    variants = [_job(), _job(queue_position=2), _job(waiting_reason="capacity"),
                _job(state=JobState.GENERATING), _job(state=JobState.DELIVERING),
                _job(state=JobState.DONE, created_at=0, finished_at=1),
                _job(state=JobState.FAILED, created_at=0, finished_at=1)]
    for a in variants:
        for b in variants:
            assert (a.shown_status() == b.shown_status()) == (blocks.status_line(a) == blocks.status_line(b))
