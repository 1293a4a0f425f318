"""Block Kit rendering: what lumabot's messages look like. Pure functions, no I/O."""

from __future__ import annotations

import re
import time

from datetime import datetime, timezone

from ..jobs.admission import NeedsConfirmation
from ..jobs.batches import BatchProgress
from ..jobs.failures import failure_message
from ..jobs.flags import FLAG_HELP, Flags
from ..jobs.models import ASPECT_RATIOS, Job, JobState, Session
from ..ports import SessionRecap, SessionRules
from ..sessions import AlreadyRunning, SessionAnswer
from ..jobs.text import MESSAGE_LIMIT, clip, money, shown

SECTION_LIMIT = 3000
ALT_TEXT_LIMIT = 1000


def _quote(prompt: str) -> str:
    """The prompt as a block quote, shown literally (escaped: no mention, no link)."""
    lines = prompt.splitlines() or [""]
    body = "\n".join("> " + shown(line) for line in lines)
    return body if len(body) <= SECTION_LIMIT else "> " + shown(" ".join(lines), SECTION_LIMIT - 2)


def _duration(start: float, end: float) -> str:
    secs = max(0, round(end - start))
    return f"{secs} s" if secs < 60 else f"{secs // 60} min {secs % 60:02d} s"


def _seconds(job: Job) -> str:
    return _duration(job.created_at, job.finished_at or job.created_at)


def status_line(job: Job) -> str:
    """The state as a user reads it."""
    if job.state == JobState.DONE:
        return f":white_check_mark: Done in {_seconds(job)}"
    if job.state == JobState.FAILED:
        return f":x: Failed after {_seconds(job)}: see the thread"
    if job.state == JobState.CANCELLED:
        return f":no_entry_sign: Cancelled by <@{job.cancelled_by}>" if job.cancelled_by else ":no_entry_sign: Cancelled"
    if job.state in (JobState.GENERATING, JobState.DELIVERING) or job.shown_generating:
        return ":art: Generating…"
    place = f" · #{job.queue_position} in line" if job.queue_position else ""
    if job.waiting_reason == "capacity":
        return f":hourglass: Queued: waiting for capacity at Luma{place}"
    if job.waiting_reason == "retrying":
        return f":repeat: Queued: Luma failed the first try, trying once more{place}"
    return f":hourglass_flowing_sand: Queued{place}"


def _verb(job: Job) -> str:
    return "an edit" if job.params.type == "image_edit" else "an image"


def studio_status(job: Job, batch: BatchProgress | None = None) -> str:
    """The status line of a studio thread (Slack's AI split view) while its job runs; empty when
    it is finished (clears it)."""
    if batch is not None or job.in_batch:
        p = batch or BatchProgress.new(job)
        if p.finished:
            return ""
        if p.under_way:
            return f"is generating… ({p.done} of {p.size} done)"
        return f"is waiting for Luma (#{p.place} in line)…" if p.place else "is waiting for Luma…"
    if job.state.finished:
        return ""
    if job.state in (JobState.GENERATING, JobState.DELIVERING) or job.shown_generating:
        return "is generating…"
    return f"is waiting for Luma (#{job.queue_position} in line)…" if job.queue_position else "is waiting for Luma…"


def status_text(job: Job, batch: BatchProgress | None = None) -> str:
    """Plain-text fallback (notifications, screen readers): who, what, and the state."""
    if job.in_batch:
        return batch_status_text(job, batch or BatchProgress.new(job))
    if job.origin.via == "share":
        return f"<@{job.user_id}> shared an image: {shown(job.params.prompt, 200)} ({job.params.describe()})"
    state = re.sub(r"^:[a-z_]+: ", "", status_line(job))
    prompt = shown(job.params.prompt, 200)
    return f"<@{job.user_id}> asked for {_verb(job)}: {prompt} ({job.params.describe()}) · {state}"


CANCEL_ACTION = "cancel"


def batch_status_line(p: BatchProgress) -> str:
    """Where the images of a request stand, as a user reads it."""
    if p.finished:
        took = _duration(p.started_at, p.finished_at or p.started_at)
        if p.done == p.size:
            return f":white_check_mark: All {p.size} images done in {took}"
        if p.cancelled == p.size:
            return f":no_entry_sign: Cancelled by <@{p.cancelled_by}>" if p.cancelled_by else ":no_entry_sign: Cancelled"
        if not p.done and not p.cancelled:
            return f":x: Failed after {took}: see the thread"
        rest = [f"{p.failed} failed" if p.failed else "", f"{p.cancelled} cancelled" if p.cancelled else ""]
        return f":white_check_mark: {p.done} of {p.size} done in {took} · " + ", ".join(r for r in rest if r) + (
            ": see the thread" if p.failed else "")
    place = f" · #{p.place} in line" if p.place else ""
    if p.under_way:
        failed = f" · {p.failed} failed" if p.failed else ""
        return f":art: Generating… {p.done} of {p.size} done{failed}"
    if p.capacity:
        return f":hourglass: {p.size} images queued: waiting for capacity at Luma{place}"
    return f":hourglass_flowing_sand: {p.size} images queued{place}"


def _batch_blocks(job: Job, p: BatchProgress) -> list[dict]:
    """The one status message of a batch: the request, where its images stand, and when they
    are all finished, every image together."""
    typed = job.origin.typed or job.params.prompt
    blocks_: list[dict] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": _quote(typed)}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": f"<@{job.user_id}> · {p.size} images"}]},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": batch_status_line(p)}]},
    ]
    for i, file_id in enumerate(p.files):
        blocks_.append({"type": "image", "slack_file": {"id": file_id},
                        "alt_text": alt_text(f"{i + 1} of {len(p.files)}: {job.params.prompt}")})
    if p.waiting and not p.finished:  # (the Cancel button: only while some image waits)
        blocks_.append({"type": "actions", "block_id": "waiting", "elements": [
            _button("Cancel the waiting images" if p.done or p.generating else "Cancel", CANCEL_ACTION,
                    job.batch_id or job.id)]})
    return blocks_


def batch_status_text(job: Job, p: BatchProgress) -> str:
    state = re.sub(r"^:[a-z_]+: ", "", batch_status_line(p))
    return f"<@{job.user_id}> asked for {p.size} images: {shown(job.origin.typed or job.params.prompt, 200)} · {state}"


def status_blocks(job: Job, batch: BatchProgress | None = None) -> list[dict]:
    """The status message; while the job waits for Luma (nothing sent yet), a Cancel button.
    A batch's shows all its images (`batch`; as just admitted when not given)."""
    if job.in_batch:
        return _batch_blocks(job, batch or BatchProgress.new(job))
    if job.origin.via == "share":
        return [{"type": "section", "text": {"type": "mrkdwn", "text": _quote(job.params.prompt)}},
                {"type": "context", "elements": [
                    {"type": "mrkdwn", "text": f":outbox_tray: Shared by <@{job.user_id}> · {job.params.describe()}"}]}]
    blocks_: list[dict] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": _quote(job.params.prompt)}},
        {"type": "context", "elements": [
            {"type": "mrkdwn", "text": f"<@{job.user_id}> · {job.params.describe()}"},
        ]},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": status_line(job)}]},
    ]
    if job.state == JobState.QUEUED and not job.shown_generating:
        blocks_.append({"type": "actions", "block_id": "waiting",
                        "elements": [_button("Cancel", CANCEL_ACTION, job.id)]})
    return blocks_


def failure_text(job: Job) -> str:
    detail = shown(job.failure_detail, 1000) if job.failure_detail else None
    return f"<@{job.user_id}> {failure_message(job.failure_code, detail)}"


def image_filename(prompt: str, ext: str) -> str:
    """A file name made from the prompt: `a-lighthouse-at-dusk.png`."""
    words = re.findall(r"[a-z0-9]+", prompt.lower())
    slug = "-".join(words)[:60].strip("-") or "lumabot-image"
    return f"{slug}.{ext}"


def alt_text(prompt: str) -> str:
    return clip(prompt, ALT_TEXT_LIMIT)


RATIO_SHAPES = {
    "3:1": "panorama", "2:1": "wide", "16:9": "landscape, widescreen", "3:2": "landscape, photo",
    "1:1": "square", "2:3": "portrait, photo", "9:16": "portrait, phone", "1:2": "tall",
    "1:3": "very tall",
}
IMAGINE_MODAL_ID = "imagine_modal"
RESULT_ACTIONS = ("reroll", "vary", "edit", "max", "info", "delete")
SHARE_ACTION, SHARE_PICK_ACTION = "share", "share_pick"


def _button(text: str, action_id: str, value: str, **extra) -> dict:
    return {"type": "button", "text": _plain(text), "action_id": action_id, "value": value, **extra}


def result_actions(job: Job) -> list[dict]:
    """The buttons under a delivered image."""
    buttons = [_button("Reroll", "reroll", job.id), _button("Vary", "vary", job.id), _button("Edit", "edit", job.id)]
    if job.params.model != "uni-1-max":
        buttons.append(_button("uni-1-max", "max", job.id))
    buttons.append(_button("Info", "info", job.id))
    buttons.append(_button("Delete", "delete", job.id, style="danger", confirm={
        "title": _plain("Delete this image?"), "text": _plain("The image and these buttons are removed."),
        "confirm": _plain("Delete"), "deny": _plain("Keep it")}))
    shown_: list[dict] = [{"type": "actions", "block_id": "result", "elements": buttons}]
    if job.channel_id.startswith("D") or job.origin.share_to:  # made in private: share it
        if job.origin.share_to:
            shown_.append({"type": "section", "text": {"type": "mrkdwn", "text": f"Share it to <#{job.origin.share_to}>"},
                           "accessory": _button("Share", SHARE_ACTION, f"{job.id}:{job.origin.share_to}",
                                                style="primary")})
        shown_.append({"type": "actions", "block_id": f"{SHARE_PICK_ACTION}:{job.id}", "elements": [{
            "type": "conversations_select", "action_id": SHARE_PICK_ACTION,
            "placeholder": _plain("Share to a channel…" if not job.origin.share_to else "Or to another channel…"),
            "filter": {"include": ["public", "private"], "exclude_bot_users": True}}]})
    return shown_


VIA = {"imagine": "`/imagine`", "form": "the `/imagine` form", "mention": "a mention of @lumabot",
       "reply": "a reply in the image's thread", "edit": "`/edit`", "shortcut": "*Edit with Luma*",
       "session": "a creative session", "reroll": "*Reroll*", "vary": "*Vary*", "max": "*uni-1-max*",
       "studio": "the private studio", "share": "*Share* (an image made in private, shared here)"}
SOURCES = {"typed": "typed", "session": "the session's default", "form": "chosen in the form"}
_PARAMETERS = (("model", "Model"), ("aspect_ratio", "Aspect ratio"), ("style", "Style"),
               ("output_format", "Format"), ("web_search", "Web search"))
_FLAG_OF = {"model": "model", "aspect_ratio": "aspect_ratio", "style": "style", "output_format": "output_format",
            "web_search": "web"}


def provenance_text(job: Job) -> str:
    return f"How this image was made: {shown(job.params.prompt, 200)} ({job.params.describe()})"


def provenance_blocks(job: Job, *, parent_link: str | None) -> list[dict]:
    """Info under an image, for the clicker only: the prompt as typed and as sent, every
    parameter and where it came from, references, what it was made from, cost, timing, and
    Luma's generation id."""
    p, o = job.params, job.origin
    lines = [f"*Asked by* <@{job.user_id}> {_when(job.created_at)} with {VIA.get(o.via or '', 'lumabot')}"]
    if o.typed and o.typed.strip() != p.prompt:
        lines.append(f"*Typed:* {shown(o.typed, 1000)}")
    for name, label in _PARAMETERS:
        value = getattr(p, name)
        if name == "web_search":
            value = "on" if value else None
        if value is None and name != "model":
            continue
        given = o.flags.get(_FLAG_OF[name])
        source = SOURCES.get(given, given) if given else "default"
        if name == "aspect_ratio" and source == "default" and p.style == "manga":
            source = "manga's page shape"
        lines.append(f"*{label}:* {value} ({source})")
    if job.in_batch:
        lines.append(f"*Request:* image {job.batch_index + 1} of {job.batch_size}"
                     f" ({SOURCES.get(o.flags.get('n', ''), o.flags.get('n') or 'permutations')})")
    if p.image_refs:
        lines.append(f"*References:* {len(p.image_refs)} image{'s' if len(p.image_refs) != 1 else ''}")
    if p.type == "image_edit":
        made_from = f"<{parent_link}|this image>" if parent_link else "an image"
        lines.append(f"*Made from:* {made_from} ({'a variation' if o.via == 'vary' else 'an edit'})")
    cost = money(job.cost_usd) if job.charged or not job.state.finished else f"{money(0)} (not charged)"
    lines.append(f"*Estimated cost:* {cost}")
    if job.finished_at:
        took = f"*Took:* {_duration(job.created_at, job.finished_at)}"
        if job.submitted_at and job.completed_at:
            took += f" (at Luma {_duration(job.submitted_at, job.completed_at)})"
        lines.append(took)
    if job.generation_id:
        lines.append(f"*Luma generation:* `{job.generation_id}`")
    return [{"type": "section", "text": {"type": "mrkdwn", "text": "*How this image was made*\n" + _quote(p.prompt)}},
            {"type": "section", "text": {"type": "mrkdwn", "text": clip("\n".join(lines), SECTION_LIMIT)}}]


def _select(action_id: str, values: list[tuple[str, str]], initial: str | None = None,
            placeholder: str | None = None) -> dict:
    options = [{"text": _plain(label), "value": value} for value, label in values]
    element: dict = {"type": "static_select", "action_id": action_id, "options": options}
    if initial is not None:
        element["initial_option"] = next(o for o in options if o["value"] == initial)
    if placeholder:
        element["placeholder"] = _plain(placeholder)
    return element


def imagine_modal(private_metadata: str, *, per_request: int = 1, presets: list[str] | None = None) -> dict:
    """`/imagine` with no text: a form for the prompt and every option (up to `per_request`
    images of it; one of the `presets` the person may use)."""
    ratios = [(r, f"{r} · {RATIO_SHAPES[r]}") for r in ASPECT_RATIOS]
    several: list[dict] = [{"type": "input", "block_id": "n", "label": _plain("Number of images"),
                "element": _select("n", [(str(k), str(k)) for k in range(1, per_request + 1)], initial="1")}
               ] if per_request > 1 else []
    if presets:
        several.append({"type": "input", "block_id": "preset", "label": _plain("Preset"), "optional": True,
                        "element": _select("preset", [(p, p) for p in presets[:99]] + [("none", "none (no default)")],
                                           placeholder="The channel's or workspace's default")})
    return _modal("Imagine with Luma", callback_id=IMAGINE_MODAL_ID, submit="Imagine",
                  private_metadata=private_metadata, blocks_=[
            {"type": "input", "block_id": "prompt", "label": _plain("What do you want to see?"),
             "element": {"type": "plain_text_input", "action_id": "prompt", "multiline": True,
                         "max_length": 3000, "placeholder": _plain("a lighthouse at dusk, oil painting")}},
            {"type": "input", "block_id": "aspect_ratio", "label": _plain("Aspect ratio"), "optional": True,
             "element": _select("aspect_ratio", ratios, placeholder="Let the model choose")},
            {"type": "input", "block_id": "model", "label": _plain("Model"),
             "element": _select("model", [("uni-1", "uni-1"), ("uni-1-max", "uni-1-max (best, pricier)")],
                                initial="uni-1")},
            *several,
            {"type": "input", "block_id": "format", "label": _plain("Format"), "optional": True,
             "element": _select("format", [("png", "PNG"), ("jpeg", "JPEG")], placeholder="Let the model choose")},
            {"type": "input", "block_id": "refs", "label": _plain("Reference images"), "optional": True,
             "element": {"type": "file_input", "action_id": "refs", "max_files": 8,
                         "filetypes": ["png", "jpg", "jpeg", "webp", "gif", "bmp", "tiff"]}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text":
                "References guide the style or content: up to 8 images, at most 10 MB each (Slack's "
                "limit for forms). Flags typed in the prompt work too."}]},
        ])


def _when(ts: float) -> str:
    return f"<!date^{int(ts)}^{{date_short_pretty}} at {{time}}|" \
           f"{datetime.fromtimestamp(ts, timezone.utc):%Y-%m-%d %H:%M} UTC>"


def home_view(jobs: list[Job], links: dict[str, str], usage: str, *, admin: str | None = None,
              workspace: str | None = None, presets: list[tuple[str, str, bool]] | None = None) -> dict:
    """App Home: for admins the admin section first; then the person's latest generations,
    their usage and limits (in `workspace`, when named), a short how-to (< 100 blocks)."""
    blocks: list[dict] = []
    if admin is not None:
        blocks += [{"type": "header", "text": _plain("Admin")},
                   {"type": "section", "text": {"type": "mrkdwn", "text": clip(admin, SECTION_LIMIT)}},
                   {"type": "divider"}]
    blocks.append({"type": "header", "text": _plain("Your images")})
    if not jobs:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text":
                       "Nothing yet. Type `/imagine a lighthouse at dusk` in a channel lumabot is in."}})
    for job in jobs[:20]:
        state = re.sub(r"^:[a-z_]+: ", "", status_line(job))
        if job.deleted:
            state = "deleted"
        link = links.get(job.id)
        where = f" · <{link}|open the thread>" if link else ""
        blocks.append({"type": "section", "text": {"type": "mrkdwn",
                       "text": f"*{shown(job.params.prompt, 200)}*\n{job.params.describe()} · {state}"}})
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn",
                       "text": f"{_when(job.created_at)} in <#{job.channel_id}>{where}"}]})
    if presets:
        lines = [f"• `{name}`{' (workspace)' if shared else ''}: {what}" for name, what, shared in presets[:30]]
        blocks += [{"type": "divider"}, {"type": "header", "text": _plain("Presets you can use")},
                   {"type": "section", "text": {"type": "mrkdwn", "text": clip("\n".join(lines), SECTION_LIMIT)}}]
    blocks += [
        {"type": "divider"},
        {"type": "header", "text": _plain(f"Usage and limits in {workspace}" if workspace else "Usage and limits")},
        {"type": "section", "text": {"type": "mrkdwn", "text": usage}},
        {"type": "divider"},
        {"type": "header", "text": _plain("How to")},
        {"type": "section", "text": {"type": "mrkdwn", "text": HOW_TO}},
    ]
    return {"type": "home", "blocks": blocks[:100]}


HOW_TO = (
    "• `/imagine <prompt> [flags]` in a channel makes an image; `/imagine` alone opens a form.\n"
    "• Reply in an image's thread with what to change; use the buttons under an image to reroll, "
    "edit, render with uni-1-max or delete it.\n"
    "• `/luma help` lists every command, flag and limit."
)


def full_help(limits: str) -> str:
    """`/luma help`: every command, flag, flow and limit in one message."""
    return "\n".join([
        "*lumabot* makes and edits images with Luma's uni-1 models. The result lands in a thread.",
        "*Commands*",
        "• `/imagine <prompt> [flags]`: a new image; `/imagine` alone opens a form (ratio, model, "
        "format, up to 8 reference images of at most 10 MB each).",
        "• `/edit <what to change> [flags]`: edits the latest image lumabot knows of in this channel, "
        "into that image's thread.",
        "• `/luma usage`: your images and estimated spend, the workspace's, and the limits.",
        "• `/luma session start [flags] [theme]`, `/luma session`, `/luma session stop`: a creative "
        "session in which every message in the channel becomes a prompt.",
        "• `/luma preset save NAME [flags] [style]`, `/luma preset` (a form with reference images), "
        "`/luma preset list|show|delete`: presets; use one with `--preset NAME`.",
        "• `/luma help`: this message.",
        "• `/luma admin`: for workspace admins: where lumabot works, uni-1-max, budgets, limits, "
        "usage, export, retention.",
        f"*Flags* (anywhere in the text): {FLAG_HELP}. `--ar` does not apply to edits: they keep the "
        "image's shape.",
        "*Several images:* `--n 4` makes four of the request under one status message; "
        "`a {red, blue} kite` makes one per option (groups multiply; `\\{` is a literal brace). A "
        "request is admitted whole or not at all.",
        "*Editing* (slash commands do not work in threads, so):",
        "• reply in a lumabot thread with what to change: it edits the newest image there; replies chain;",
        "• attach images to a reply: the first is edited, up to 8 more are references;",
        "• mention @lumabot with an image attached, anywhere: it edits that image in that thread;",
        "• the message shortcut *Edit with Luma* on any message with an image;",
        "• the buttons under each image: Reroll, Vary (a close variation), Edit, uni-1-max, Info (how it "
        "was made, privately), Delete (the requester or an admin);",
        "• *Cancel* on a status message while the image waits for Luma (nothing is spent).",
        f"*Limits:* {limits}",
    ])

EDIT_MODAL_ID = "edit_image_modal"
PRESET_MODAL_ID = "preset_modal"


def preset_modal(private_metadata: str) -> dict:
    """`/luma preset`: a form for a preset: name, flags, style, reference images, who uses it."""
    return _modal("Save a preset", callback_id=PRESET_MODAL_ID, submit="Save", private_metadata=private_metadata,
                  blocks_=[
        {"type": "input", "block_id": "name", "label": _plain("Name"),
         "element": {"type": "plain_text_input", "action_id": "name", "max_length": 40,
                     "placeholder": _plain("noir")}},
        {"type": "input", "block_id": "flags", "label": _plain("Flags"), "optional": True,
         "element": {"type": "plain_text_input", "action_id": "flags", "max_length": 200,
                     "placeholder": _plain("--ar 2:3 --max --n 2")}},
        {"type": "input", "block_id": "style", "label": _plain("Style"), "optional": True,
         "element": {"type": "plain_text_input", "action_id": "style", "multiline": True, "max_length": 1000,
                     "placeholder": _plain("film noir, high contrast, rain-soaked streets")}},
        {"type": "input", "block_id": "refs", "label": _plain("Reference images"), "optional": True,
         "element": {"type": "file_input", "action_id": "refs", "max_files": 8,
                     "filetypes": ["png", "jpg", "jpeg", "webp", "gif"]}},
        {"type": "input", "block_id": "scope", "label": _plain("Who may use it"),
         "element": _select("scope", [("personal", "Only me"), ("workspace", "Everyone (workspace admins)")],
                            initial="personal")},
        {"type": "context", "elements": [{"type": "mrkdwn", "text":
            "Use it with `--preset NAME`. Typed flags win over the preset; its style is added to every "
            "prompt as a direction and its reference images are sent with it."}]},
    ])
LUMA_KEY_MODAL_ID = "luma_key_modal"


def luma_key_modal(explanation: str) -> dict:
    """`/luma admin luma-key`: the workspace's own Luma API key (never filled in: a key is not
    shown again once saved)."""
    return _modal("Luma API key", callback_id=LUMA_KEY_MODAL_ID, submit="Check and save", private_metadata="",
                  blocks_=[
        {"type": "section", "text": {"type": "mrkdwn", "text": clip(explanation, SECTION_LIMIT)}},
        {"type": "input", "block_id": "key", "label": _plain("API key"),
         "element": {"type": "plain_text_input", "action_id": "key", "max_length": 500,
                     "placeholder": _plain("luma-…")}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text":
            "Only workspace admins can set it. `/luma admin luma-key remove` goes back to the shared key."}]},
    ])


CONFIRM_ACTION, DROP_ACTION, CONFIRM_MODAL_ID = "confirm_request", "drop_request", "confirm_request_modal"


def confirm_blocks(preview: NeedsConfirmation) -> list[dict]:
    """A cost preview: what the request makes and costs, and *Make it* / *Cancel*."""
    return [{"type": "section", "text": {"type": "mrkdwn", "text": f":moneybag: {preview}"}},
            {"type": "actions", "block_id": "preview", "elements": [
                _button("Make it", CONFIRM_ACTION, preview.request_id, style="primary"),
                _button("Cancel", DROP_ACTION, preview.request_id)]}]


def confirm_modal(preview: NeedsConfirmation) -> dict:
    """The cost preview of a form's request, in place of the form: submit makes it."""
    return _modal("Confirm the cost", callback_id=CONFIRM_MODAL_ID, submit="Make it",
                  private_metadata=preview.request_id,
                  blocks_=[{"type": "section", "text": {"type": "mrkdwn", "text": f":moneybag: {preview}"}}])


def notice_modal(title: str, text: str) -> dict:
    """A form replaced by a sentence (why its request did not start)."""
    return _modal(title, callback_id="notice", private_metadata="",
                  blocks_=[{"type": "section", "text": {"type": "mrkdwn", "text": clip(text, SECTION_LIMIT)}}])


def _plain(text: str) -> dict:
    return {"type": "plain_text", "text": text}


def _option(value: str) -> dict:
    return {"text": _plain(value), "value": value}


def _modal(title: str, blocks_: list[dict], *, callback_id: str | None = None,
           submit: str | None = None, private_metadata: str | None = None) -> dict:
    """A modal view; without `submit` it only has a Close button."""
    view: dict = {"type": "modal", "title": _plain(title), "close": _plain("Cancel" if submit else "Close"),
                  "blocks": blocks_}
    if callback_id:
        view["callback_id"] = callback_id
    if submit:
        view["submit"] = _plain(submit)
    if private_metadata is not None:
        view["private_metadata"] = private_metadata
    return view


def edit_modal(private_metadata: str) -> dict:
    """The "Edit with Luma" modal: an instruction and a model."""
    return _modal("Edit with Luma", callback_id=EDIT_MODAL_ID, submit="Edit",
                  private_metadata=private_metadata, blocks_=[
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
        ])


def no_image_modal(text: str) -> dict:
    """The shortcut's answer when the message has no image."""
    return _modal("Edit with Luma", [{"type": "section", "text": {"type": "mrkdwn", "text": text}}])


def permalink(team_url: str | None, channel: str, ts: str | None, thread_ts: str | None = None) -> str | None:
    """A link to a message (in its thread), built like Slack's own permalinks."""
    if not team_url or not ts:
        return None
    base = f"{team_url.rstrip('/')}/archives/{channel}/p{ts.replace('.', '')}"
    return f"{base}?thread_ts={thread_ts}&cid={channel}" if thread_ts and thread_ts != ts else base


def session_banner(session: Session, rules: SessionRules) -> str:
    flags = _flags_text(session.flags)
    lines = [f":art: *<@{session.started_by}> started a creative session!*"]
    if session.theme:
        lines.append(f"*Theme:* _{shown(session.theme, 1000)}_")
    if flags:
        lines.append(f"*Defaults:* `{flags}` (flags in a message override them)")
    lines += [
        "*How to take part:* every message you post in this channel becomes an image, in its thread. "
        "Attach an image to a message to edit it; reply in a thread to edit its newest image.",
        f"*Vote:* react with :{rules.vote_emoji}: on the images you like.",
        f"*How it ends:* `/luma session stop`, after {_minutes(rules.idle_minutes)} without a prompt, "
        f"or at {rules.max_images} images. Then lumabot posts a recap and a contact sheet.",
    ]
    return clip("\n".join(lines), MESSAGE_LIMIT)


def _minutes(m: float) -> str:
    return f"{m:g} minute" + ("" if m == 1 else "s")


def _flags_text(flags: dict) -> str:
    return Flags(**flags).as_text()


def session_ended_banner(session: Session) -> str:
    return f":checkered_flag: *The creative session started by <@{session.started_by}> is over.*"


def session_end_reason(reason: str | None, rules: SessionRules) -> str:
    if reason and reason.startswith("stopped:"):
        return f"stopped by <@{reason.split(':', 1)[1]}>"
    if reason == "idle":
        return f"no prompt for {_minutes(rules.idle_minutes)}"
    if reason == "max_images":
        return f"it reached {rules.max_images} images"
    return "it ended"


def session_recap(recap: SessionRecap, *, people: list[str],
                  top: list[tuple[str, str | None, str, int]]) -> str:
    """The recap: `people` are display names (the recap notifies nobody), `top` holds
    (prompt, link, display name, votes) of the best images."""
    session, images, spend = recap.session, recap.images, recap.spend
    vote_emoji = recap.rules.vote_emoji
    lines = [f":checkered_flag: *Creative session over* ({session_end_reason(session.end_reason, recap.rules)})."]
    if session.theme:
        lines.append(f"*Theme:* _{shown(session.theme, 500)}_")
    who = ", ".join(shown(name, 80) for name in people[:30]) or "nobody"
    if len(people) > 30:
        who += f" and {len(people) - 30} more"
    lines.append(f"*{images} image{'s' if images != 1 else ''}* by {len(people)} "
                 f"{'person' if len(people) == 1 else 'people'}: {who} · about ${spend:,.2f} of Luma.")
    if top:
        lines.append(f"*Top {len(top)} by :{vote_emoji}: votes:*")
        for rank, (prompt, link, name, votes) in enumerate(top, 1):
            title = shown(prompt, 80)
            title = f"<{link}|{title}>" if link else title
            lines.append(f"{rank}. {title} by {shown(name, 80)} ({votes} vote{'s' if votes != 1 else ''})")
    elif images:
        lines.append(f"No votes this time (react with :{vote_emoji}: next time).")
    if images:
        lines.append("The contact sheet has every image of the session.")
    return clip("\n".join(lines), MESSAGE_LIMIT)


def _session_time(ts: float) -> str:
    return f"<!date^{int(ts)}^{{time}}|{time.strftime('%H:%M UTC', time.gmtime(ts))}>"


def session_answer(answer: SessionAnswer, team_url: str | None) -> str:
    """What `/luma session ...` tells the person."""
    if isinstance(answer, str):
        return answer
    session = answer.session
    if isinstance(answer, AlreadyRunning):
        link = permalink(team_url, session.channel_id, session.banner_ts)
        where = f" (<{link}|see the banner>)" if link else ""
        return (f"A creative session is already running in this channel, started by "
                f"<@{session.started_by}> at {_session_time(session.started_at)}{where}. "
                "Stop it with `/luma session stop` before starting another.")
    people = answer.people
    minutes = int((time.time() - session.started_at) // 60)
    flags = _flags_text(session.flags)
    parts = [f"*Creative session* started by <@{session.started_by}> at "
             f"{_session_time(session.started_at)} ({minutes} min ago).",
             f"{answer.images} image{'s' if answer.images != 1 else ''} so far "
             f"(of at most {answer.max_images}) · {len(people)} "
             f"{'person' if len(people) == 1 else 'people'}"
             + (f": {', '.join(f'<@{u}>' for u in people)}" if people else "")
             + f" · about ${answer.spend:,.2f} of Luma."]
    if session.theme:
        parts.append(f"Theme: _{shown(session.theme, 1000)}_")
    if flags:
        parts.append(f"Defaults: `{flags}`")
    return "\n".join(parts)
