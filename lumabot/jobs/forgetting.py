"""What `/luma admin forget @person` removes besides the person's own rows: copies of their
text in other people's jobs (a Reroll or uni-1-max of their image copies its prompt; a prompt in
a session they started carries their theme as its style direction), and their jobs that are
still running, which are forgotten as they finish. Pure: the store feeds it rows and writes what
it decides."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Iterable, Literal

from .flags import STYLE_DIRECTION as _STYLE
from .models import GenerationParams

REMOVED = "[removed at an admin's request]"


def with_style_direction(prompt: str, theme: str) -> str:
    """A session prompt: the person's prompt with the session's theme as a style direction."""
    return f"{prompt.strip()}{_STYLE}{theme}"


def scrubbed(prompt: str, prompts: set[str], themes: set[str]) -> str | None:
    """`prompt` without a forgotten person's text, or None when it holds none of it: a whole
    prompt of theirs (a copy), or their theme as its style direction. Only whole copies count:
    somebody else's prompt that merely contains the same words is theirs, not a copy."""
    if prompt in prompts:
        return REMOVED
    for theme in themes:
        if prompt.endswith(_STYLE + theme):
            return prompt[: len(prompt) - len(_STYLE + theme)] + _STYLE + REMOVED
    return None


@dataclass
class ForgetPlan:
    """What a forget writes besides deleting the person's settled rows."""

    rewrite: list[tuple[str, str]] = field(default_factory=list)     # settled jobs: (id, new params JSON)
    on_settle: list[tuple[str, str]] = field(default_factory=list)   # running jobs: (id, instruction)
    copies: int = 0    # other people's jobs holding a copy of the person's text
    running: int = 0   # the person's jobs still under way


def forget_plan(anonymous_id: str, theirs: Iterable[tuple[str, str, bool]],
                themes: Iterable[str], others: Iterable[tuple[str, str, bool]]) -> ForgetPlan:
    """`theirs` and `others`: (job id, params JSON, settled) of the person's jobs and of the
    other jobs of the workspace; `themes`: of the sessions the person started."""
    theirs = list(theirs)
    prompts = {GenerationParams.model_validate_json(params).prompt for _, params, _ in theirs}
    themes_ = {t for t in themes if t}
    plan = ForgetPlan()
    for job_id, _, settled in theirs:
        if not settled:
            plan.on_settle.append((job_id, json.dumps({"forget": anonymous_id})))
            plan.running += 1
    for job_id, params, settled in others:
        p = GenerationParams.model_validate_json(params)
        new = scrubbed(p.prompt, prompts, themes_)
        if new is None:
            continue
        plan.copies += 1
        if settled:
            plan.rewrite.append((job_id, p.model_copy(update={"prompt": new}).model_dump_json(exclude_none=True)))
        else:
            plan.on_settle.append((job_id, json.dumps({"prompt": new})))
    return plan


def settle_action(instruction: str, params: str) -> tuple[Literal["forget", "rewrite"], str]:
    """What to do as a job settles, from the instruction a forget left on it: ("forget", the
    anonymous id its spend is kept under) or ("rewrite", its new params JSON)."""
    data = json.loads(instruction)
    if "forget" in data:
        return "forget", str(data["forget"])
    p = GenerationParams.model_validate_json(params)
    return "rewrite", p.model_copy(update={"prompt": str(data["prompt"])}).model_dump_json(exclude_none=True)
