"""What people type: flags, their errors, and the parameters that reach Luma."""

from __future__ import annotations

import pytest

from lumabot.jobs.flags import Flags, PromptError, build_params, edit_params, imagine_params, parse_prompt
from lumabot.jobs.models import ASPECT_RATIOS, ImageSource


@pytest.mark.parametrize("text, expected", [
    ("a cat --max", {"model": "uni-1-max", "prompt": "a cat"}),
    ("a cat --model uni-1-max --ar 1:3", {"model": "uni-1-max", "aspect_ratio": "1:3"}),
    ("--ar 2:3 a manga hero --style manga", {"aspect_ratio": "2:3", "style": "manga", "prompt": "a manga hero"}),
    ("a cat --format jpeg", {"output_format": "jpeg"}),
    ("a cat \u2014ar 9:16", {"aspect_ratio": "9:16", "prompt": "a cat"}),  # Slack's smart dash
    ("a cat \u2013ar 9:16", {"aspect_ratio": "9:16", "prompt": "a cat"}),
    ("a cat --ar=3:1 in space", {"aspect_ratio": "3:1", "prompt": "a cat in space"}),
    ("fish & chips", {"prompt": "fish & chips", "model": "uni-1"}),
    ("y" * 6000, {"prompt": "y" * 6000}),
])
def test_flags_become_parameters_and_leave_the_prompt(text, expected):
    params = imagine_params(text)
    for key, value in expected.items():
        assert getattr(params, key) == value, key


@pytest.mark.parametrize("text, must_contain", [
    ("a cat --sharp", ["Unknown flag `--sharp`", "--ar"]),
    ("a cat --ar", ["`--ar` needs a value", *ASPECT_RATIOS]),
    ("a cat --ar --max", ["`--ar` needs a value"]),
    ("a cat --ar 4:3", ["`4:3` is not an aspect ratio", *ASPECT_RATIOS]),
    ("a cat --model uni-2", ["Unknown model `uni-2`", "uni-1", "uni-1-max"]),
    ("a cat --format gif", ["Unknown format `gif`", "png", "jpeg"]),
    ("a hero --style manga --ar 16:9", ["needs a portrait aspect ratio", "2:3", "9:16", "1:2", "1:3"]),
    ("a hero --style manga --ar 1:1", ["needs a portrait aspect ratio"]),
    ("x" * 6001, ["6,001 characters", "6,000"]),
    ("--ar 16:9", ["Add a description"]),
])
def test_bad_input_is_explained(text, must_contain):
    with pytest.raises(PromptError) as err:
        imagine_params(text)
    for piece in must_contain:
        assert piece in str(err.value), (piece, str(err.value))


def test_typed_flags_win_over_defaults():
    text, typed = parse_prompt("a heron --ar 1:1")
    params = build_params(text, typed, defaults=Flags(aspect_ratio="2:3", model="uni-1-max"))
    assert (params.aspect_ratio, params.model) == ("1:1", "uni-1-max")


def test_edits_keep_the_image_shape_and_take_references():
    source = ImageSource(generation_id="gen-1")
    refs = [ImageSource(generation_id="gen-2")]
    params = edit_params("make it night --max", source, refs=refs)
    assert params.type == "image_edit" and params.model == "uni-1-max"
    assert params.source == source and params.image_refs == refs and params.aspect_ratio is None
    with pytest.raises(PromptError):
        edit_params("  ", source)
