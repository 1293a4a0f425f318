"""One schema for both databases (issue #22): the tables of store/schema.py, the same on SQLite
and PostgreSQL. Times the database's clock wrote become seconds since the epoch; PostgreSQL's
Luma slot tables come to SQLite too (one store serves both); the line's order no longer needs a
sequence (a job joins with the account's turn counter); indexes match.

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_FLOAT = sa.Float(precision=53)


def _luma_tables() -> None:
    """Luma's slot tables, as PostgreSQL's migrations 3 and 6 made them, with epoch times."""
    op.create_table(
        "luma_account",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("paused_until", _FLOAT, nullable=False, server_default="0"),
        sa.Column("estimate", sa.Integer()),
        sa.Column("estimate_until", _FLOAT),
        sa.Column("rate_limit", sa.Integer()),
        sa.Column("turn", sa.BigInteger(), nullable=False, server_default="0"),
    )
    op.execute("INSERT INTO luma_account (id) VALUES ('default')")
    op.create_table(
        "luma_waiting",
        sa.Column("job_id", sa.Text(), primary_key=True),
        sa.Column("account", sa.Text(), nullable=False),
        sa.Column("user_key", sa.Text(), nullable=False),
        sa.Column("front", sa.Boolean(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("replica", sa.Text()),
    )
    op.execute("CREATE INDEX luma_waiting_line ON luma_waiting (account, user_key, front DESC, "
               "(CASE WHEN front THEN -seq ELSE seq END))")
    op.create_table(
        "luma_turns",
        sa.Column("account", sa.Text(), primary_key=True),
        sa.Column("user_key", sa.Text(), primary_key=True),
        sa.Column("served", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "luma_slots",
        sa.Column("job_id", sa.Text(), primary_key=True),
        sa.Column("account", sa.Text(), nullable=False),
        sa.Column("granted_at", _FLOAT, nullable=False),
        sa.Column("untold", sa.Text()),
    )
    op.execute("CREATE INDEX luma_slots_untold ON luma_slots (untold) WHERE untold IS NOT NULL")
    op.create_table(
        "luma_submissions",
        sa.Column("account", sa.Text(), nullable=False),
        sa.Column("at", _FLOAT, nullable=False),
    )
    op.create_index("luma_submissions_at", "luma_submissions", ["account", "at"])


def _sqlite() -> None:
    _luma_tables()
    op.execute("DROP INDEX jobs_unsettled")
    op.execute("CREATE INDEX jobs_unsettled ON jobs (created_at) WHERE settled = 0")


def _epoch(table: str, column: str, *, default: str | None) -> None:
    op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} DROP DEFAULT")
    op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE DOUBLE PRECISION "
               f"USING extract(epoch FROM {column})")
    if default is not None:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} SET DEFAULT {default}")


def _postgresql() -> None:
    op.drop_column("jobs", "seq")
    op.execute("DROP TABLE schema_version")
    _epoch("replicas", "heartbeat_at", default=None)
    _epoch("luma_account", "paused_until", default="0")
    _epoch("luma_account", "estimate_until", default=None)
    _epoch("luma_slots", "granted_at", default=None)
    _epoch("luma_submissions", "at", default=None)
    # The line's order: the account's turn counter, not a sequence of its own.
    op.execute("UPDATE luma_account SET turn = GREATEST(turn, (SELECT COALESCE(MAX(seq), 0) FROM luma_waiting))")
    op.execute("ALTER TABLE luma_waiting ALTER COLUMN seq DROP DEFAULT")
    op.execute("DROP SEQUENCE IF EXISTS luma_waiting_seq_seq")
    op.execute("DROP INDEX images_by_file")
    op.execute("DROP INDEX images_file")
    op.execute("CREATE UNIQUE INDEX images_file ON images (slack_file_id, channel_id)")
    op.execute("DROP INDEX jobs_session")
    op.execute("CREATE INDEX jobs_session ON jobs (session_id) WHERE session_id IS NOT NULL")
    op.execute("DROP INDEX jobs_unsettled")
    op.execute("CREATE INDEX jobs_unsettled ON jobs (created_at) WHERE settled = false")
    op.execute("DROP INDEX jobs_owner")
    op.execute("CREATE INDEX jobs_owner ON jobs (owner) WHERE settled = false")
    # The surrogate keys keep counting where they were; their sequences are the columns' own.


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _sqlite()
    else:
        _postgresql()


def downgrade() -> None:
    raise NotImplementedError("lumabot's migrations are additive; restore a backup to go back")
