"""Whether a generation was polled densely from its first poll (while jobs waited for a slot,
or before the poll planner had learned anything): the planner keeps what those taught it past
its window, and learns them again after a restart (issue #27).

Revision ID: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("polled_densely", sa.Boolean(create_constraint=False), nullable=False,
                                    server_default=sa.false()))


def downgrade() -> None:
    raise NotImplementedError("lumabot's migrations are additive; restore a backup to go back")
