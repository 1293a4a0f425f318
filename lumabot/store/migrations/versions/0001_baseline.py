"""The schema of lumabot 0.1: its numbered migrations (store/legacy.py), applied from wherever
the database stands (all of them on an empty database).

Revision ID: 0001
"""

from alembic import op

from lumabot.store import legacy

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _statements(script: str) -> list[str]:
    """One statement at a time (drivers take one per call): the released scripts hold no
    semicolon inside a literal."""
    return [s.strip() for s in script.split(";") if s.strip()]


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        version = bind.exec_driver_sql("PRAGMA user_version").scalar() or 0
        for number in range(version + 1, len(legacy.SQLITE) + 1):
            for statement in _statements(legacy.SQLITE[number - 1]):
                bind.exec_driver_sql(statement)
            bind.exec_driver_sql(f"PRAGMA user_version = {number}")
    else:
        bind.exec_driver_sql("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        version = bind.exec_driver_sql("SELECT COALESCE(MAX(version), 0) FROM schema_version").scalar() or 0
        for number in range(version + 1, len(legacy.POSTGRESQL) + 1):
            for statement in _statements(legacy.POSTGRESQL[number - 1]):
                bind.exec_driver_sql(statement)
            bind.exec_driver_sql(f"INSERT INTO schema_version (version) VALUES ({number})")


def downgrade() -> None:
    raise NotImplementedError("lumabot's migrations are additive; restore a backup to go back")
