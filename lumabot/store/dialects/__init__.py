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


class json_text(FunctionElement[str]):
    """The text of a key of a JSON object held in a TEXT column: json_text(column, "model")."""

    type = sa.Text()
    inherit_cache = True


class utc_day(FunctionElement[float]):
    """The start of the UTC day of an epoch time (seconds)."""

    type = sa.Float()
    inherit_cache = True


def json_key(element: Any) -> str:
    """The key of a json_text() call (a string literal, never a parameter)."""
    key = element.clauses.clauses[1].value
    if not isinstance(key, str) or not key.replace("_", "").isalnum():
        raise ValueError(f"not a JSON key lumabot uses: {key!r}")
    return key


def open_database(url: str) -> Any:
    """The Database for LUMABOT_DATABASE_URL: `sqlite:///path` or `postgresql://…`."""
    if url.startswith("sqlite:///"):
        from .sqlite import SQLiteDatabase

        return SQLiteDatabase(url[len("sqlite:///"):])
    if url.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresDatabase

        return PostgresDatabase(url)
    raise ValueError("unsupported database URL scheme")
