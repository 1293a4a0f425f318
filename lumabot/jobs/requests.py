"""What one request makes: `--n` copies of each permutation of its text.

`a {red, blue} kite --n 2` makes four images: "a red kite" twice and "a blue kite" twice.
Groups in braces multiply (the first varies slowest), flags may hold them too
(`--ar {1:1, 16:9}`), and `\\{` and `\\}` are literal braces. Pure functions: no Slack, no I/O.
"""

from __future__ import annotations

import math
import re

from .flags import Flags, PromptError, parse_prompt
from .text import shown

_SPACES = re.compile(r"[ \t]{2,}")


class TooMany(PromptError):
    """The request would make more images than one request may."""

    def __init__(self, total: int, limit: int, combinations: int):
        made = (f"{total} images ({combinations} combinations × {total // combinations} each)"
                if combinations > 1 and total != combinations else
                f"{total} images ({combinations} combinations)" if combinations > 1 else f"{total} images")
        fewer = "fewer options or a smaller `--n`" if combinations > 1 else "a smaller `--n`"
        super().__init__(f"That request would make {made}; one request may make at most {limit} here. "
                         f"Nothing was started: try {fewer}.", field="n")
        self.total, self.limit, self.combinations = total, limit, combinations


def _parts(text: str) -> list[str | list[str]]:
    """The text as literal pieces and option groups."""
    parts: list[str | list[str]] = []
    literal: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text) and text[i + 1] in "{}":
            literal.append(text[i + 1])
            i += 2
            continue
        if c == "}":
            raise PromptError("A `}` closes no `{`. Write `\\}` for a literal brace.")
        if c != "{":
            literal.append(c)
            i += 1
            continue
        end = _group_end(text, i + 1)
        parts.append("".join(literal))
        literal = []
        parts.append([_unescape(o).strip() for o in _split_options(text[i + 1:end])])
        i = end + 1
    parts.append("".join(literal))
    return parts


def _group_end(text: str, start: int) -> int:
    i = start
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in "{}":
            i += 2
            continue
        if text[i] == "{":
            raise PromptError("Option groups cannot nest: `{a, {b, c}}`. Write `\\{` for a literal brace.")
        if text[i] == "}":
            return i
        i += 1
    raise PromptError(f"`{shown(text[start - 1:start + 40], 60)}` opens a `{{` that is never closed. "
                      "Close it, e.g. `a {red, blue} kite`, or write `\\{` for a literal brace.")


def _split_options(body: str) -> list[str]:
    options, current, i = [], [], 0
    while i < len(body):
        if body[i] == "\\" and i + 1 < len(body) and body[i + 1] in "{}":
            current.append(body[i:i + 2])
            i += 2
            continue
        if body[i] == ",":
            options.append("".join(current))
            current = []
        else:
            current.append(body[i])
        i += 1
    options.append("".join(current))
    return options


def _unescape(text: str) -> str:
    return text.replace("\\{", "{").replace("\\}", "}")


def combinations(text: str) -> int:
    """How many texts `text` expands to (without expanding them)."""
    return math.prod(len(p) for p in _parts(text) if isinstance(p, list))


def expand(text: str) -> list[str]:
    """Every combination of the option groups in `text`, in order."""
    texts = [""]
    for part in _parts(text):
        options = part if isinstance(part, list) else [part]
        texts = [t + o for t in texts for o in options]
    return [_SPACES.sub(" ", t).strip() for t in texts]


def _first_options(text: str) -> str:
    """`text` with each group cut to its first option (one combination, still escaped)."""
    out = []
    for part in _parts(text):
        if isinstance(part, list):
            out.append(part[0].replace("{", "\\{").replace("}", "\\}"))
        else:
            out.append(part.replace("{", "\\{").replace("}", "\\}"))
    return "".join(out)


def first_combination(text: str) -> str:
    """The first text `text` expands to (what its flags are read from before expanding)."""
    return expand(_first_options(text))[0]


def request_texts(text: str, *, limit: int, defaults: Flags | None = None) -> list[str]:
    """The text of each image the request makes (its flags included): every combination,
    each as many times as its `--n` (typed, or from `defaults`). TooMany beyond `limit`; a
    PromptError for braces that do not pair up."""
    count = combinations(text)
    if count > limit:  # refused before expanding: a few groups multiply fast
        try:
            n = parse_prompt(expand(_first_options(text))[0])[1].over(defaults).n or 1
        except PromptError:
            n = 1
        raise TooMany(count * n, limit, count)
    texts = expand(text)
    made = [t for t in texts for _ in range(parse_prompt(t)[1].over(defaults).n or 1)]
    if len(made) > limit:
        raise TooMany(len(made), limit, len(texts))
    return made
