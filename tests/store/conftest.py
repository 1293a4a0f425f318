"""Every store implementation runs the same tests: `store` is parametrized over them."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Awaitable, Callable

import pytest

from lumabot.jobs.models import GenerationParams, Job
from lumabot.store import Store
from lumabot.store import open_store


async def _sqlite(request: Any, tmp_path: Path) -> Store:
    return open_store(f"sqlite:///{tmp_path / 'store.db'}")


async def _postgres(request: Any, tmp_path: Path) -> Store:
    cluster = request.getfixturevalue("pg_cluster")
    return open_store(await cluster.new_database())


# name -> a factory of an unopened store in a fresh database
STORES: dict[str, Callable[[Any, Path], Awaitable[Store]]] = {"sqlite": _sqlite, "postgresql": _postgres}


@pytest.fixture(params=sorted(STORES))
async def store(request: Any, tmp_path: Path):
    s = await STORES[request.param](request, tmp_path)
    await s.open()
    yield s
    await s.close()


def job(**kw: Any) -> Job:
    params = kw.pop("params", None) or GenerationParams(prompt=kw.pop("prompt", "a cat"))
    return Job(team_id=kw.pop("team_id", "T1"), user_id=kw.pop("user_id", "U1"),
               channel_id=kw.pop("channel_id", "C1"), params=params, **kw)
