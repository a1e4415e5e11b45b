"""Alembic environment: hands over to dicomhaven's one migration runner."""

from alembic import context

from dicomhaven.catalogue._engine import run_migrations

run_migrations(context)
