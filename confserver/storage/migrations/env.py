"""Alembic environment: runs on the connection Switchboard hands it."""

from __future__ import annotations

from alembic import context

from confserver.storage.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("Switchboard runs migrations through confserver.storage.database")
context.configure(connection=connection, target_metadata=Base.metadata,
                  render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
