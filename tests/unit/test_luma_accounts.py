"""Which Luma account a workspace's jobs go to (luma/accounts.py): from a cached list of the
workspaces with their own key, a client per key, keys checked with Luma and sealed."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from lumabot.luma.accounts import KeyRefused, LumaAccounts, NoLumaKey
from lumabot.luma.client import LumaNotFound, LumaRejected, LumaUnavailable
from lumabot.secrets import Sealer


class Keys:
    def __init__(self) -> None:
        self.rows: dict[str, tuple[str, str, float]] = {}
        self.reads = 0

    async def get(self, team_id):
        self.reads += 1
        return self.rows.get(team_id)

    async def teams(self):
        self.reads += 1
        return set(self.rows)

    async def all(self):
        self.reads += 1
        return [(team, *row) for team, row in sorted(self.rows.items())]

    async def set(self, team_id, stored_key, *, by, at):
        self.rows[team_id] = (stored_key, by, at)

    async def remove(self, team_id):
        return self.rows.pop(team_id, None) is not None


class Client:
    """A Luma client for one key: answers the probe as Luma would for that key."""

    def __init__(self, key: str, answers: dict[str, Exception]):
        self.key, self.answer, self.closed = key, answers.get(key, LumaNotFound("not found", status=404)), False

    async def create(self, params, *, user_id):
        raise NotImplementedError

    async def get(self, generation_id):
        raise self.answer

    async def close(self):
        self.closed = True


def accounts(keys: Keys, clock: list[float], answers: dict[str, Exception] | None = None,
             sealer: Sealer | None = None):
    made: list[Client] = []

    def connect(key: str) -> Client:
        made.append(Client(key, answers or {}))
        return made[-1]

    default = Client("operator", {})
    return LumaAccounts(default, keys, sealer=sealer, connect=connect, ttl=30.0, clock=lambda: clock[0]), default, made


async def test_the_account_of_a_workspace_comes_from_one_cached_read_for_every_workspace():
    keys, clock = Keys(), [0.0]
    keys.rows["T1"] = ("luma-t1", "UADMIN", 0.0)
    acc, default, _ = accounts(keys, clock)
    assert [await acc.account_for(f"T{i}") for i in range(100)] == ["default", "T1"] + ["default"] * 98
    assert keys.reads == 1                               # not one read per request
    keys.rows["T2"] = ("luma-t2", "UADMIN", 0.0)          # set through another replica
    assert await acc.account_for("T2") == "default"      # ...seen once the cache is old
    clock[0] = 30.0
    assert await acc.account_for("T2") == "T2" and keys.reads == 2
    assert await acc.client("default") is default


async def test_a_key_is_checked_with_luma_sealed_and_used_until_removed():
    keys, clock = Keys(), [0.0]
    sealer = Sealer([Fernet(Fernet.generate_key())])
    acc, _, made = accounts(keys, clock, {"luma-bad": LumaRejected("Invalid API key", code="misconfigured", status=401),
                                          "luma-suspended": LumaRejected("Forbidden", code="misconfigured",
                                                                         status=403),
                                          "luma-slow": LumaUnavailable("timeout")}, sealer)
    await acc.account_for("T1")
    with pytest.raises(KeyRefused, match="did not accept"):
        await acc.set_key("T1", "luma-bad", by="UADMIN")
    with pytest.raises(KeyRefused, match="suspended"):
        await acc.set_key("T1", "luma-suspended", by="UADMIN")
    with pytest.raises(LumaUnavailable):
        await acc.set_key("T1", "luma-slow", by="UADMIN")
    assert keys.rows == {} and all(c.closed for c in made)   # nothing saved; probes closed
    await acc.set_key("T1", "luma-good", by="UADMIN")
    stored = keys.rows["T1"][0]
    assert stored.startswith("fernet:") and "luma-good" not in stored
    assert await acc.account_for("T1") == "T1"              # at once on this replica
    client = await acc.client("T1")
    assert client.key == "luma-good" and await acc.client("T1") is client   # one client per key
    assert (await acc.info("T1")).set_by == "UADMIN"
    assert await acc.remove_key("T1") and not await acc.remove_key("T1")
    assert await acc.account_for("T1") == "default"
    with pytest.raises(NoLumaKey):
        await acc.client("T1")


async def test_without_a_key_store_every_workspace_uses_the_operators_key():
    acc = LumaAccounts(Client("operator", {}))
    assert await acc.account_for("T1") == "default" and await acc.info("T1") is None
    with pytest.raises(KeyRefused):
        await acc.check("luma-anything")


async def test_keys_are_sealed_again_under_the_first_encryption_key_at_start():
    """Rotation: with LUMABOT_ENCRYPTION_KEY=<new>,<old>, a start seals every workspace's key
    with the new one (and a key stored before encryption was set), so the old one can go."""
    old, new = Fernet(Fernet.generate_key()), Fernet(Fernet.generate_key())
    keys, clock = Keys(), [0.0]
    keys.rows["T1"] = (Sealer([old]).seal("luma-t1"), "UADMIN", 1.0)
    keys.rows["T2"] = ("luma-t2", "UADMIN", 2.0)                       # stored before a key was set
    keys.rows["T3"] = (Sealer([new]).seal("luma-t3"), "UADMIN", 3.0)   # already under the new key
    acc, _, _ = accounts(keys, clock, sealer=Sealer([new, old]))
    before = keys.rows["T3"]
    assert await acc.reseal() == 2
    only_new = Sealer([new])
    assert [only_new.open(keys.rows[t][0]) for t in ("T1", "T2", "T3")] == ["luma-t1", "luma-t2", "luma-t3"]
    assert keys.rows["T3"] == before and keys.rows["T1"][1:] == ("UADMIN", 1.0)   # who and when kept
    assert await acc.reseal() == 0                                      # nothing more to do
