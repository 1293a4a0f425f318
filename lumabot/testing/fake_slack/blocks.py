"""Block Kit validation: what Slack refuses with invalid_blocks."""

from __future__ import annotations

from typing import Any, Callable


KNOWN_BLOCK_TYPES = {
    "actions",
    "context",
    "context_actions",
    "divider",
    "file",
    "header",
    "image",
    "input",
    "markdown",
    "rich_text",
    "section",
    "table",
    "video",
    "call",
}

# ----------------------------------------------------------------------------------------------
# Block Kit validation
# ----------------------------------------------------------------------------------------------


def _err(errs: list[str], msg: str, ptr: str) -> None:
    errs.append(f"[ERROR] {msg} [json-pointer:{ptr}]")


def _check_text(
    errs: list[str],
    obj: Any,
    ptr: str,
    *,
    plain_only: bool = False,
    max_len: int = 3000,
    required: bool = True,
) -> None:
    if obj is None:
        if required:
            _err(errs, "missing required field: text", ptr)
        return
    if not isinstance(obj, dict):
        _err(errs, "must be a text object", ptr)
        return
    t = obj.get("type")
    if plain_only and t != "plain_text":
        _err(errs, "must be a plain_text object", f"{ptr}/type")
    elif t not in ("plain_text", "mrkdwn"):
        _err(errs, "must provide a valid text object type (plain_text or mrkdwn)", f"{ptr}/type")
    txt = obj.get("text")
    if not isinstance(txt, str) or len(txt) == 0:
        _err(errs, "must be more than 0 characters", f"{ptr}/text")
    elif len(txt) > max_len:
        _err(errs, f"must be less than {max_len + 1} characters", f"{ptr}/text")


def _check_image_ref(
    errs: list[str], el: dict, ptr: str, file_problem: Callable[[dict], str | None] | None
) -> None:
    has_url = "image_url" in el
    has_file = "slack_file" in el
    if has_url == has_file:
        _err(errs, "must provide exactly one of image_url or slack_file", ptr)
    alt = el.get("alt_text")
    if not isinstance(alt, str) or not alt:
        _err(errs, "missing required field: alt_text", f"{ptr}/alt_text")
    elif len(alt) > 2000:
        _err(errs, "must be less than 2001 characters", f"{ptr}/alt_text")
    if has_url:
        url = el.get("image_url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")) or len(url) > 3000:
            _err(errs, "must be a valid http(s) URL of at most 3000 characters", f"{ptr}/image_url")
    if has_file:
        sf = el.get("slack_file")
        if not isinstance(sf, dict) or not (sf.get("id") or sf.get("url")):
            _err(errs, "slack_file must provide id or url", f"{ptr}/slack_file")
        elif file_problem is not None:
            problem = file_problem(sf)
            if problem:
                _err(errs, f"invalid slack file: {problem}", f"{ptr}/slack_file")


def _check_element(
    errs: list[str], el: Any, ptr: str, file_problem: Callable[[dict], str | None] | None
) -> None:
    if not isinstance(el, dict) or not isinstance(el.get("type"), str):
        _err(errs, "missing required field: type", ptr)
        return
    t = el["type"]
    if t == "image":
        _check_image_ref(errs, el, ptr, file_problem)
        return
    aid = el.get("action_id")
    if aid is not None and (not isinstance(aid, str) or not aid or len(aid) > 255):
        _err(errs, "action_id must be 1 to 255 characters", f"{ptr}/action_id")
    if t == "button":
        _check_text(errs, el.get("text"), f"{ptr}/text", plain_only=True, max_len=75)
        v = el.get("value")
        if v is not None and (not isinstance(v, str) or len(v) > 2000):
            _err(errs, "must be less than 2001 characters", f"{ptr}/value")
        u = el.get("url")
        if u is not None and (not isinstance(u, str) or len(u) > 3000):
            _err(errs, "must be less than 3001 characters", f"{ptr}/url")
        st = el.get("style")
        if st is not None and st not in ("primary", "danger"):
            _err(errs, "must be a valid enum value", f"{ptr}/style")
    elif t in ("static_select", "multi_static_select", "overflow", "radio_buttons", "checkboxes"):
        options = el.get("options")
        groups = el.get("option_groups")
        if options is None and groups is None:
            _err(errs, "must provide options or option_groups", ptr)
        all_opts: list[tuple[str, Any]] = []
        if options is not None:
            if not isinstance(options, list) or not options:
                _err(errs, "options must be a non-empty array", f"{ptr}/options")
            else:
                limit = 5 if t == "overflow" else (10 if t in ("radio_buttons", "checkboxes") else 100)
                if len(options) > limit:
                    _err(errs, f"must provide no more than {limit} items", f"{ptr}/options")
                all_opts += [(f"{ptr}/options/{i}", o) for i, o in enumerate(options)]
        if isinstance(groups, list):
            for gi, g in enumerate(groups):
                for oi, o in enumerate((g or {}).get("options") or []):
                    all_opts.append((f"{ptr}/option_groups/{gi}/options/{oi}", o))
        for optr, o in all_opts:
            if not isinstance(o, dict):
                _err(errs, "must be an option object", optr)
                continue
            _check_text(
                errs,
                o.get("text"),
                f"{optr}/text",
                plain_only=t not in ("radio_buttons", "checkboxes"),
                max_len=75,
            )
            v = o.get("value")
            if not isinstance(v, str) or not v or len(v) > 150:
                _err(errs, "option value must be 1 to 150 characters", f"{optr}/value")


def validate_blocks(
    blocks: Any,
    *,
    max_blocks: int = 50,
    file_problem: Callable[[dict], str | None] | None = None,
) -> list[str]:
    """Check Block Kit basics; return Slack-style error strings (empty list when valid)."""
    errs: list[str] = []
    if not isinstance(blocks, list):
        _err(errs, "must be an array", "/blocks")
        return errs
    if len(blocks) > max_blocks:
        _err(errs, f"no more than {max_blocks} items allowed", "/blocks")
    block_ids: set[str] = set()
    for i, b in enumerate(blocks):
        ptr = f"/blocks/{i}"
        if not isinstance(b, dict):
            _err(errs, "must be an object", ptr)
            continue
        t = b.get("type")
        if not isinstance(t, str):
            _err(errs, "missing required field: type", ptr)
            continue
        if t not in KNOWN_BLOCK_TYPES:
            _err(errs, f"unsupported type: {t}", f"{ptr}/type")
            continue
        bid = b.get("block_id")
        if bid is not None:
            if not isinstance(bid, str) or not bid or len(bid) > 255:
                _err(errs, "block_id must be 1 to 255 characters", f"{ptr}/block_id")
            elif bid in block_ids:
                _err(errs, f"duplicate block_id: {bid}", f"{ptr}/block_id")
            else:
                block_ids.add(bid)
        if t == "section":
            if b.get("text") is None and not b.get("fields"):
                _err(errs, "must provide text or fields", ptr)
            if b.get("text") is not None:
                _check_text(errs, b.get("text"), f"{ptr}/text", max_len=3000)
            fields = b.get("fields")
            if fields is not None:
                if not isinstance(fields, list) or len(fields) > 10:
                    _err(errs, "fields must be an array of at most 10 items", f"{ptr}/fields")
                else:
                    for fi, f in enumerate(fields):
                        _check_text(errs, f, f"{ptr}/fields/{fi}", max_len=2000)
            if b.get("accessory") is not None:
                _check_element(errs, b["accessory"], f"{ptr}/accessory", file_problem)
        elif t == "header":
            _check_text(errs, b.get("text"), f"{ptr}/text", plain_only=True, max_len=150)
        elif t == "image":
            _check_image_ref(errs, b, ptr, file_problem)
            if b.get("title") is not None:
                _check_text(errs, b["title"], f"{ptr}/title", plain_only=True, max_len=2000)
        elif t == "context":
            els = b.get("elements")
            if not isinstance(els, list) or not els or len(els) > 10:
                _err(errs, "elements must be an array of 1 to 10 items", f"{ptr}/elements")
            else:
                for ei, el in enumerate(els):
                    eptr = f"{ptr}/elements/{ei}"
                    if isinstance(el, dict) and el.get("type") == "image":
                        _check_image_ref(errs, el, eptr, file_problem)
                    else:
                        _check_text(errs, el, eptr, max_len=3000)
        elif t == "actions":
            els = b.get("elements")
            if not isinstance(els, list) or not els or len(els) > 25:
                _err(errs, "elements must be an array of 1 to 25 items", f"{ptr}/elements")
            else:
                seen: set[str] = set()
                for ei, el in enumerate(els):
                    _check_element(errs, el, f"{ptr}/elements/{ei}", file_problem)
                    aid = el.get("action_id") if isinstance(el, dict) else None
                    if isinstance(aid, str):
                        if aid in seen:
                            _err(errs, f"duplicate action_id: {aid}", f"{ptr}/elements/{ei}/action_id")
                        seen.add(aid)
        elif t == "input":
            _check_text(errs, b.get("label"), f"{ptr}/label", plain_only=True, max_len=2000)
            if not isinstance(b.get("element"), dict):
                _err(errs, "missing required field: element", f"{ptr}/element")
            else:
                _check_element(errs, b["element"], f"{ptr}/element", file_problem)
            if b.get("hint") is not None:
                _check_text(errs, b["hint"], f"{ptr}/hint", plain_only=True, max_len=2000)
        elif t == "markdown":
            txt = b.get("text")
            if not isinstance(txt, str) or not txt or len(txt) > 12000:
                _err(errs, "text must be 1 to 12000 characters", f"{ptr}/text")
    return errs
