"""Facts of a job the usage queries read, kept in columns of their own: its model, its type
(image or edit) and whether Luma charges for it. lumabot writes them from the job itself
(`Job.charged` is their one definition); before, each database's SQL said them again, reading
the parameters' JSON.

Revision ID: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# Job.charged as lumabot 0.1 defined it, frozen here for the rows written before this revision.
_REFUNDED = "('content_moderated', 'generation_failed', 'output_not_found')"


def upgrade() -> None:
    op.add_column("jobs", sa.Column("model", sa.Text(), nullable=False, server_default="uni-1"))
    op.add_column("jobs", sa.Column("type", sa.Text(), nullable=False, server_default="image"))
    op.add_column("jobs", sa.Column("charged", sa.Boolean(create_constraint=False), nullable=False,
                                    server_default=sa.false()))
    if op.get_bind().dialect.name == "sqlite":
        model, type_ = "json_extract(params, '$.model')", "json_extract(params, '$.type')"
    else:
        model, type_ = "params::jsonb ->> 'model'", "params::jsonb ->> 'type'"
    op.execute(f"UPDATE jobs SET model = COALESCE({model}, 'uni-1'), type = COALESCE({type_}, 'image'), "
               f"charged = (attempts > 0 AND NOT (state = 'failed' AND COALESCE(failure_code, '') IN {_REFUNDED}))")


def downgrade() -> None:
    raise NotImplementedError("lumabot's migrations are additive; restore a backup to go back")
