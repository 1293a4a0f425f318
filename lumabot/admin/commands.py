"""`/luma admin`: what an admin can change and see. Each command is parsed here and carried
out through the store (policy changes are one transaction each and logged) or the reports.

Arguments arrive as the Slack layer hands them over: channels as `#C123`, people as `@U123`
(Slack sends ids for what was picked from its autocomplete), everything else as typed."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Awaitable, Callable

from ..jobs.flags import PromptError
from ..jobs.models import MAX_IMAGES_PER_REQUEST
from ..jobs.policy import MaxAccess, Policy
from ..jobs.text import channel_ref, money, user_ref
from ..luma.accounts import KeyInfo, KeyRefused, LumaAccounts
from ..luma.client import LumaError
from ..ports import AdminDirectory
from ..store import Store
from .export import Exports
from .reports import Reports, month_of
from .retention import Retention, removed_text

log = logging.getLogger(__name__)

NOT_ADMIN = ("Only workspace admins can change or read lumabot's admin settings. Nothing was "
             "changed. `/luma usage` shows your own usage and limits.")
ADMIN_HELP = "\n".join([
    "*Admin commands* (every answer is private to you)",
    "• `/luma admin`: the policy in force and this month's spend",
    "• `/luma admin channels only #a #b` · `channels add #c` · `channels remove #c` · `channels all`: "
    "where lumabot works (default: every channel it is in)",
    "• `/luma admin dms on|off`: direct messages with lumabot",
    "• `/luma admin max everyone|admins|nobody`: who may use uni-1-max",
    f"• `/luma admin batch N`: at most N images per request (`--n`, permutations; 1-{MAX_IMAGES_PER_REQUEST})",
    "• `/luma admin web on|off`: web search for references (`--web`)",
    "• `/luma admin budget month 200` · `budget day 20` · `budget channel #c 50` (a month) · "
    "`budget month|day|channel #c off` · `budget off` (all): estimated US dollars, UTC days and months",
    "• `/luma admin limit @person 100` · `limit @person default`: one person's images a day",
    "• `/luma admin usage [YYYY-MM]`: images and spend per person, channel and model",
    "• `/luma admin export [YYYY-MM] [--prompts]`: a CSV with one row per job, sent to your DM",
    "• `/luma admin retention 30`: keep history this many days (a daily sweep deletes older prompts, "
    "thumbnails and image lineage; usage totals stay)",
    "• `/luma admin forget @person`: delete that person's prompts, history and thumbnails now",
    "• `/luma admin forget-workspace confirm`: delete everything lumabot keeps about this workspace "
    "(before removing lumabot from it)",
    "• `/luma admin luma-key`: this workspace's own Luma API key (a private form; checked with Luma, "
    "stored encrypted, never shown again): its images then go to its own Luma account and count against "
    "its limits · `luma-key remove`: back to the shared key",
    "• `/luma admin log`: the last 20 changes",
    "• `/luma admin org <setting>`: on Enterprise Grid, for the organisation's admins: the same settings for "
    "every workspace of the organisation, which a workspace can only tighten",
    "Admins who change the policy get a DM when the workspace reaches 80 % and 100 % of a budget.",
])

ORG_HELP = ("`/luma admin org <setting>` takes the settings `/luma admin` does (`budget month 200`, `max admins`, "
            "`dms off`, `batch 2`, `web off`, `limit @person 10`, `retention 30`…) for every workspace of the "
            "Enterprise Grid organisation: a workspace's own setting applies only where it is tighter.")
STAYS_IN_SLACK = ("What lumabot posted in Slack stays there (its status messages show the prompts, and "
                  "image files are named after them): lumabot's database no longer has them, but Slack "
                  "keeps its messages under the workspace's own retention. Delete those in Slack (the "
                  "Delete button under an image, or Slack's tools) if they must go too.")
FORGET_WORKSPACE_ASK = ("This deletes everything lumabot keeps about this workspace, at once and for "
                        "everyone: every prompt, image record, session, vote and thumbnail, the usage "
                        "totals, the policy and its log. It cannot be undone. Type "
                        "`/luma admin forget-workspace confirm` to go ahead, then remove lumabot from the "
                        "workspace. (Without it, a workspace that removes lumabot keeps its history only for "
                        "its retention period.)")
_CHANNEL = re.compile(r"^#([CG][A-Z0-9]+)$")
_USER = re.compile(r"^@([UW][A-Z0-9]+)$")
_AMOUNT = re.compile(r"^\$?(\d{1,9}(?:\.\d{1,2})?)$")
# The largest numbers an admin may set: anything above is a typo, and stored as typed it would
# read "$inf" (or not parse at all).
MAX_BUDGET_USD = 1_000_000
MAX_DAILY_IMAGES = 100_000
MAX_RETENTION_DAYS = 3650


@dataclass
class AdminAnswer:
    """What the admin is told at once, and work to do after the ack (its text is sent when done);
    `form`: a private form to open instead (LUMA_KEY_FORM), `text` being what it explains."""

    text: str
    later: Callable[[], Awaitable[str]] | None = None
    form: str | None = None


LUMA_KEY_FORM = "luma_key"
OWN_KEY_SET = ("This workspace now uses its own Luma account: new images go to it and count against its "
               "limits and balance. Images already waiting keep the account they were asked on. "
               "`/luma admin luma-key remove` goes back to the shared key.")


def _named(token: str, pattern: re.Pattern[str], what: str, prefix: str) -> str:
    m = pattern.match(token)
    if not m:
        raise PromptError(f"`{token}` is not {what} lumabot can name: pick it from Slack's suggestions "
                          f"as you type `{prefix}`, so that Slack sends its id.")
    return m.group(1)


def _channel(token: str) -> str:
    return _named(token, _CHANNEL, "a channel", "#")


def _user(token: str) -> str:
    return _named(token, _USER, "a person", "@")


def _dollars(token: str) -> float:
    m = _AMOUNT.match(token)
    if not m or float(m.group(1)) > MAX_BUDGET_USD:
        raise PromptError(f"`{_shown(token)}` is not an amount in dollars from 0 to {MAX_BUDGET_USD:,}, "
                          "e.g. `200` or `12.50`.")
    return float(m.group(1))


def _count(token: str, what: str, low: int, high: int) -> int:
    """A whole number from `low` to `high` (digits checked before they are read)."""
    if not token.isdigit() or len(token) > len(str(high)) or not low <= int(token) <= high:
        raise _usage_error(f"`{_shown(token)}` is not {what} from {low} to {high:,}.")
    return int(token)


def _shown(token: str) -> str:
    """A token as echoed back: at most 40 characters."""
    return token if len(token) <= 40 else token[:40] + "…"


def _usage_error(what: str) -> PromptError:
    return PromptError(f"{what}\n\n{ADMIN_HELP}")


class AdminCommands:
    def __init__(self, store: Store, reports: Reports, retention: Retention, exports: Exports,
                 admins: AdminDirectory, accounts: LumaAccounts | None = None):
        self.store = store
        self.accounts = accounts
        self.exports = exports
        self.reports = reports
        self.retention = retention
        self.admins = admins

    async def run(self, team_id: str, user_id: str, args: list[str]) -> AdminAnswer:
        if not await self.admins.is_admin(team_id, user_id):
            return AdminAnswer(NOT_ADMIN)
        verb, rest = (args[0].lower(), args[1:]) if args else ("", [])
        try:
            if verb in ("", "help", "policy"):
                return AdminAnswer(f"{await self.reports.policy_text(team_id)}\n{await self._account_text(team_id)}"
                                   f"\n\n{ADMIN_HELP}")
            if verb == "luma-key":
                return await self._luma_key(team_id, user_id, [w.lower() for w in rest])
            if verb == "usage":
                return AdminAnswer(await self.reports.usage(team_id, rest[0] if rest else None))
            if verb == "export":
                return await self._export(team_id, user_id, rest)
            if verb == "log":
                return AdminAnswer(await self._log(team_id))
            if verb == "forget" and len(rest) == 1:
                return self._forget(team_id, user_id, _user(rest[0]))
            if verb == "forget-workspace":
                return self._forget_workspace(team_id, confirmed=[w.lower() for w in rest] == ["confirm"])
            if verb == "org":
                return await self._organisation(team_id, user_id, rest)
            change = self._change(verb, rest)
        except PromptError as exc:
            return AdminAnswer(str(exc))
        what, edit = change
        try:
            await self.store.policy.update(team_id, edit, by=user_id, change=what)
        except PromptError as exc:  # the edit does not apply to the policy as it is
            return AdminAnswer(str(exc))
        log.info("admin policy change by %s: %s", user_id, what)
        answer = AdminAnswer(f"Done: {what}. It applies at once, everywhere.")
        if verb == "retention":
            answer.later = lambda: self._sweep(team_id)
        return answer

    async def _organisation(self, team_id: str, user_id: str, args: list[str]) -> AdminAnswer:
        """`/luma admin org …`: the Enterprise Grid organisation's policy, set by its admins: every
        workspace of the organisation is held to it (its own admins can tighten it, not loosen it)."""
        enterprise = await self.store.tenants.enterprise_of(team_id)
        if enterprise is None:
            return AdminAnswer("This workspace is not part of an Enterprise Grid organisation lumabot knows of: "
                               "there is no organisation policy to set. Use `/luma admin …` for this workspace.")
        if not await self.admins.is_org_admin(team_id, user_id):
            return AdminAnswer("Only admins of the Enterprise Grid organisation can change its policy. Nothing was "
                               "changed.")
        if not args:
            policy = await self.store.policy.get(enterprise)
            set_ = ", ".join(sorted(policy.model_fields_set)) or "nothing yet"
            return AdminAnswer(f"*The organisation's policy* (every workspace is held to it): set {set_}.\n{ORG_HELP}")
        what, edit = self._change(args[0].lower(), args[1:])
        try:
            await self.store.policy.update(enterprise, edit, by=user_id, change=f"organisation: {what}")
        except PromptError as exc:
            return AdminAnswer(str(exc))
        log.info("organisation policy change by %s: %s", user_id, what)
        return AdminAnswer(f"Done for every workspace of the organisation: {what}. A workspace's admins can "
                           "tighten it, not loosen it.")

    # -- policy changes --------------------------------------------------------------------------
    def _change(self, verb: str, rest: list[str]) -> tuple[str, Callable[[Policy], Policy]]:
        """(what changes, as the log says it; the edit). PromptError for a malformed command."""
        words = [w.lower() for w in rest]
        if verb == "channels" and words:
            return self._channels(words[0], rest[1:])
        if verb == "dms" and words in (["on"], ["off"]):
            on = words[0] == "on"
            return f"direct messages {'on' if on else 'off'}", lambda p: _set(p, dms=on)
        if verb == "max" and len(words) == 1 and words[0] in ("everyone", "admins", "nobody"):
            access: MaxAccess = words[0]  # type: ignore[assignment]
            return f"uni-1-max for {access}", lambda p: _set(p, max_model=access)
        if verb == "budget" and words:
            return self._budget(words, rest)
        if verb == "limit" and len(rest) == 2:
            who = _user(rest[0])
            if words[1] == "default":
                return (f"daily image limit of {user_ref(who)}: the default",
                        lambda p: _set(p, user_limits={k: v for k, v in p.user_limits.items() if k != who}))
            n = _count(words[1], "a number of images a day", 0, MAX_DAILY_IMAGES)
            return (f"daily image limit of {user_ref(who)}: {n}",
                    lambda p: _set(p, user_limits={**p.user_limits, who: n}))
        if verb == "batch" and len(words) == 1:
            n = _count(words[0], "a number of images per request", 1, MAX_IMAGES_PER_REQUEST)
            return f"at most {n} image{'s' if n != 1 else ''} per request", lambda p: _set(p, per_request=n)
        if verb == "web" and words in (["on"], ["off"]):
            on = words[0] == "on"
            return f"web search (`--web`) {'on' if on else 'off'}", lambda p: _set(p, web=on)
        if verb == "retention" and len(words) == 1:
            days = _count(words[0], "a number of days", 1, MAX_RETENTION_DAYS)
            return f"history kept {days} day{'s' if days != 1 else ''}", lambda p: _set(p, retention_days=days)
        raise _usage_error(f"I did not understand `/luma admin {' '.join([verb, *rest]).strip()}`.")

    def _channels(self, how: str, rest: list[str]) -> tuple[str, Callable[[Policy], Policy]]:
        ids = [_channel(t) for t in rest]
        if how == "all" and not ids:
            return "lumabot works in every channel it is in", lambda p: _set(p, channels=None)
        if how == "only" and ids:
            return (f"lumabot works only in {', '.join(channel_ref(c) for c in ids)}",
                    lambda p: _set(p, channels=list(dict.fromkeys(ids))))
        if how == "add" and ids:
            return (f"lumabot also works in {', '.join(channel_ref(c) for c in ids)}",
                    lambda p: _set(p, channels=None if p.channels is None
                                   else list(dict.fromkeys([*p.channels, *ids]))))
        if how == "remove" and ids:
            def remove(p: Policy) -> Policy:
                if p.channels is None:
                    raise PromptError("lumabot works in every channel it is in, so there is no list to "
                                      "remove from: use `channels only #a #b` to choose where it works.")
                return _set(p, channels=[c for c in p.channels if c not in ids])

            return f"lumabot no longer works in {', '.join(channel_ref(c) for c in ids)}", remove
        raise _usage_error("Use `channels only #a #b`, `channels add #c`, `channels remove #c` or `channels all`.")

    def _budget(self, words: list[str], rest: list[str]) -> tuple[str, Callable[[Policy], Policy]]:
        if words == ["off"]:
            return ("no budgets", lambda p: _set(p, month_budget=None, day_budget=None, channel_budgets={}))
        if words[0] in ("month", "day") and len(words) == 2:
            field = "month_budget" if words[0] == "month" else "day_budget"
            period = "monthly" if words[0] == "month" else "daily"
            amount = None if words[1] == "off" else _dollars(words[1])
            return (f"{period} budget {money(amount) if amount is not None else 'off'}",
                    lambda p: _set(p, **{field: amount}))
        if words[0] == "channel" and len(words) == 3:
            channel = _channel(rest[1])
            if words[2] == "off":
                return (f"no budget for {channel_ref(channel)}",
                        lambda p: _set(p, channel_budgets={k: v for k, v in p.channel_budgets.items() if k != channel}))
            amount = _dollars(words[2])
            return (f"budget for {channel_ref(channel)} {money(amount)} a month",
                    lambda p: _set(p, channel_budgets={**p.channel_budgets, channel: amount}))
        if words[0] == "channel":
            # the hint for `budget channel #c`, before the general help
            raise _usage_error("Use `budget channel #channel 50` (dollars a month) or `budget channel #channel off`.")
        raise _usage_error("Use `budget month 200`, `budget day 20`, `budget channel #c 50` or `budget off`.")

    # -- the workspace's own Luma key ------------------------------------------------------------
    async def _account_text(self, team_id: str) -> str:
        info = await self.accounts.info(team_id) if self.accounts is not None else None
        if info is None:
            return "• Luma account: the shared one (lumabot's operator's key)"
        return f"• Luma account: this workspace's own (key {_set_by(info)})"

    async def _luma_key(self, team_id: str, user_id: str, words: list[str]) -> AdminAnswer:
        if self.accounts is None or self.accounts.keys is None:
            return AdminAnswer("This lumabot uses one Luma account for every workspace.")
        if words == ["remove"]:
            if not await self.accounts.remove_key(team_id):
                return AdminAnswer("This workspace has no Luma key of its own: it uses the shared one.")
            await self.store.policy.update(team_id, lambda p: p, by=user_id, change="own Luma key removed")
            return AdminAnswer("Removed this workspace's Luma key: new images use the shared key. Images already "
                               "sent to the workspace's account cannot be finished without it and fail.")
        if words:
            raise _usage_error("Use `luma-key` (a form for the key) or `luma-key remove`.")
        info = await self.accounts.info(team_id)
        return AdminAnswer(
            "Paste an API key of the workspace's Luma account (Luma's dashboard, API keys). lumabot checks it with "
            "Luma, stores it encrypted and never shows it again."
            + (f" It replaces the key {_set_by(info)}." if info else ""),
            form=LUMA_KEY_FORM)

    async def set_luma_key(self, team_id: str, user_id: str, key: str) -> str:
        """The form's key: checked with Luma and saved (PromptError on the form's field
        otherwise). What the admin is told."""
        if not await self.admins.is_admin(team_id, user_id):
            raise PromptError(NOT_ADMIN, field="key")
        key = key.strip()
        if not key or len(key) > 500 or any(c.isspace() for c in key):
            raise PromptError("That does not look like an API key (one word, no spaces).", field="key")
        assert self.accounts is not None
        try:
            await self.accounts.set_key(team_id, key, by=user_id)
        except KeyRefused as exc:
            raise PromptError(f"{exc}. Nothing was saved.", field="key") from None
        except LumaError:
            raise PromptError("Luma could not be reached to check the key. Nothing was saved; please try again.",
                              field="key") from None
        await self.store.policy.update(team_id, lambda p: p, by=user_id, change="own Luma key set")
        return OWN_KEY_SET

    # -- reports and data ------------------------------------------------------------------------
    async def _log(self, team_id: str) -> str:
        changes = await self.store.policy.log(team_id, limit=20)
        if not changes:
            return "No admin changes yet."
        return "\n".join(["*The last admin changes* (newest first)"] + [
            f"• {datetime.fromtimestamp(c.at, timezone.utc):%Y-%m-%d %H:%M} UTC, {user_ref(c.user_id)}: {c.change}"
            for c in changes])

    async def _export(self, team_id: str, user_id: str, rest: list[str]) -> AdminAnswer:
        prompts = "--prompts" in [w.lower() for w in rest]
        months = [w for w in rest if w.lower() != "--prompts"]
        if len(months) > 1:
            raise _usage_error("Use `export [YYYY-MM] [--prompts]`.")
        month = month_of(months[0] if months else None, self.reports.now())
        if not await self.exports.begin(team_id):
            return AdminAnswer("An export for this workspace is being prepared already. Try again when it "
                               "has arrived in your direct messages with lumabot.")
        return AdminAnswer(f"Preparing the usage export for {month.label}; it will arrive in your direct "
                           "messages with lumabot.",
                           later=lambda: self.exports.send(team_id, user_id, month, prompts=prompts))

    def _forget(self, team_id: str, admin_id: str, user_id: str) -> AdminAnswer:
        async def forget() -> str:
            removed = await self.retention.forget(team_id, user_id)
            await self.store.policy.update(team_id, lambda p: p, by=admin_id,
                                           change=f"forgot {user_ref(user_id)} ({removed_text(removed)})")
            return (f"Forgot {user_ref(user_id)}: deleted {removed_text(removed)}. Their spend stays in the "
                    f"usage totals under an anonymous id. {STAYS_IN_SLACK}")

        return AdminAnswer(f"Forgetting {user_ref(user_id)}…", later=forget)

    def _forget_workspace(self, team_id: str, *, confirmed: bool) -> AdminAnswer:
        if not confirmed:
            return AdminAnswer(FORGET_WORKSPACE_ASK)

        async def forget() -> str:
            outcome = await self.retention.forget_workspace(team_id)
            if isinstance(outcome, int):
                return (f"{outcome} image{'s are' if outcome != 1 else ' is'} still waiting or being made in this "
                        "workspace: nothing was deleted. Try again once they are done (or cancel them).")
            return (f"Deleted everything lumabot kept about this workspace: {removed_text(outcome)}, its usage "
                    "totals, policy and log. To finish, remove lumabot from the workspace (its tokens are "
                    f"deleted then). {STAYS_IN_SLACK}")

        return AdminAnswer("Forgetting this workspace…", later=forget)

    async def _sweep(self, team_id: str) -> str:
        removed = await self.retention.sweep(team_id)
        return f"Retention sweep done: deleted {removed_text(removed)} older than the retention period."


def _set_by(info: KeyInfo) -> str:
    """Who set a workspace's own Luma key, and when: "set by <@U1> on 2026-12-06"."""
    return f"set by {user_ref(info.set_by)} on {datetime.fromtimestamp(info.set_at, timezone.utc):%Y-%m-%d}"


def _set(policy: Policy, **changes: object) -> Policy:
    """The policy with these fields set (and marked as set: they override the environment)."""
    return policy.model_copy(update=changes)
