"""Alembic's environment for lumabot: run programmatically by store/migrate.py on a connection it
opened (inside its transaction, after the lock that lets one replica migrate at a time)."""

from alembic import context

from lumabot.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
