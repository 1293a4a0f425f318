"""A workspace's own Luma key (issue #23): the keys, and the Luma account each job goes to.

Revision ID: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("account", sa.Text(), nullable=False, server_default="default"))
    op.create_table(
        "luma_keys",
        sa.Column("team_id", sa.Text(), primary_key=True),
        sa.Column("api_key", sa.Text(), nullable=False),
        sa.Column("set_by", sa.Text(), nullable=False),
        sa.Column("set_at", sa.Float(precision=53), nullable=False),
    )


def downgrade() -> None:
    raise NotImplementedError("lumabot's migrations are additive; restore a backup to go back")
