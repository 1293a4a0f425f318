"""Block Kit rendering: what lumabot's messages look like. Pure functions, no I/O."""

from __future__ import annotations

import re

from ..jobs.failures import failure_message
from ..jobs.flags import FLAG_HELP
from ..jobs.models import Job, JobState

SECTION_LIMIT = 3000
ALT_TEXT_LIMIT = 1000


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _quote(prompt: str) -> str:
    body = _clip(prompt, SECTION_LIMIT - 10)
    return "\n".join("> " + line for line in body.splitlines() or [""])


def _seconds(job: Job) -> str:
    end = job.finished_at or job.created_at
    secs = max(0, round(end - job.created_at))
    if secs < 60:
        return f"{secs} s"
    return f"{secs // 60} min {secs % 60:02d} s"


def status_line(job: Job) -> str:
    """The state as a user reads it."""
    if job.state == JobState.DONE:
        return f":white_check_mark: Done in {_seconds(job)}"
    if job.state == JobState.FAILED:
        return f":x: Failed after {_seconds(job)}: see the thread"
    if job.state in (JobState.GENERATING, JobState.DELIVERING):
        return ":art: Generating…"
    place = f" · #{job.queue_position} in line" if job.queue_position else ""
    if job.waiting_reason == "capacity":
        return f":hourglass: Queued: waiting for capacity at Luma{place}"
    if job.waiting_reason == "retrying":
        return f":repeat: Queued: Luma failed the first try, trying once more{place}"
    return f":hourglass_flowing_sand: Queued{place}"


def _verb(job: Job) -> str:
    return "an edit" if job.params.type == "image_edit" else "an image"


def status_text(job: Job) -> str:
    """Plain-text fallback (notifications, screen readers): who, what, and the state."""
    state = re.sub(r"^:[a-z_]+: ", "", status_line(job))
    prompt = _clip(job.params.prompt, 200)
    return f"<@{job.user_id}> asked for {_verb(job)}: {prompt} ({job.params.describe()}) · {state}"


def status_blocks(job: Job) -> list[dict]:
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": _quote(job.params.prompt)}},
        {"type": "context", "elements": [
            {"type": "mrkdwn", "text": f"<@{job.user_id}> · {job.params.describe()}"},
        ]},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": status_line(job)}]},
    ]


def failure_text(job: Job) -> str:
    return f"<@{job.user_id}> {failure_message(job.failure_code, job.failure_detail)}"


def image_filename(prompt: str, ext: str) -> str:
    """A file name made from the prompt: `a-lighthouse-at-dusk.png`."""
    words = re.findall(r"[a-z0-9]+", prompt.lower())
    slug = "-".join(words)[:60].strip("-") or "lumabot-image"
    return f"{slug}.{ext}"


def alt_text(prompt: str) -> str:
    return _clip(prompt, ALT_TEXT_LIMIT)


USAGE = (
    "*Make an image:* `/imagine <what you want to see> [flags]`\n"
    "For example `/imagine a lighthouse at dusk --ar 16:9 --max`\n"
    f"*Flags:* {FLAG_HELP}.\n"
    "The image arrives in a thread under the status message."
)

LUMA_HELP = (
    "*lumabot* makes and edits images with Luma's uni-1 models.\n"
    f"{USAGE}\n"
    "*Edit an image:* reply in its thread with what to change (`make it night --max`), attach "
    "your own image to a reply, mention @lumabot with an image attached, use `/edit <what to "
    "change>` for the latest image in the channel, or the message shortcut *Edit with Luma*.\n"
    "*Commands:* `/imagine` makes an image, `/edit` edits one, `/luma help` shows this help."
)

EDIT_MODAL_ID = "edit_image_modal"


def _plain(text: str) -> dict:
    return {"type": "plain_text", "text": text}


def _option(value: str) -> dict:
    return {"text": _plain(value), "value": value}


def edit_modal(private_metadata: str) -> dict:
    """The "Edit with Luma" modal: an instruction and a model."""
    return {
        "type": "modal",
        "callback_id": EDIT_MODAL_ID,
        "title": _plain("Edit with Luma"),
        "submit": _plain("Edit"),
        "close": _plain("Cancel"),
        "private_metadata": private_metadata,
        "blocks": [
            {"type": "input", "block_id": "instruction", "label": _plain("What should change?"),
             "element": {"type": "plain_text_input", "action_id": "instruction", "multiline": True,
                         "max_length": 3000,
                         "placeholder": _plain("make it night, add falling snow")}},
            {"type": "input", "block_id": "model", "label": _plain("Model"),
             "element": {"type": "static_select", "action_id": "model",
                         "initial_option": _option("uni-1"),
                         "options": [_option("uni-1"), _option("uni-1-max")]}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text":
                "The edited image goes into this message's thread."}]},
        ],
    }


def no_image_modal(text: str) -> dict:
    """The shortcut's answer when the message has no image."""
    return {
        "type": "modal",
        "title": _plain("Edit with Luma"),
        "close": _plain("Close"),
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
    }
