"""What one request makes (jobs/requests.py) and how a batch shows (jobs/batches.py)."""

from __future__ import annotations

import pytest

from lumabot.jobs.batches import BatchProgress
from lumabot.jobs.flags import Flags, PromptError
from lumabot.jobs.models import GenerationParams, Job, JobState
from lumabot.jobs.requests import TooMany, combinations, expand, request_texts


def test_groups_multiply_first_varying_slowest_and_escaped_braces_stay():
    assert expand("a {red, blue} kite --ar {1:1, 16:9}") == [
        "a red kite --ar 1:1", "a red kite --ar 16:9", "a blue kite --ar 1:1", "a blue kite --ar 16:9"]
    assert expand(r"\{json\} a {x,y}") == ["{json} a x", "{json} a y"]
    assert expand("a {, tiny} cat") == ["a cat", "a tiny cat"]
    assert combinations("{a,b,c} {d,e}") == 6 and combinations("plain") == 1


def test_each_combination_is_made_n_times_and_n_comes_from_defaults_too():
    assert request_texts("a {red, blue} kite --n 2", limit=4) == ["a red kite --n 2"] * 2 + ["a blue kite --n 2"] * 2
    assert request_texts("a kite", limit=4, defaults=Flags(n=3)) == ["a kite"] * 3
    assert request_texts("a kite --n 1", limit=4, defaults=Flags(n=3)) == ["a kite --n 1"]


@pytest.mark.parametrize("text, message", [
    ("{a,b,c,d,e}", "would make 5 images (5 combinations)"),
    ("{a,b,c} --n 2", "would make 6 images (3 combinations × 2 each)"),
    ("{a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p} {a,b,c,d,e,f,g,h,i,j} --n 3", "would make 480 images"),
    ("x --n 5", "would make 5 images;"),
])
def test_too_many_is_refused_with_how_many_it_would_make(text, message):
    with pytest.raises(TooMany) as refused:
        request_texts(text, limit=4)
    assert message in str(refused.value) and "at most 4" in str(refused.value)


@pytest.mark.parametrize("text", ["a {b", "a } b", "{a, {b}}"])
def test_braces_that_do_not_pair_are_explained(text):
    with pytest.raises(PromptError) as refused:
        request_texts(text, limit=4)
    assert r"\{" in str(refused.value) or r"\}" in str(refused.value)


def _job(i: int, state: JobState, **kw) -> Job:
    return Job(id=f"j{i}", team_id="T", user_id="U", channel_id="C", params=GenerationParams(prompt="p"),
               state=state, batch_id="j0", batch_index=i, batch_size=3, created_at=100.0, **kw)


def test_a_batch_shows_its_progress_and_at_the_end_its_images():
    waiting = BatchProgress.of([_job(0, JobState.QUEUED, queue_position=4), _job(1, JobState.QUEUED, queue_position=2),
                                _job(2, JobState.QUEUED)])
    assert waiting.place == 2 and waiting.shown() == ("waiting", 2, False)
    under_way = BatchProgress.of([_job(0, JobState.DONE, slack_file_id="F0"), _job(1, JobState.GENERATING),
                                  _job(2, JobState.QUEUED)])
    assert under_way.shown() == ("under way", 1, 0, True) and under_way.files == ()
    done = BatchProgress.of([_job(0, JobState.DONE, slack_file_id="F0", finished_at=130.0),
                             _job(1, JobState.FAILED, finished_at=140.0),
                             _job(2, JobState.DONE, slack_file_id="F2", finished_at=120.0)])
    assert done.finished and done.files == ("F0", "F2") and done.finished_at == 140.0
