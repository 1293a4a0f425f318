"""What admins read: the policy in force, usage per person, channel and model for a month, the
CSV export (one row per job), and the admin part of App Home. Months are UTC calendar months."""

from __future__ import annotations

import re
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Iterable

from ..jobs.failures import REFUNDED_FAILURE_CODES
from ..jobs.flags import PromptError
from ..jobs.policy import Rules
from ..jobs.admission import day_start, month_start, next_month_start
from ..quotas import Quotas
from ..jobs.text import channel_ref, money, user_ref
from ..jobs.usage import UsageLine
from ..store import Store

TOP = 20
FORGOTTEN = "forgotten:"  # the prefix of the anonymous id a forgotten person's spend is kept under
CSV_COLUMNS = ["time", "user_id", "channel_id", "model", "type", "outcome", "estimated_cost_usd", "job_id"]
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True)
class Month:
    since: float
    until: float
    label: str    # "November 2026"
    key: str      # "2026-11"


def month_of(text: str | None, now: float) -> Month:
    """`YYYY-MM` (default: this month, UTC). PromptError for anything else."""
    if text:
        m = _MONTH.match(text.strip())
        if not m or not 1 <= int(m.group(2)) <= 12:
            raise PromptError(f"`{text}` is not a month: write it as YYYY-MM, e.g. 2026-11.")
        start = datetime(int(m.group(1)), int(m.group(2)), 1, tzinfo=timezone.utc).timestamp()
    else:
        start = month_start(now)
    d = datetime.fromtimestamp(start, timezone.utc)
    return Month(since=start, until=next_month_start(start), label=f"{d:%B %Y}", key=f"{d:%Y-%m}")


def person(user_id: str) -> str:
    if user_id.startswith(FORGOTTEN):
        return f"a forgotten person ({user_id[len(FORGOTTEN):][:6]})"
    return user_ref(user_id)


# What can start a formula in a spreadsheet, in any locale: = + - @ (and their full-width forms,
# which East Asian locales accept), tab and carriage return; and what may stand before it and
# still let it be read as one (spaces, and the separators of `,` and `;` locales, `;=...`).
_FORMULA_STARTS = frozenset("=+-@\t\r\uff1d\uff0b\uff0d\uff20")
_BEFORE_A_FORMULA = " \u00a0\u3000\n,;\uff0c\uff1b"


def csv_cell(value: str) -> str:
    """Text a spreadsheet would read as a formula, kept text: prefixed with `'`."""
    first = value.lstrip(_BEFORE_A_FORMULA)[:1]
    return "'" + value if first in _FORMULA_STARTS or value[:1] in _FORMULA_STARTS else value


def _ranked(totals: dict[str, list[float]]) -> list[tuple[str, int, float]]:
    rows = [(key, int(v[0]), v[1]) for key, v in totals.items()]
    return sorted(rows, key=lambda r: (-r[2], -r[1], r[0]))


def _group(lines: Iterable[UsageLine], key: Callable[[UsageLine], str]) -> list[tuple[str, int, float]]:
    totals: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    for line in lines:
        totals[key(line)][0] += line.images
        totals[key(line)][1] += line.spend
    return _ranked(totals)


def _amount(images: int, spend: float) -> str:
    return f"{images} image{'s' if images != 1 else ''} · {money(spend)}"


class Reports:
    def __init__(self, store: Store, quotas: Quotas, *, clock: Callable[[], float] = time.time):
        self.store = store
        self.quotas = quotas
        self._clock = clock

    def now(self) -> float:
        return self._clock()

    async def _lines(self, team_id: str, month: Month) -> list[UsageLine]:
        return await self.store.policy.usage_lines(team_id, month.since, month.until)

    async def usage(self, team_id: str, month_text: str | None = None) -> str:
        """`/luma admin usage [YYYY-MM]`: images and estimated spend per person and per channel
        (top 20 each, then the total) and by model."""
        month = month_of(month_text, self._clock())
        lines = await self._lines(team_id, month)
        if not lines:
            return f"*Usage in {month.label}:* nothing yet."
        out = [f"*Usage in {month.label}* (estimated spend; images delivered)"]
        for title, rows, name in (("By person", _group(lines, lambda u: u.user_id), person),
                                  ("By channel", _group(lines, lambda u: u.channel_id), channel_ref)):
            more = f" (top {TOP} of {len(rows)})" if len(rows) > TOP else ""
            out.append(f"*{title}*{more}")
            out += [f"{i}. {name(key)}: {_amount(images, spend)}"
                    for i, (key, images, spend) in enumerate(rows[:TOP], 1)]
        out.append("*By model*")
        out += [f"• {key}: {_amount(images, spend)}"
                for key, images, spend in _group(lines, lambda u: f"{u.model} {'edits' if u.type == 'image_edit' else 'images'}")]
        out.append(f"*Total:* {_amount(sum(u.images for u in lines), sum(u.spend for u in lines))}")
        return "\n".join(out)

    async def policy_text(self, team_id: str) -> str:
        """The policy in force and this month's spend against the budgets."""
        rules = await self.quotas.rules_in_force(team_id)
        now = self._clock()
        month = await self.quotas.usage(team_id, month_start(now))
        today = await self.quotas.usage(team_id, day_start(now))
        return "\n".join(["*Policy*"] + [f"• {line}" for line in await self._policy_lines(team_id, rules, month.committed,
                                                                                           today.committed)])

    async def _policy_lines(self, team_id: str, rules: Rules, month_spend: float, day_spend: float) -> list[str]:
        where = ("only in " + ", ".join(channel_ref(c) for c in rules.channels) if rules.channels
                 else "nowhere (no channel is enabled)" if rules.channels is not None
                 else "every channel it is in")
        budgets = []
        if rules.month_budget is not None:
            share = f", {month_spend / rules.month_budget:.0%}" if rules.month_budget else ""
            budgets.append(f"{money(rules.month_budget)} a month ({money(month_spend)} spent or committed{share})")
        if rules.day_budget is not None:
            budgets.append(f"{money(rules.day_budget)} a day ({money(day_spend)} today)")
        for channel, amount in sorted(rules.channel_budgets.items()):
            spent = await self.store.policy.usage(team_id, month_start(self._clock()), channel_id=channel)
            budgets.append(f"{channel_ref(channel)} {money(amount)} a month ({money(spent.committed)} spent)")
        people = [f"{rules.default_daily_images} images a day each" if rules.default_daily_images is not None
                  else "no daily image limit"]
        people += [f"{user_ref(u)} {n}" for u, n in sorted(rules.user_limits.items())]
        return [
            f"Works {where}; direct messages {'on' if rules.dms else 'off'}",
            f"uni-1-max: {rules.max_model}; web search: {'on' if rules.web else 'off'}; "
            f"at most {rules.per_request} images per request",
            "Budgets: " + ("; ".join(budgets) if budgets else f"none (this month so far: {money(month_spend)})"),
            "Per person: " + "; ".join(people) + f"; at most {rules.max_waiting} waiting in line",
            f"Retention: {rules.retention_days} days",
        ]

    async def home_section(self, team_id: str) -> str:
        """The admin part of App Home: the policy, this month's spend, the top spenders."""
        month = month_of(None, self._clock())
        lines = await self._lines(team_id, month)
        top = _group(lines, lambda u: u.user_id)[:5]
        spenders = ", ".join(f"{person(k)} {money(s)}" for k, _, s in top) or "nobody yet"
        total = sum(u.spend for u in lines)
        return "\n".join([await self.policy_text(team_id),
                          f"*{month.label}:* {_amount(sum(u.images for u in lines), total)} · top spenders: {spenders}",
                          "`/luma admin` changes the policy; `/luma admin usage` and `export` give the details."])
