"""Slack installations for OAuth mode (issue #23): the tables slack_sdk's SQLAlchemy
installation and OAuth state stores use (their columns, as slack_sdk 3.x declares them), on
lumabot's own database.

Revision ID: 0004
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_S32, _S200, _S1000 = sa.String(32), sa.String(200), sa.String(1000)


def _bot_columns() -> list[sa.Column[Any]]:
    """What an installation and its bot share, in slack_sdk's order."""
    return [
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("client_id", _S32, nullable=False),
        sa.Column("app_id", _S32, nullable=False),
        sa.Column("enterprise_id", _S32),
        sa.Column("enterprise_name", _S200),
    ]


def _token_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("bot_token", sa.Text()),
        sa.Column("bot_id", _S32),
        sa.Column("bot_user_id", _S32),
        sa.Column("bot_scopes", _S1000),
        sa.Column("bot_refresh_token", sa.Text()),
        sa.Column("bot_token_expires_at", sa.DateTime()),
    ]


def upgrade() -> None:
    op.create_table(
        "slack_installations",
        *_bot_columns(),
        sa.Column("enterprise_url", _S200),
        sa.Column("team_id", _S32),
        sa.Column("team_name", _S200),
        *_token_columns(),
        sa.Column("user_id", _S32, nullable=False),
        sa.Column("user_token", sa.Text()),
        sa.Column("user_scopes", _S1000),
        sa.Column("user_refresh_token", sa.Text()),
        sa.Column("user_token_expires_at", sa.DateTime()),
        sa.Column("incoming_webhook_url", _S200),
        sa.Column("incoming_webhook_channel", _S200),
        sa.Column("incoming_webhook_channel_id", _S200),
        sa.Column("incoming_webhook_configuration_url", _S200),
        sa.Column("is_enterprise_install", sa.Boolean(), nullable=False),
        sa.Column("token_type", _S32),
        sa.Column("installed_at", sa.DateTime(), nullable=False),
    )
    op.create_index("slack_installations_idx", "slack_installations",
                    ["client_id", "enterprise_id", "team_id", "user_id", "installed_at"])
    op.create_table(
        "slack_bots",
        *_bot_columns(),
        sa.Column("team_id", _S32),
        sa.Column("team_name", _S200),
        *_token_columns(),
        sa.Column("is_enterprise_install", sa.Boolean(), nullable=False),
        sa.Column("installed_at", sa.DateTime(), nullable=False),
    )
    op.create_index("slack_bots_idx", "slack_bots", ["client_id", "enterprise_id", "team_id", "installed_at"])
    op.create_table(
        "slack_oauth_states",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("state", _S200, nullable=False),
        sa.Column("expire_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    raise NotImplementedError("lumabot's migrations are additive; restore a backup to go back")
