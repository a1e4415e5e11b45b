"""Alembic environment: runs migrations on the engine and models dicomhaven hands over."""

from __future__ import annotations

from alembic import context

attributes = context.config.attributes
with attributes["engine"].begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=attributes["metadata"],
        version_table=attributes["version_table"],
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
