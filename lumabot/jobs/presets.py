"""Presets and brand style kits: a name for flags, a style direction and reference images.

A person's own presets only they use; a workspace preset (saved by an admin) everyone uses
(the brand kit). A channel may have a default preset, and the workspace one (admins set both,
in the workspace's policy). What is in force for a request, strongest first: the flags typed,
the session's flags, the preset named (`--preset NAME`, or the session's), the channel's
default, the workspace's default; `--preset none` leaves both defaults out. The style
direction and the references come from the strongest preset that has them. Pure: the store
finds the presets and hands them here."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from pydantic import BaseModel, Field

from .flags import Flags, PromptError
from .models import MAX_EDIT_REFS

MAX_PRESET_REFS = 8
MAX_STYLE_CHARS = 1000
NO_PRESET = "none"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
PRESET_FLAGS = ("aspect_ratio", "model", "output_format", "style", "n", "web")


class Preset(BaseModel):
    """A saved preset. `owner_id` None: a workspace preset."""

    id: str
    team_id: str
    name: str
    owner_id: str | None = None
    flags: dict[str, object] = Field(default_factory=dict)   # Flags as a dict (what it sets)
    style: str | None = None
    refs: int = 0                 # reference images kept with it
    created_by: str = ""
    created_at: float = Field(default_factory=time.time)

    @property
    def workspace(self) -> bool:
        return self.owner_id is None

    def as_flags(self) -> Flags:
        return Flags(**self.flags)


def preset_name(text: str) -> str:
    """A preset's name as stored (lower case); PromptError if it cannot be one."""
    name = text.strip().lower()
    if not _NAME.match(name) or name == NO_PRESET:
        raise PromptError(f"`{text[:40]}` cannot be a preset name: use up to 40 letters, digits, `-` or `_` "
                          f"(and not `{NO_PRESET}`).")
    return name


def preset_flags(flags: Flags) -> dict[str, object]:
    """What a preset keeps of typed flags (not a preset of its own)."""
    data = flags.model_dump()
    return {k: data[k] for k in PRESET_FLAGS if data.get(k) is not None}


@dataclass(frozen=True)
class Layers:
    """Where a request's defaults come from, strongest first: (source, preset or flags)."""

    named: Preset | None = None
    channel: Preset | None = None
    workspace: Preset | None = None
    session: Flags | None = None
    form: Flags | None = None


@dataclass
class InForce:
    """What the presets give one request: defaults under its typed flags, a style direction,
    references (preset id, position), and where each flag's default came from."""

    defaults: Flags = field(default_factory=Flags)
    style: str | None = None
    refs: list[tuple[str, int]] = field(default_factory=list)
    sources: dict[str, Flags | None] = field(default_factory=dict)
    preset: str | None = None     # the preset in force (for Info and metadata)


def in_force(layers: Layers) -> InForce:
    """Merge the layers: each flag from the strongest that sets it; style and references from
    the strongest preset that has them."""
    ordered: list[tuple[str, Flags | None]] = [("form", layers.form), ("session", layers.session)]
    presets = [(f"preset {p.name}", p) for p in [layers.named] if p is not None]
    if layers.channel is not None:
        presets.append((f"this channel's preset {layers.channel.name}", layers.channel))
    if layers.workspace is not None:
        presets.append((f"the workspace's preset {layers.workspace.name}", layers.workspace))
    ordered += [(label, p.as_flags()) for label, p in presets]
    defaults = Flags()
    for _, flags in reversed(ordered):
        if flags is not None:
            defaults = flags.over(defaults)
    defaults.preset = None
    style = next((p.style for _, p in presets if p.style), None)
    holder = next((p for _, p in presets if p.refs), None)
    return InForce(defaults=defaults, style=style,
                   refs=[(holder.id, i) for i in range(holder.refs)] if holder else [],
                   sources={label: flags for label, flags in ordered if flags is not None},
                   preset=presets[0][1].name if presets else None)


def check_refs(own: int, preset: int, *, edit: bool) -> None:
    """The request's own references plus the preset's fit in what Luma takes."""
    limit = MAX_EDIT_REFS if edit else MAX_EDIT_REFS + 1
    if own + preset > limit:
        raise PromptError(f"This request has {own} reference image{'s' if own != 1 else ''} of its own and the "
                          f"preset adds {preset}: Luma takes at most {limit} {'on an edit' if edit else ''}".rstrip()
                          + ". Attach fewer, or use `--preset none`.", field="refs")
