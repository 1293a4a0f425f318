"""Persistence: one SQL layer (SQLAlchemy Core, store/sql.py) over SQLite (the embedded default)
or PostgreSQL (for several replicas), with the tables declared once (schema.py), one migration
chain (migrate.py) and what differs between the two in one module each (dialects/).

The store is narrow stores by concern, each small enough to read in one sitting:

- `jobs`: a job admitted and recorded, the runner's fenced writes, cancels, which replica runs it;
- `images`: images and their lineage (what a reply or `/edit` edits);
- `policy`: each workspace's policy, its usage, reports, the export, retention and forgetting;
- `sessions`: creative sessions, votes and thumbnails;
- `slots`: Luma's limits shared by several replicas;
- `keys`: dedupe keys and leases;
- `pending`: requests held until their person confirms their cost;
- `presets`: presets and their reference images;
- `studio`: the threads of the private studio in Slack's AI split view;
- `tenants`: the workspaces served and their Enterprise Grid organisation;
- `luma_keys`: workspaces' own Luma keys.

`open_store(url)` gives them all on one database."""

from __future__ import annotations

from .dialects import open_database
from .errors import JobCancelled, JobLost, StoreUnavailable
from .images import ImageStore
from .jobs import JobStore
from .keys import KeyStore
from .luma_keys import LumaKeyStore
from .pending import PendingStore
from .presets import PresetStore
from .studio import StudioStore
from .policy import PolicyStore
from .sessions import SessionStore
from .slots import SlotStore
from .sql import Database, mark_for_an_ack, outside_an_ack
from .tenants import TenantStore


class Store:
    """Every narrow store, on one database."""

    def __init__(self, db: Database):
        self.db = db
        self.keys = KeyStore(db)
        self.images = ImageStore(db)
        self.jobs = JobStore(db, self.images)
        self.policy = PolicyStore(db)
        self.sessions = SessionStore(db)
        self.slots = SlotStore(db)
        self.tenants = TenantStore(db)
        self.pending = PendingStore(db)
        self.presets = PresetStore(db)
        self.studio = StudioStore(db)
        self.luma_keys = LumaKeyStore(db)

    @property
    def shared(self) -> bool:
        """Several processes may use the database at once (PostgreSQL). SQLite is one
        process's: at start it takes every unfinished job over, whoever ran it before."""
        return self.db.shared

    async def open(self) -> None:
        """Connect, and bring the schema up to date."""
        await self.db.open()

    async def close(self) -> None:
        await self.db.close()


def open_store(database_url: str) -> Store:
    """The store for LUMABOT_DATABASE_URL: `sqlite:///path` (one machine) or
    `postgresql://…` / `postgres://…` (several replicas; query parameters such as sslmode are
    passed to the driver)."""
    return Store(open_database(database_url))


async def schema_status(database_url: str) -> tuple[str | None, str]:
    """(the database's schema revision: None before the first start, "legacy:N" for a database
    of lumabot 0.1; the revision this lumabot brings it to), read without changing anything
    (`lumabot check`). Raises StoreUnavailable when it cannot be reached."""
    from . import migrate

    if database_url.startswith("sqlite:///"):
        from .dialects.sqlite import peek_revision

        return await peek_revision(database_url[len("sqlite:///"):]), migrate.head()
    from .dialects.postgres import peek_revision as pg_peek_revision

    return await pg_peek_revision(database_url), migrate.head()


__all__ = ["mark_for_an_ack", "outside_an_ack", "ImageStore", "JobCancelled", "JobLost", "JobStore", "KeyStore", "LumaKeyStore", "PendingStore", "PolicyStore", "PresetStore", "StudioStore",
           "SessionStore",
           "SlotStore", "Store", "TenantStore", "StoreUnavailable", "open_store", "schema_status"]
