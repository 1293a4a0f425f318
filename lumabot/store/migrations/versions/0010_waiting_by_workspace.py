"""Luma's line read by workspace: whether a workspace has a job waiting is one index probe (it
was a scan of the whole line, at every job that joined it and every grant).

Revision ID: 0010
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("luma_waiting_team", "luma_waiting", ["account", "team"])


def downgrade() -> None:
    raise NotImplementedError("lumabot's migrations are additive; restore a backup to go back")
