"""Presets: `/luma preset …`, the preset form, and what presets put in force for a request.

`/luma preset save NAME [flags] [style text] [--workspace]`, `list`, `show NAME`,
`delete NAME [--workspace]`, `channel NAME|none` and `default NAME|none` (admins; the defaults
are part of the workspace's policy, so they apply at once on every replica and are logged).
Reference images come with the form: downloaded and normalised once, kept with the preset."""

from __future__ import annotations

import asyncio
import base64
import logging
from dataclasses import dataclass

from .jobs.flags import Flags, PromptError, parse_prompt
from .jobs.images import prepare_image
from .jobs.models import GenerationParams, ImageSource, SlackFile, new_job_id
from .jobs.policy import Policy, Rules
from .jobs.presets import (MAX_PRESET_REFS, MAX_STYLE_CHARS, NO_PRESET, InForce, Layers, Preset, in_force,
                           preset_flags, preset_name)
from .jobs.text import channel_ref, shown
from .ports import AdminDirectory, InputError, InputFiles
from .store import Store

log = logging.getLogger(__name__)

PRESET_REF_SIDE = 1024  # the long side of a preset's reference images as kept
USAGE = ("*Presets:* `/luma preset save NAME [flags] [style text]` (add `--workspace` to save one for "
         "everyone: admins), `/luma preset` (a form, with reference images), `/luma preset list`, "
         "`show NAME`, `delete NAME`; admins: `/luma preset channel NAME|none` (this channel's default), "
         "`/luma preset default NAME|none` (the workspace's). Use one with `--preset NAME` (or `--p NAME`); "
         "`--preset none` leaves the defaults out.")
ONLY_ADMINS = "Only workspace admins can {what}. Nothing was saved."


@dataclass
class PresetForm:
    """What the preset form holds."""

    name: str
    flags: str
    style: str
    refs: list[SlackFile]
    workspace: bool


class Presets:
    def __init__(self, store: Store, inputs: InputFiles, admins: AdminDirectory):
        self.store = store
        self.inputs = inputs
        self.admins = admins

    # -- what a request gets ---------------------------------------------------------------------
    async def in_force(self, team_id: str, user_id: str, channel_id: str, typed: Flags, rules: Rules, *,
                       session: Flags | None = None, form: Flags | None = None) -> InForce:
        """The defaults, style and references presets give a request (PromptError for a
        preset this person cannot use)."""
        name = typed.preset or (session.preset if session else None) or (form.preset if form else None)
        named = None
        if name and name != NO_PRESET:
            named = await self.store.presets.find(team_id, user_id, name)
            if named is None:
                raise PromptError(f"There is no preset `{shown(name, 40)}` you can use. `/luma preset list` shows "
                                  "yours and the workspace's.", field="preset")
        channel = workspace = None
        if name != NO_PRESET:
            channel_name, workspace_name = rules.preset_of(channel_id)
            channel = await self.store.presets.workspace(team_id, channel_name) if channel_name else None
            workspace = await self.store.presets.workspace(team_id, workspace_name) if workspace_name else None
        return in_force(Layers(named=named, channel=channel, workspace=workspace, session=session, form=form))

    async def usable(self, team_id: str, user_id: str) -> list[Preset]:
        return await self.store.presets.usable(team_id, user_id)

    # -- /luma preset ------------------------------------------------------------------------------
    async def command(self, *, team_id: str, user_id: str, channel_id: str, args: list[str]) -> str:
        verb, rest = (args[0].lower(), args[1:]) if args else ("help", [])
        try:
            if verb == "save" and rest:
                return await self._save_typed(team_id, user_id, rest)
            if verb == "list" and not rest:
                return await self._list(team_id, user_id)
            if verb == "show" and len(rest) == 1:
                return await self._show(team_id, user_id, rest[0])
            if verb == "delete" and rest:
                return await self._delete(team_id, user_id, rest)
            if verb in ("channel", "default") and len(rest) == 1:
                return await self._default(team_id, user_id, channel_id if verb == "channel" else None, rest[0])
        except PromptError as exc:
            return str(exc)
        return USAGE

    async def _save_typed(self, team_id: str, user_id: str, words: list[str]) -> str:
        workspace, words = _workspace_flag(words)
        if not words:
            return USAGE
        name = preset_name(words[0])
        style, flags = parse_prompt(" ".join(words[1:]))
        return await self.save(team_id, user_id, PresetForm(name=name, flags=flags.as_text(), style=style, refs=[],
                                                            workspace=workspace))

    async def check(self, team_id: str, user_id: str, form: PresetForm) -> tuple[str, Flags, str | None]:
        """The form's name, flags and style, checked (PromptError with the field), before any
        reference is downloaded."""
        name = preset_name(form.name)
        stray, flags = parse_prompt(form.flags)
        if stray.strip():
            raise PromptError(f"Only flags go here (`{shown(stray, 60)}` is not one): put words in the style.",
                              field="flags")
        if flags.preset:
            raise PromptError("A preset cannot name another preset.", field="flags")
        style = form.style.strip() or None
        if style and len(style) > MAX_STYLE_CHARS:
            raise PromptError(f"The style is {len(style):,} characters; at most {MAX_STYLE_CHARS:,}.", field="style")
        if len(form.refs) > MAX_PRESET_REFS:
            raise PromptError(f"At most {MAX_PRESET_REFS} reference images.", field="refs")
        if form.workspace and not await self.admins.is_admin(team_id, user_id):
            raise PromptError(ONLY_ADMINS.format(what="save workspace presets"), field="scope")
        return name, flags, style

    async def save(self, team_id: str, user_id: str, form: PresetForm) -> str:
        """Save a preset (its references downloaded and normalised now); what the person is told."""
        name, flags, style = await self.check(team_id, user_id, form)
        refs: list[tuple[str, str]] = []
        if form.refs:
            try:
                ready = await self.inputs.materialize(
                    GenerationParams(prompt=name, image_refs=[ImageSource(slack_file=f) for f in form.refs]),
                    team_id=team_id)
            except InputError as exc:
                raise PromptError(f"A reference image could not be used ({exc.detail or exc.code}). Nothing was "
                                  "saved.", field="refs") from None
            refs = await asyncio.get_running_loop().run_in_executor(None, _smaller, ready.image_refs)
        preset = Preset(id=new_job_id(), team_id=team_id, name=name, owner_id=None if form.workspace else user_id,
                        flags=preset_flags(flags), style=style, refs=len(refs), created_by=user_id)
        replaced = await self.store.presets.save(preset, refs)
        whose = "the workspace's preset" if form.workspace else "your preset"
        return (f"{'Replaced' if replaced else 'Saved'} {whose} `{name}`: {describe(preset)}. Use it with "
                f"`--preset {name}`.")

    async def _list(self, team_id: str, user_id: str) -> str:
        presets = await self.usable(team_id, user_id)
        if not presets:
            return "No presets yet. " + USAGE
        policy = await self.store.policy.get(team_id)

        def line(p: Preset) -> str:
            marks = []
            if p.workspace and policy.default_preset == p.name:
                marks.append("the workspace's default")
            channels = [channel_ref(c) for c, n in policy.channel_presets.items() if n == p.name and p.workspace]
            if channels:
                marks.append("default in " + ", ".join(channels))
            mark = f" ({'; '.join(marks)})" if marks else ""
            return f"• `{p.name}`{mark}: {describe(p)}"

        own, shared = [p for p in presets if not p.workspace], [p for p in presets if p.workspace]
        lines = (["*Your presets:*", *map(line, own)] if own else []) + (
            ["*The workspace's presets:*", *map(line, shared)] if shared else [])
        return "\n".join(lines)

    async def _show(self, team_id: str, user_id: str, name: str) -> str:
        preset = await self.store.presets.find(team_id, user_id, preset_name(name))
        if preset is None:
            return f"There is no preset `{shown(name, 40)}` you can use."
        whose = "the workspace's" if preset.workspace else "yours"
        return f"`{preset.name}` ({whose}, saved by <@{preset.created_by}>): {describe(preset)}"

    async def _delete(self, team_id: str, user_id: str, words: list[str]) -> str:
        workspace, words = _workspace_flag(words)
        if not words:
            return USAGE
        name = preset_name(words[0])
        if workspace:
            if not await self.admins.is_admin(team_id, user_id):
                return ONLY_ADMINS.format(what="delete workspace presets").replace("saved", "deleted")
            gone = await self.store.presets.delete(team_id, None, name)
        else:
            gone = await self.store.presets.delete(team_id, user_id, name)
        if not gone:
            return f"You have no preset `{name}`" + ("" if workspace else " (a workspace preset: add `--workspace`)") + "."
        return f"Deleted {'the workspace' if workspace else 'your'} preset `{name}`."

    async def _default(self, team_id: str, user_id: str, channel_id: str | None, word: str) -> str:
        where = "this channel" if channel_id else "the workspace"
        if not await self.admins.is_admin(team_id, user_id):
            return ONLY_ADMINS.format(what=f"set {where}'s default preset").replace("saved", "changed")
        name = None if word.lower() == NO_PRESET else preset_name(word)
        if name is not None and await self.store.presets.workspace(team_id, name) is None:
            return (f"There is no workspace preset `{name}`: a default must be one everyone may use "
                    "(`/luma preset save NAME … --workspace`).")

        def edit(policy: Policy) -> Policy:
            if channel_id is None:
                return policy.model_copy(update={"default_preset": name})
            channels = {c: n for c, n in policy.channel_presets.items() if c != channel_id}
            return policy.model_copy(update={"channel_presets": {**channels, **({channel_id: name} if name else {})}})

        what = f"default preset of {channel_ref(channel_id) if channel_id else 'the workspace'}: {name or 'none'}"
        await self.store.policy.update(team_id, edit, by=user_id, change=what)
        return (f"Done: every request in {where} now starts from the preset `{name}` (typed flags and `--preset` win; "
                f"`--preset none` leaves it out)." if name else f"Done: {where} has no default preset now.")


def _workspace_flag(words: list[str]) -> tuple[bool, list[str]]:
    """(whether `--workspace` is among the words, the other words)."""
    rest = [w for w in words if w.lower() != "--workspace"]
    return len(rest) < len(words), rest


def _smaller(refs: list[ImageSource]) -> list[tuple[str, str]]:
    """A preset's references as kept (media type, base64): at most PRESET_REF_SIDE pixels long, as
    a style or content reference needs no more, and every send of the preset reads them."""
    kept = []
    for ref in refs:
        prepared = prepare_image(base64.b64decode(ref.data or ""), max_side=PRESET_REF_SIDE)
        kept.append((prepared.media_type, prepared.base64()))
    return kept


def describe(preset: Preset) -> str:
    """What a preset sets, as a person reads it."""
    parts = []
    flags = Flags(**preset.flags).as_text()
    if flags:
        parts.append(flags)
    if preset.style:
        parts.append(f"style: {shown(preset.style, 200)}")
    if preset.refs:
        parts.append(f"{preset.refs} reference image{'s' if preset.refs != 1 else ''}")
    return " · ".join(parts) or "nothing set"
