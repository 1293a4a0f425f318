"""Luma's line takes turns between workspaces, then between the people of each (issue #23): the
line and the person turns say the workspace, and the workspaces have turns of their own. A line
key from before is a workspace of its own (one person), as it was served.

Revision ID: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("luma_waiting", sa.Column("team", sa.Text(), nullable=False, server_default=""))
    op.add_column("luma_turns", sa.Column("team", sa.Text(), nullable=False, server_default=""))
    op.execute("UPDATE luma_waiting SET team = user_key")
    op.execute("UPDATE luma_turns SET team = user_key")
    op.create_index("luma_turns_team", "luma_turns", ["account", "team", "served"])
    op.create_table(
        "luma_team_turns",
        sa.Column("account", sa.Text(), primary_key=True),
        sa.Column("team", sa.Text(), primary_key=True),
        sa.Column("served", sa.BigInteger(), nullable=False),
    )
    op.execute("INSERT INTO luma_team_turns (account, team, served) SELECT account, team, served FROM luma_turns")


def downgrade() -> None:
    raise NotImplementedError("lumabot's migrations are additive; restore a backup to go back")
