"""views.*: modals (with trigger ids that expire and are used once) and App Home."""

from __future__ import annotations

import secrets
import time
from typing import Any

from .records import _Ctx, _json_param, _new_id, _s, _SlackError, ViewCall
from .blocks import _check_text, _err, validate_blocks


class ViewMethods:
    """views.* methods of the fake."""

    def _consume_trigger(self, trigger_id: str | None) -> str | None:
        if not trigger_id:
            raise _SlackError("invalid_arguments", detail="trigger_id is required")
        t = self._triggers.get(trigger_id)
        if t is None:
            raise _SlackError("invalid_trigger_id")
        issued, user, used = t
        if used:
            raise _SlackError("exchanged_trigger_id")
        if time.monotonic() - issued > self.trigger_ttl:
            raise _SlackError("expired_trigger_id")
        self._triggers[trigger_id] = (issued, user, True)
        return user

    def _check_view(self, view: Any, kinds: tuple[str, ...]) -> dict:
        if not isinstance(view, dict):
            raise _SlackError("invalid_arguments", messages=["[ERROR] missing required field: view"])
        errs: list[str] = []
        vt = view.get("type")
        if vt not in kinds:
            _err(errs, f"must be one of {list(kinds)}", "/view/type")
        blocks = view.get("blocks")
        if not isinstance(blocks, list):
            _err(errs, "missing required field: blocks", "/view/blocks")
        else:
            for e in validate_blocks(blocks, max_blocks=100, file_problem=self._slack_file_problem):
                errs.append(e.replace("[json-pointer:/blocks", "[json-pointer:/view/blocks"))
        if vt == "modal":
            _check_text(errs, view.get("title"), "/view/title", plain_only=True, max_len=24)
            for k in ("submit", "close"):
                if view.get(k) is not None:
                    _check_text(errs, view[k], f"/view/{k}", plain_only=True, max_len=24)
            if isinstance(blocks, list) and any(isinstance(b, dict) and b.get("type") == "input" for b in blocks):
                if view.get("submit") is None:
                    _err(errs, "must provide a submit property when using input blocks", "/view/submit")
        pm = view.get("private_metadata")
        if pm is not None and (not isinstance(pm, str) or len(pm) > 3000):
            _err(errs, "must be less than 3001 characters", "/view/private_metadata")
        cb = view.get("callback_id")
        if cb is not None and (not isinstance(cb, str) or len(cb) > 255):
            _err(errs, "must be less than 256 characters", "/view/callback_id")
        if errs:
            raise _SlackError("invalid_arguments", messages=errs)
        return view

    def _stored_view(self, view: dict, vid: str, root: str | None = None, previous: str | None = None) -> dict:
        return {
            "id": vid,
            "team_id": self.team_id,
            "type": view.get("type"),
            "blocks": view.get("blocks", []),
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "state": {"values": {}},
            "hash": f"{int(time.time())}.{secrets.token_hex(4)}",
            "title": view.get("title"),
            "clear_on_close": bool(view.get("clear_on_close", False)),
            "notify_on_close": bool(view.get("notify_on_close", False)),
            "close": view.get("close"),
            "submit": view.get("submit"),
            "previous_view_id": previous,
            "root_view_id": root or vid,
            "app_id": self.app_id,
            "external_id": view.get("external_id", ""),
            "app_installed_team_id": self.team_id,
            "bot_id": self.bot_id,
        }

    def _views_open(self, p: dict, ctx: "_Ctx") -> dict:
        trigger_id = _s(p, "trigger_id")
        view = self._check_view(_json_param(p, "view"), ("modal",))
        user = self._consume_trigger(trigger_id)
        vid = _new_id("V")
        stored = self._stored_view(view, vid)
        self._open_views[vid] = stored
        self.views.append(ViewCall("views.open", vid, stored, user, trigger_id))
        return {"view": stored}

    def _views_publish(self, p: dict, ctx: "_Ctx") -> dict:
        user = _s(p, "user_id")
        if not user:
            raise _SlackError("invalid_arguments", detail="user_id is required")
        u = self._users.get(user)
        if u is not None and not u.exists:
            raise _SlackError("user_not_found")
        view = self._check_view(_json_param(p, "view"), ("home",))
        current = self._home_views.get(user)
        h = _s(p, "hash")
        if h and current is not None and h != current["hash"]:
            raise _SlackError("hash_conflict")
        vid = current["id"] if current else _new_id("V")
        stored = self._stored_view(view, vid)
        self._home_views[user] = stored
        self.views.append(ViewCall("views.publish", vid, stored, user))
        return {"view": stored}

    # reactions
