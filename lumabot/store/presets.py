"""Presets and their reference images (jobs/presets.py): saved, found by name (a person's own
first, then the workspace's), listed, deleted."""

from __future__ import annotations

import json
from typing import Any, Sequence

import sqlalchemy as sa

from ..jobs.presets import Preset
from .schema import preset_refs, presets
from .sql import Database, param

WORKSPACE = ""  # the owner_id of a workspace preset

_COLUMNS = [presets.c.id, presets.c.team_id, presets.c.name, presets.c.owner_id, presets.c.flags, presets.c.style,
            presets.c.refs, presets.c.created_by, presets.c.created_at]
_FIND = (sa.select(*_COLUMNS)
         .where(presets.c.team_id == param("team"), presets.c.name == param("name"),
                presets.c.owner_id.in_([param("user"), sa.literal(WORKSPACE)]))
         .order_by(presets.c.owner_id == WORKSPACE))      # their own first
_LIST = (sa.select(*_COLUMNS)
         .where(presets.c.team_id == param("team"), presets.c.owner_id.in_([param("user"), sa.literal(WORKSPACE)]))
         .order_by(presets.c.owner_id == WORKSPACE, presets.c.name))
_OF = sa.select(presets.c.id).where(presets.c.team_id == param("team"), presets.c.owner_id == param("owner"),
                                    presets.c.name == param("name"))
_INSERT = sa.insert(presets).values({c.name: param(c.name) for c in presets.c})
_DELETE = sa.delete(presets).where(presets.c.id == param("id"))
_DELETE_REFS = sa.delete(preset_refs).where(preset_refs.c.preset_id == param("id"))
_INSERT_REF = sa.insert(preset_refs).values(preset_id=param("id"), position=param("position"),
                                            media_type=param("media_type"), data=param("data"))
_REF = sa.select(preset_refs.c.media_type, preset_refs.c.data).where(
    preset_refs.c.preset_id == param("id"), preset_refs.c.position == param("position"))


def _preset(row: Sequence[Any]) -> Preset:
    data = dict(zip([c.name for c in _COLUMNS], row))
    data["flags"] = json.loads(data["flags"])
    data["owner_id"] = data["owner_id"] or None
    return Preset(**data)


class PresetStore:
    def __init__(self, db: Database):
        self.db = db

    async def save(self, preset: Preset, refs: list[tuple[str, str]] | None = None) -> bool:
        """Save a preset (with its references: media type, base64), replacing the owner's one
        of the same name and its references. Whether it replaced one."""
        row = {c.name: v for c, v in zip(_COLUMNS, (
            preset.id, preset.team_id, preset.name, preset.owner_id or WORKSPACE, json.dumps(preset.flags),
            preset.style, len(refs or []), preset.created_by, preset.created_at))}
        async with self.db.write() as tx:
            old = await tx.scalar(_OF, team=preset.team_id, owner=row["owner_id"], name=preset.name)
            if old is not None:
                await tx.execute(_DELETE_REFS, id=old)
                await tx.execute(_DELETE, id=old)
            await tx.execute(_INSERT, **row)
            await tx.executemany(_INSERT_REF, [{"id": preset.id, "position": i, "media_type": m, "data": d}
                                               for i, (m, d) in enumerate(refs or [])])
        return old is not None

    async def find(self, team_id: str, user_id: str, name: str) -> Preset | None:
        """The preset `name` this person may use: their own, else the workspace's."""
        row = await self.db.row(_FIND, team=team_id, user=user_id, name=name)
        return _preset(row) if row else None

    async def workspace(self, team_id: str, name: str) -> Preset | None:
        row = await self.db.row(_FIND, team=team_id, user=WORKSPACE, name=name)
        return _preset(row) if row else None

    async def usable(self, team_id: str, user_id: str) -> list[Preset]:
        """The person's own presets, then the workspace's, by name."""
        return [_preset(r) for r in await self.db.rows(_LIST, team=team_id, user=user_id)]

    async def delete(self, team_id: str, owner_id: str | None, name: str) -> bool:
        async with self.db.write() as tx:
            old = await tx.scalar(_OF, team=team_id, owner=owner_id or WORKSPACE, name=name)
            if old is None:
                return False
            await tx.execute(_DELETE_REFS, id=old)
            await tx.execute(_DELETE, id=old)
        return True

    async def reference(self, preset_id: str, position: int) -> tuple[str, str] | None:
        """A reference image of a preset: (media type, base64); None if it was deleted."""
        row = await self.db.row(_REF, id=preset_id, position=position)
        return (str(row[0]), str(row[1])) if row else None
