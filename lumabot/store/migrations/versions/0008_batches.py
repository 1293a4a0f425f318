"""Several images from one request (issue #24): each image a job, the jobs of a request sharing
the first one's id as their batch; and where each job came from (its Info: the request as typed,
where each flag came from, the image it was made from); requests held for their person's
confirmation (a cost preview); presets and their reference images; the threads of the private
studio in Slack's AI split view.

Revision ID: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("batch_id", sa.Text()))
    op.add_column("jobs", sa.Column("batch_index", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("jobs", sa.Column("batch_size", sa.Integer(), nullable=False, server_default="1"))
    op.add_column("jobs", sa.Column("origin", sa.Text()))
    # When a generation was last seen running (the poll planner learns intervals: issue #27).
    op.add_column("jobs", sa.Column("running_seen", sa.Float(precision=53)))
    op.create_table(
        "pending_requests",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("team_id", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(precision=53), nullable=False),
        sa.Column("jobs", sa.Text(), nullable=False),
    )
    op.create_index("pending_requests_person", "pending_requests", ["team_id", "user_id"])
    op.create_table(
        "presets",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("team_id", sa.Text(), nullable=False),
        sa.Column("owner_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("flags", sa.Text(), nullable=False),
        sa.Column("style", sa.Text()),
        sa.Column("refs", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(precision=53), nullable=False),
    )
    op.create_index("presets_name", "presets", ["team_id", "owner_id", "name"], unique=True)
    op.create_table(
        "preset_refs",
        sa.Column("preset_id", sa.Text(), primary_key=True),
        sa.Column("position", sa.Integer(), primary_key=True),
        sa.Column("media_type", sa.Text(), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
    )
    op.create_table(
        "studio_threads",
        sa.Column("channel_id", sa.Text(), primary_key=True),
        sa.Column("thread_ts", sa.Text(), primary_key=True),
        sa.Column("team_id", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("context", sa.Text(), nullable=False),
        sa.Column("titled", sa.Boolean(create_constraint=False), nullable=False, server_default=sa.false()),
        sa.Column("created_at", sa.Float(precision=53), nullable=False),
    )
    in_a_batch = sa.text("batch_id IS NOT NULL")
    op.create_index("jobs_batch", "jobs", ["batch_id"], sqlite_where=in_a_batch, postgresql_where=in_a_batch)


def downgrade() -> None:
    raise NotImplementedError("lumabot's migrations are additive; restore a backup to go back")
