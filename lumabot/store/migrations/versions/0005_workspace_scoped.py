"""Every lookup of an image, a thread or a running session names its workspace (issue #23): two
workspaces can have the same channel ids. Images get the workspace they were seen in (from their
job, or else a job of the same channel: until now lumabot served one workspace), and the indexes
lead with it; a running session is unique per workspace and channel.

Revision ID: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("images", sa.Column("team_id", sa.Text(), nullable=False, server_default=""))
    op.execute("UPDATE images SET team_id = COALESCE("
               "(SELECT jobs.team_id FROM jobs WHERE jobs.id = images.job_id), "
               "(SELECT jobs.team_id FROM jobs WHERE jobs.channel_id = images.channel_id LIMIT 1), "
               "(SELECT jobs.team_id FROM jobs LIMIT 1), '')")
    for name in ("images_thread", "images_channel", "images_file", "jobs_channel_status", "sessions_running"):
        op.drop_index(name)
    op.create_index("images_thread", "images", ["team_id", "channel_id", "thread_ts", "id"])
    op.create_index("images_channel", "images", ["team_id", "channel_id", "id"])
    op.create_index("images_file", "images", ["team_id", "slack_file_id", "channel_id"], unique=True)
    op.create_index("jobs_channel_status", "jobs", ["team_id", "channel_id", "status_ts"])
    running = sa.text("ended_at IS NULL")
    op.create_index("sessions_running", "sessions", ["team_id", "channel_id"], unique=True,
                    sqlite_where=running, postgresql_where=running)


def downgrade() -> None:
    raise NotImplementedError("lumabot's migrations are additive; restore a backup to go back")
