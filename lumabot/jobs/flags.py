"""Midjourney-style flags in a prompt: `a lighthouse at dusk --ar 16:9 --max`.

`parse_prompt` splits a message into the prompt text and the flags it carries;
`build_params` merges flags over defaults and checks the combination. Both raise
`PromptError` with a sentence that names the problem and, where there is a list, the valid
values. Pure functions: no Slack, no I/O.
"""

from __future__ import annotations

import re
from typing import Iterable

from pydantic import BaseModel

from .models import (
    ASPECT_RATIOS,
    FORMATS,
    MAX_EDIT_REFS,
    MAX_IMAGES_PER_REQUEST,
    MAX_PROMPT_CHARS,
    MODELS,
    PORTRAIT_RATIOS,
    STYLES,
    GenerationParams,
    ImageSource,
)
from .text import shown


class PromptError(ValueError):
    """Bad input; the message is meant for the user. `field` names the input it is about
    (prompt, aspect_ratio, model, format, refs), for forms."""

    def __init__(self, message: str, *, field: str = "prompt"):
        super().__init__(message)
        self.field = field


class Flags(BaseModel):
    """Flags as typed; None means "not given" so defaults can fill in."""

    aspect_ratio: str | None = None
    model: str | None = None
    output_format: str | None = None
    style: str | None = None
    n: int | None = None            # images of the request (`--n 4`)
    web: bool | None = None         # Luma's web_search (`--web`)
    preset: str | None = None       # `--preset NAME` (`none`: no default preset either)
    private: bool | None = None     # `--private`: made in the person's DM with lumabot, to share from there

    def over(self, defaults: "Flags | None") -> "Flags":
        """These flags, with `defaults` filling what is not given."""
        if defaults is None:
            return self
        merged = defaults.model_dump()
        merged.update({k: v for k, v in self.model_dump().items() if v is not None})
        return Flags(**merged)

    def as_text(self) -> str:
        out = []
        if self.aspect_ratio:
            out.append(f"--ar {self.aspect_ratio}")
        if self.model == "uni-1-max":
            out.append("--max")
        if self.output_format:
            out.append(f"--format {self.output_format}")
        if self.style:
            out.append(f"--style {self.style}")
        if self.n and self.n > 1:
            out.append(f"--n {self.n}")
        if self.web:
            out.append("--web")
        if self.preset:
            out.append(f"--preset {self.preset}")
        return " ".join(out)


def flag_sources(text: str, **defaults: Flags | None) -> dict[str, str]:
    """Where each flag in force for `text` came from: `typed`, or the name of the defaults
    that gave it (the first given wins, as in `Flags.over`)."""
    typed = parse_prompt(text)[1]
    sources = {k: "typed" for k, v in typed.model_dump().items() if v is not None}
    for name, layer in defaults.items():
        for k, v in (layer.model_dump() if layer is not None else {}).items():
            if v is not None:
                sources.setdefault(k, name)
    return sources


def _one_of(values: Iterable[str]) -> str:
    return ", ".join(f"`{v}`" for v in values)


FLAG_HELP = (
    f"`--ar W:H` (one of {_one_of(ASPECT_RATIOS)}), `--model uni-1|uni-1-max` (or `--max`), "
    "`--format png|jpeg`, `--style manga` (portrait ratios only: "
    f"{_one_of(sorted(PORTRAIT_RATIOS, key=ASPECT_RATIOS.index))}), `--n 1-{MAX_IMAGES_PER_REQUEST}` "
    "(several images), `--web` (let the model look references up on the web), `--preset NAME` (or "
    "`--p NAME`; `none`: no default preset), `--private` (make it in your DM with lumabot, share it from there)"
)

# Flags that take a value, and their aliases.
_VALUE_FLAGS = {"ar": "ar", "aspect": "ar", "model": "model", "format": "format", "style": "style",
                "n": "n", "number": "n", "preset": "preset", "p": "preset"}
_BARE_FLAGS = {"max": ("model", "uni-1-max"), "web": ("web", "on"), "private": ("private", "on")}

# Slack clients may turn "--" into an en or em dash (smart punctuation): accept those too.
_FLAG_RE = re.compile(r"^(?:--|\u2014|\u2013)([A-Za-z][\w-]*)(?:=(.*))?$")
_TOKEN_RE = re.compile(r"\S+")


def parse_prompt(text: str) -> tuple[str, Flags]:
    """Split `text` (as the person typed it) into the prompt (flags removed) and its flags."""
    text = text or ""
    tokens = [(m.group(0), m.start(), m.end()) for m in _TOKEN_RE.finditer(text)]
    values: dict[str, str] = {}
    keep: list[str] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i][0]
        m = _FLAG_RE.match(tok)
        if not m:
            keep.append(tok)
            i += 1
            continue
        name, inline = m.group(1).lower(), m.group(2)
        if name in _BARE_FLAGS:
            if inline is not None:
                raise PromptError(f"`--{name}` takes no value.")
            key, value = _BARE_FLAGS[name]
            values[key] = value
            i += 1
            continue
        if name not in _VALUE_FLAGS:
            raise PromptError(f"Unknown flag `{shown(tok, 100)}`. Valid flags: {FLAG_HELP}.")
        key = _VALUE_FLAGS[name]
        if inline:
            value = inline
            i += 1
        else:
            nxt = tokens[i + 1][0] if i + 1 < len(tokens) else None
            if nxt is None or _FLAG_RE.match(nxt):
                raise PromptError(f"`--{name}` needs a value. {_value_hint(key)}")
            value = nxt
            i += 2
        values[key] = value.strip()
    prompt = " ".join(keep).strip()
    return prompt, _validate_flags(values)


def _value_hint(key: str) -> str:
    return {
        "ar": f"Valid aspect ratios: {_one_of(ASPECT_RATIOS)}.",
        "model": f"Valid models: {_one_of(MODELS)}.",
        "format": f"Valid formats: {_one_of(FORMATS)}.",
        "style": f"Valid styles: {_one_of(STYLES)}.",
        "n": f"How many images, 1 to {MAX_IMAGES_PER_REQUEST}, e.g. `--n 4`.",
        "preset": "A preset's name (`/luma preset list`), or `none`.",
    }[key]


def _validate_flags(values: dict[str, str]) -> Flags:
    flags = Flags()
    if "ar" in values:
        ar = values["ar"].replace("x", ":").replace("X", ":")
        if ar not in ASPECT_RATIOS:
            raise PromptError(f"`{shown(values['ar'], 100)}` is not an aspect ratio uni-1 can make. "
                              f"{_value_hint('ar')}", field="aspect_ratio")
        flags.aspect_ratio = ar
    if "model" in values:
        model = values["model"].lower()
        if model not in MODELS:
            raise PromptError(f"Unknown model `{shown(values['model'], 100)}`. {_value_hint('model')}", field="model")
        flags.model = model
    if "format" in values:
        fmt = values["format"].lower()
        fmt = "jpeg" if fmt == "jpg" else fmt
        if fmt not in FORMATS:
            raise PromptError(f"Unknown format `{shown(values['format'], 100)}`. {_value_hint('format')}", field="format")
        flags.output_format = fmt
    if "style" in values:
        style = values["style"].lower()
        if style not in STYLES:
            raise PromptError(f"Unknown style `{shown(values['style'], 100)}`. {_value_hint('style')}")
        flags.style = style
    if "n" in values:
        n = values["n"]
        if not n.isdigit() or not 1 <= int(n) <= MAX_IMAGES_PER_REQUEST:
            raise PromptError(f"`--n {shown(n, 20)}` is not a number of images. {_value_hint('n')}", field="n")
        flags.n = int(n)
    if "web" in values:
        flags.web = True
    if "preset" in values:
        flags.preset = values["preset"].lower()
    if "private" in values:
        flags.private = True
    return flags


def _check_length(prompt: str) -> None:
    if len(prompt) > MAX_PROMPT_CHARS:
        raise PromptError(f"The prompt is {len(prompt):,} characters long; Luma accepts at most "
                          f"{MAX_PROMPT_CHARS:,}. Please shorten it.")


STYLE_DIRECTION = ". Style direction: "


def with_direction(prompt: str, style: str | None) -> str:
    """A prompt with a style direction (a session's theme, a preset's style) after it."""
    return f"{prompt.strip()}{STYLE_DIRECTION}{style}" if style and prompt.strip() else prompt


def build_params(prompt: str, flags: Flags, *, defaults: Flags | None = None,
                 refs: list[ImageSource] | None = None) -> GenerationParams:
    """Text-to-image parameters from a prompt and its flags, checked as Luma would check them."""
    prompt = prompt.strip()
    if not prompt:
        raise PromptError("Add a description of the image, e.g. `/imagine a lighthouse at dusk --ar 16:9`.")
    _check_length(prompt)
    f = flags.over(defaults)
    aspect_ratio = f.aspect_ratio
    if f.style == "manga":
        if aspect_ratio is None:
            aspect_ratio = "2:3"  # manga needs a portrait ratio; pick the classic page shape
        elif aspect_ratio not in PORTRAIT_RATIOS:
            portrait = sorted(PORTRAIT_RATIOS, key=ASPECT_RATIOS.index)
            raise PromptError(f"`--style manga` needs a portrait aspect ratio, not `{aspect_ratio}`. "
                              f"Use one of {_one_of(portrait)}.", field="aspect_ratio")
    return GenerationParams(
        prompt=prompt,
        type="image",
        model=f.model or "uni-1",
        aspect_ratio=aspect_ratio,
        style=f.style if f.style and f.style != "auto" else None,
        output_format=f.output_format,
        image_refs=list(refs or []),
        web_search=bool(f.web),
    )


def imagine_params(text: str, *, defaults: Flags | None = None) -> GenerationParams:
    """Parse the text of an `/imagine` (or a mention) into parameters, or raise PromptError."""
    prompt, flags = parse_prompt(text)
    return build_params(prompt, flags, defaults=defaults)


EDIT_HINT = "Say what to change, e.g. `make it night` or `turn it into a watercolor --max`."


def edit_params(text: str, source: ImageSource, *, refs: list[ImageSource] | None = None,
                defaults: Flags | None = None, model: str | None = None, style: str | None = None) -> GenerationParams:
    """Parameters of an edit of `source` from an instruction and its flags.

    The result keeps the source's shape, so an explicit `--ar` is refused rather than silently
    ignored; a default ratio (a session's) simply does not apply."""
    prompt, flags = parse_prompt(text)
    if not prompt.strip():
        raise PromptError(f"What should change in the image? {EDIT_HINT}")
    _check_length(prompt.strip())
    if flags.aspect_ratio:
        raise PromptError("`--ar` does not apply to edits: the result keeps the shape of the image. "
                          "Use `/imagine` for a new image in another shape.")
    f = flags.over(defaults)
    return GenerationParams(
        prompt=with_direction(prompt.strip(), style),
        type="image_edit",
        model=flags.model or model or f.model or "uni-1",  # typed flag > chosen model > default
        style=f.style if f.style and f.style != "auto" else None,
        output_format=f.output_format,
        source=source,
        image_refs=list(refs or [])[:MAX_EDIT_REFS],
        web_search=bool(f.web),
    )


VARY = ("A close variation of this image: keep its composition, subject, palette and style; vary the "
        "small details.")


def variation_params(made: GenerationParams, source: ImageSource) -> GenerationParams:
    """Vary: an edit of an image (by `source`, no re-upload) asking for a close variation that
    keeps its composition, with the same model, style and format as the image was made with."""
    hint = f" It showed: {made.prompt}"
    prompt = VARY + (hint if len(VARY) + len(hint) <= MAX_PROMPT_CHARS else "")
    return GenerationParams(prompt=prompt, type="image_edit", model=made.model, style=made.style,
                            output_format=made.output_format, source=source)
