"""Alembic's environment: always the connection :func:`server.storage.engine.create_schema`
passes in, inside its transaction (and PostgreSQL advisory lock)."""

from __future__ import annotations

from alembic import context

from server.storage.tables import METADATA

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=METADATA)
with context.begin_transaction():
    context.run_migrations()
