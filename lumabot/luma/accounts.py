"""Luma accounts: which account a workspace's jobs go to, and a client for each.

By default every workspace shares the operator's key (LUMA_AGENTS_API_KEY: DEFAULT_ACCOUNT). A
workspace admin may set the workspace's own key (`/luma admin luma-key`): it is checked with Luma
first, stored sealed (LUMABOT_ENCRYPTION_KEY) and never shown or logged; the workspace's new jobs
then go to that account (named by the team id) and count against its limits (the runner keeps
one scheduler per account). A job keeps the account it was recorded with; if the key is removed
before its generation is sent or finished, the job fails with `luma_key_removed`.

What a process knows of a workspace's key is cached for `ttl` seconds: a change made on this
replica applies at once, one made on another replica within `ttl`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Callable, Protocol

from ..jobs.models import DEFAULT_ACCOUNT
from ..ports import LumaApi
from ..secrets import Sealer, SecretsLocked
from .client import PROBE_GENERATION_ID, LumaNotFound, LumaRateLimited, LumaRejected

log = logging.getLogger(__name__)

CACHE_TTL = 30.0  # seconds a workspace's key (or its absence) is trusted without reading again


class ClosableLuma(LumaApi, Protocol):
    async def close(self) -> None: ...


class KeyStore(Protocol):
    """Where workspaces' keys are kept (store/luma_keys.py), as this module stores them (sealed)."""

    async def get(self, team_id: str) -> tuple[str, str, float] | None: ...
    async def teams(self) -> set[str]: ...
    async def all(self) -> list[tuple[str, str, str, float]]: ...
    async def set(self, team_id: str, stored_key: str, *, by: str, at: float) -> None: ...
    async def remove(self, team_id: str) -> bool: ...


class NoLumaKey(Exception):
    """The account's key was removed: its jobs cannot be sent (or polled) any more."""


class KeyRefused(Exception):
    """Luma did not accept a key an admin typed (the message says why, without the key)."""


@dataclass(frozen=True)
class KeyInfo:
    set_by: str
    set_at: float


class LumaAccounts:
    def __init__(self, default: LumaApi, keys: KeyStore | None = None, *, sealer: Sealer | None = None,
                 connect: Callable[[str], ClosableLuma] | None = None, ttl: float = CACHE_TTL,
                 clock: Callable[[], float] = time.monotonic):
        self.default = default
        self.keys = keys          # None: every workspace uses the operator's key
        self.sealer = sealer or Sealer()
        self.connect = connect    # a client for a key
        self.ttl = ttl
        self._clock = clock
        self._known: dict[str, tuple[str | None, float]] = {}   # team -> (its key or None, read at)
        self._with_keys: tuple[set[str], float] | None = None  # the workspaces with a key, read at
        self._clients: dict[str, tuple[str, ClosableLuma]] = {}  # account -> (the key, its client)
        self._retired: list[ClosableLuma] = []  # clients of replaced keys (polls may still use them)

    async def account_for(self, team_id: str) -> str:
        """The account a new job of this workspace goes to: one read of the (short) list of
        workspaces with a key every `ttl` seconds, not one per request."""
        if self.keys is None:
            return DEFAULT_ACCOUNT
        now = self._clock()
        if self._with_keys is None or now - self._with_keys[1] >= self.ttl:
            self._with_keys = (await self.keys.teams(), now)
        return team_id if team_id in self._with_keys[0] else DEFAULT_ACCOUNT

    async def client(self, account: str) -> LumaApi:
        """The client for a job's account (NoLumaKey if the workspace's key was removed)."""
        if account == DEFAULT_ACCOUNT:
            return self.default
        key = await self._key(account)
        if key is None:
            raise NoLumaKey(account)
        known = self._clients.get(account)
        if known is not None and known[0] == key:
            return known[1]
        assert self.connect is not None
        client = self.connect(key)
        self._clients[account] = (key, client)
        if known is not None:  # the key was replaced: the old client's requests may be in flight
            self._retired.append(known[1])
        return client

    async def info(self, team_id: str) -> KeyInfo | None:
        """Who set the workspace's own key and when; None: it uses the operator's."""
        if self.keys is None:
            return None
        found = await self.keys.get(team_id)
        return KeyInfo(found[1], found[2]) if found else None

    async def check(self, key: str) -> None:
        """Ask Luma whether it accepts `key` (KeyRefused with the reason; LumaUnavailable when
        Luma cannot be asked now)."""
        if self.connect is None:
            raise KeyRefused("this lumabot cannot use workspaces' own Luma keys")
        client = self.connect(key)
        try:
            await client.get(PROBE_GENERATION_ID)
        except LumaNotFound:
            return  # authenticated: the key is good
        except LumaRejected as e:
            if e.status == 403:
                raise KeyRefused("Luma accepted the key but says its account is suspended") from None
            raise KeyRefused("Luma did not accept this key (check that it is whole and not revoked)") from None
        except LumaRateLimited:
            return  # Luma only rate-limits a key it knows
        finally:
            await client.close()

    async def set_key(self, team_id: str, key: str, *, by: str) -> None:
        """Check the key with Luma and save it (sealed): the workspace's new jobs use it."""
        assert self.keys is not None
        await self.check(key)
        stored = self.sealer.seal(key)
        assert stored is not None
        await self.keys.set(team_id, stored, by=by, at=time.time())
        self._known[team_id] = (key, self._clock())
        if self._with_keys is not None:
            self._with_keys[0].add(team_id)
        log.info("a workspace set its own Luma key", extra={"team_id": team_id})

    async def remove_key(self, team_id: str) -> bool:
        """Back to the operator's key for new jobs; False if the workspace had none."""
        assert self.keys is not None
        removed = await self.keys.remove(team_id)
        self._known[team_id] = (None, self._clock())
        if self._with_keys is not None:
            self._with_keys[0].discard(team_id)
        if removed:
            log.info("a workspace removed its own Luma key", extra={"team_id": team_id})
        return removed

    async def reseal(self) -> int:
        """At start: workspaces' keys stored before LUMABOT_ENCRYPTION_KEY was set, or sealed
        with a key since rotated out of first place, are sealed again with the first key (so
        the old key can be dropped). How many were; a key none opens is logged and left."""
        if self.keys is None:
            return 0
        count = 0
        for team, stored, by, at in await self.keys.all():
            try:
                again = self.sealer.reseal(stored)
            except SecretsLocked as exc:
                log.error("a workspace's own Luma key cannot be read: %s", exc, extra={"team_id": team})
                continue
            if again is not None:
                await self.keys.set(team, again, by=by, at=at)
                count += 1
        if count:
            log.info("sealed %d workspaces' own Luma keys with the first LUMABOT_ENCRYPTION_KEY", count)
        return count

    async def close(self) -> None:
        clients = [c for _, c in self._clients.values()] + self._retired
        self._clients.clear()
        self._retired.clear()
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)

    async def _key(self, team_id: str) -> str | None:
        if self.keys is None:
            return None
        known = self._known.get(team_id)
        now = self._clock()
        if known is not None and now - known[1] < self.ttl:
            return known[0]
        found = await self.keys.get(team_id)
        key = self.sealer.open(found[0]) if found else None
        self._known[team_id] = (key, now)
        return key

