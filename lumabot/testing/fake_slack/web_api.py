"""The Web API methods about messages, conversations and people: auth.test, chat.*, conversations.history/replies/open, users.info."""

from __future__ import annotations


from .records import (
    ChannelInfo,
    _Ctx,
    Ephemeral,
    _json_param,
    Message,
    next_ts,
    PERMALINK_HOST,
    _s,
    _SlackError,
    _truthy,
    UserInfo,
)


class WebApiMethods:
    """Web API methods of the fake (messages, conversations, people)."""

    def _auth_test(self, p: dict, ctx: "_Ctx") -> dict:
        return {
            "url": f"{PERMALINK_HOST}/",
            "team": self.team_name,
            "user": "lumabot",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": self.enterprise_install,
            **({"enterprise_id": self.enterprise_id} if self.enterprise_id else {}),
        }

    def _chat_post_message(self, p: dict, ctx: "_Ctx") -> dict:
        ch = self._channel(_s(p, "channel"))
        text = p.get("text")
        text = None if text is None else str(text)
        blocks = self._blocks_param(p)
        attachments = _json_param(p, "attachments")
        if not text and not blocks and not attachments:
            raise _SlackError("no_text")
        if text and len(text) > 40000:
            raise _SlackError("msg_too_long")
        self._check_blocks(blocks)
        thread_ts = _s(p, "thread_ts")
        if ch.read_only:
            raise _SlackError("restricted_action_read_only_channel")
        if ch.thread_only and not thread_ts:
            raise _SlackError("restricted_action_thread_only_channel")
        if thread_ts and not self._is_thread_parent(ch.id, thread_ts):
            raise _SlackError("thread_not_found")
        m = Message(
            channel=ch.id,
            ts=next_ts(),
            text=text,
            blocks=blocks,
            thread_ts=thread_ts,
            user=self.bot_user_id,
            bot_id=self.bot_id,
            app_id=self.app_id,
            team=self.team_id,
            reply_broadcast=_truthy(p.get("reply_broadcast")),
            attachments=attachments,
            metadata=_json_param(p, "metadata"),
            params=dict(p),
            seq=next(self._seq),
        )
        m.history.append((text, blocks))
        self._add_message(m)
        return {"channel": ch.id, "ts": m.ts, "message": m.to_dict()}

    def _own_message(self, p: dict, not_ours: str) -> tuple[ChannelInfo, Message]:
        """The bot's message at (channel, ts) of a chat.update/delete; Slack's errors otherwise."""
        ch = self._channel(_s(p, "channel"), need_member=False)
        m = self._msg_index.get((ch.id, _s(p, "ts") or ""))
        if m is None or m.deleted:
            raise _SlackError("message_not_found")
        if m.bot_id != self.bot_id:
            raise _SlackError(not_ours)
        return ch, m

    def _chat_update(self, p: dict, ctx: "_Ctx") -> dict:
        ch, m = self._own_message(p, "cant_update_message")
        has_text = "text" in p and p.get("text") is not None
        has_blocks = "blocks" in p and p.get("blocks") is not None
        if not has_text and not has_blocks and not p.get("attachments"):
            raise _SlackError("no_text")
        blocks = self._blocks_param(p) if has_blocks else m.blocks
        if has_blocks and blocks is None:
            blocks = []
        if has_blocks:
            self._check_blocks(blocks)
        text = str(p.get("text")) if has_text else m.text
        if text and len(text) > 40000:
            raise _SlackError("msg_too_long")
        m.text = text
        m.blocks = blocks
        if p.get("metadata"):
            m.metadata = _json_param(p, "metadata")
        if p.get("attachments"):
            m.attachments = _json_param(p, "attachments")
        m.history.append((text, blocks))
        return {"channel": ch.id, "ts": m.ts, "text": text or "", "message": m.to_dict()}

    def _chat_delete(self, p: dict, ctx: "_Ctx") -> dict:
        ch, m = self._own_message(p, "cant_delete_message")
        m.deleted = True
        return {"channel": ch.id, "ts": m.ts}

    def _chat_post_ephemeral(self, p: dict, ctx: "_Ctx") -> dict:
        ch = self._channel(_s(p, "channel"))
        user = _s(p, "user")
        if not user:
            raise _SlackError("user_not_found")
        u = self._users.get(user)
        if u is not None and not u.exists:
            raise _SlackError("user_not_found")
        if ch.people is not None and user not in ch.people:
            raise _SlackError("user_not_in_channel")
        text = p.get("text")
        text = None if text is None else str(text)
        blocks = self._blocks_param(p)
        if not text and not blocks and not p.get("attachments"):
            raise _SlackError("no_text")
        self._check_blocks(blocks)
        mts = next_ts()
        self.ephemerals.append(
            Ephemeral(
                channel=ch.id,
                user=user,
                text=text,
                blocks=blocks,
                thread_ts=_s(p, "thread_ts"),
                message_ts=mts,
                params=dict(p),
            )
        )
        return {"message_ts": mts}

    def _conversations_open(self, p: dict, ctx: "_Ctx") -> dict:
        """The DM with one person (`users`); lumabot never opens group DMs."""
        if "im:write" not in self.scopes:
            raise _SlackError("missing_scope", needed="im:write", provided=",".join(self.scopes))
        users = [u.strip() for u in str(_s(p, "users") or "").split(",") if u.strip()]
        if not users:
            raise _SlackError("users_list_not_supplied")
        if len(users) > 1:
            raise _SlackError("not_implemented", detail="the fake opens one-person DMs only")
        u = self._users.get(users[0])
        if users[0][:1] not in ("U", "W") or (u is not None and not u.exists):
            raise _SlackError("user_not_found")
        ch = self._dm_for_user(users[0])
        return {"no_op": True, "already_open": True, "channel": {"id": ch.id}}

    def _users_info(self, p: dict, ctx: "_Ctx") -> dict:
        uid = _s(p, "user")
        if not uid:
            raise _SlackError("user_not_found")
        u = self._users.get(uid)
        if u is None:
            if uid == self.bot_user_id:
                u = UserInfo(id=uid, name="lumabot", is_bot=True)
            else:
                u = UserInfo(id=uid, name=f"user-{uid.lower()}")
        if not u.exists:
            raise _SlackError("user_not_found")
        return {"user": u.to_dict(self.team_id, self.enterprise_id)}

    def _message_dict_with_files(self, m: Message, metadata: bool = False) -> dict:
        d = m.to_dict()
        if not metadata:
            d.pop("metadata", None)  # Slack returns it only with include_all_metadata=true
        if m.file_ids:
            d["files"] = [
                self._user_file_obj(self._user_files[i]) for i in m.file_ids if i in self._user_files
            ]
        return d

    def _conversations_replies(self, p: dict, ctx: "_Ctx") -> dict:
        ch = self._channel(_s(p, "channel"), for_write=False)
        ts = _s(p, "ts")
        if not ts or not self._message_exists(ch.id, ts):
            raise _SlackError("thread_not_found")
        parent = self._msg_index.get((ch.id, ts))
        root = parent.thread_ts if parent is not None and parent.is_reply else ts
        out: list[dict] = []
        meta = _truthy(p.get("include_all_metadata"))
        pm = self._msg_index.get((ch.id, root))
        if pm is not None and not pm.deleted:
            out.append(self._message_dict_with_files(pm, meta))
        for it in self.thread(ch.id, root):
            if isinstance(it, Message):
                out.append(self._message_dict_with_files(it, meta))
            else:
                out.append(
                    {
                        "type": "message",
                        "ts": it.share_ts,
                        "thread_ts": it.thread_ts,
                        "user": it.user,
                        "bot_id": self.bot_id,
                        "text": it.initial_comment or "",
                        "files": [self._uploaded_file_obj(it)],
                        **({"blocks": it.blocks} if it.blocks else {}),
                    }
                )
        return {"messages": out, "has_more": False, "response_metadata": {"next_cursor": ""}}

    def _conversations_history(self, p: dict, ctx: "_Ctx") -> dict:
        ch = self._channel(_s(p, "channel"), for_write=False)
        try:
            limit = int(p.get("limit") or 100)
        except ValueError:
            limit = 100
        try:
            oldest = float(p.get("oldest") or 0)
        except ValueError:
            raise _SlackError("invalid_ts_oldest") from None
        meta = _truthy(p.get("include_all_metadata"))
        msgs = [self._message_dict_with_files(m, meta) for m in reversed(self.top_level(ch.id))
                if float(m.ts) >= oldest][:limit]
        return {"messages": msgs, "has_more": False, "response_metadata": {"next_cursor": ""}}
