"""The installation tables lumabot declares (store/schema.py) are the ones slack_sdk's
SQLAlchemy installation and OAuth state stores read and write: same names, columns, types,
nullability and indexes."""

from __future__ import annotations

import sqlalchemy as sa
from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import SQLAlchemyOAuthStateStore

from lumabot.store import schema


SEALED = {"bot_token", "bot_refresh_token", "user_token", "user_refresh_token"}  # TEXT here: encrypted


def _shape(table: sa.Table) -> tuple:
    columns = [(c.name, "token" if c.name in SEALED else repr(c.type), c.nullable, c.primary_key)
               for c in table.columns]
    indexes = sorted((i.name, tuple(c.name for c in i.columns)) for i in table.indexes)
    return table.name, columns, indexes


def test_the_installation_tables_are_slack_sdks():
    theirs = sa.MetaData()
    assert _shape(schema.slack_installations) == _shape(
        SQLAlchemyInstallationStore.build_installations_table(theirs, "slack_installations"))
    assert _shape(schema.slack_bots) == _shape(SQLAlchemyInstallationStore.build_bots_table(theirs, "slack_bots"))
    assert _shape(schema.slack_oauth_states) == _shape(
        SQLAlchemyOAuthStateStore.build_oauth_states_table(theirs, "slack_oauth_states"))
