"""What truly differs between the two databases, one small module each (sqlite.py, postgres.py):
how to connect and run a unit of work, what serialises units across replicas, how replicas wake
each other, and a few SQL functions, declared here and compiled by each module."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.functions import FunctionElement


class now(FunctionElement[float]):
    """The database's clock, in seconds since the epoch (what several replicas agree on)."""

    type = sa.Float()
    inherit_cache = True



class utc_day(FunctionElement[float]):
    """The start of the UTC day of an epoch time (seconds)."""

    type = sa.Float()
    inherit_cache = True



def open_database(url: str) -> Any:
    """The Database for LUMABOT_DATABASE_URL: `sqlite:///path` or `postgresql://…`."""
    if url.startswith("sqlite:///"):
        from .sqlite import SQLiteDatabase

        return SQLiteDatabase(url[len("sqlite:///"):])
    if url.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresDatabase

        return PostgresDatabase(url)
    raise ValueError("unsupported database URL scheme")
