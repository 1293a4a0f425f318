"""The workspaces lumabot serves and their Enterprise Grid organisation (issue #23).

Revision ID: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("team_id", sa.Text(), primary_key=True),
        sa.Column("enterprise_id", sa.Text()),
        sa.Column("seen_at", sa.Float(precision=53), nullable=False),
    )
    op.create_index("tenants_enterprise", "tenants", ["enterprise_id"])


def downgrade() -> None:
    raise NotImplementedError("lumabot's migrations are additive; restore a backup to go back")
