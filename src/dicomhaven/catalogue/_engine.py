"""Connecting to the catalogue database and bringing its schema up to date (Alembic).

Every open of the vault (and ``init``) asks for the newest schema. Alembic takes ~0.1 s to
import and more to read its scripts, so :func:`migrate` first compares the revision stored
in the version table (one SELECT) with the head named by the migration files' own
``revision`` / ``down_revision`` lines, and loads Alembic only when they differ or cannot
be read plainly (a new database, a branch, a file it cannot parse).
"""

from __future__ import annotations

import functools
import re
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, MetaData, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from dicomhaven.catalogue._models import Base
from dicomhaven.errors import ConfigError

if TYPE_CHECKING:  # alembic is imported only by the functions that migrate (0.5 s at start)
    from alembic.config import Config

__all__ = [
    "CATALOGUE",
    "Schema",
    "current_revision",
    "dispose_engines",
    "head_revision",
    "make_engine",
    "make_sessionmaker",
    "migrate",
]

MIGRATIONS = Path(__file__).with_name("migrations")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


_ENGINES: weakref.WeakSet[Engine] = weakref.WeakSet()


def dispose_engines() -> None:
    """Close the pooled connections of every engine made here (at exit, or after a test)."""
    for engine in list(_ENGINES):
        engine.dispose()


def make_engine(url: str) -> Engine:
    """An engine for a catalogue URL; SQLite gets WAL and foreign keys switched on."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(
            "setting 'database_url' is not a database URL; expected e.g. "
            "sqlite:///path/catalogue.db or postgresql+psycopg://user@host/dbname"
        ) from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed)
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(parsed, pool_pre_ping=True)
    _ENGINES.add(engine)
    return engine


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@dataclass(frozen=True)
class Schema:
    """A database schema managed by Alembic: its migrations, models and version table."""

    migrations: Path
    metadata: MetaData
    version_table: str = "alembic_version"


CATALOGUE = Schema(MIGRATIONS, Base.metadata)


def _alembic_config(engine: Engine, schema: Schema) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(schema.migrations))
    config.attributes["engine"] = engine
    config.attributes["metadata"] = schema.metadata
    config.attributes["version_table"] = schema.version_table
    return config


def run_migrations(context: Any) -> None:
    """Body of every ``env.py``: migrate the engine and models that :func:`migrate` handed over
    (``context`` is ``alembic.context``)."""
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


def migrate(url_or_engine: str | Engine, schema: Schema = CATALOGUE) -> None:
    """Bring a schema to its newest revision (a no-op when it is already there: then only
    the version table is read, and Alembic is not loaded)."""
    engine = make_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
    head = scripted_head(schema.migrations)
    if head is not None and _stored_revisions(engine, schema) == (head,):
        return
    from alembic import command

    command.upgrade(_alembic_config(engine, schema), "head")


_REVISION = re.compile(r"^revision(?:\s*:[^=\n]*)?\s*=\s*(.+)$", re.MULTILINE)
_DOWN_REVISION = re.compile(r"^down_revision(?:\s*:[^=\n]*)?\s*=\s*(.+)$", re.MULTILINE)
_QUOTED = re.compile(r"[\"']([^\"']+)[\"']")


@functools.cache
def scripted_head(migrations: Path) -> str | None:
    """The one head revision of a migrations folder, read from its scripts' ``revision``
    and ``down_revision`` lines as plain text; None when that reading is not certain (a
    script without one plain ``revision``, several heads, branch labels or dependencies):
    the caller then asks Alembic."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in (migrations / "versions").glob("*.py"):
        source = script.read_text(encoding="utf-8")
        found = _REVISION.findall(source)
        down = _DOWN_REVISION.findall(source)
        if len(found) != 1 or len(down) != 1 or _declares(source, "branch_labels", "depends_on"):
            return None
        named = _QUOTED.findall(found[0])
        if len(named) != 1:
            return None
        revisions.add(named[0])
        parents.update(_QUOTED.findall(down[0]))
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 and parents <= revisions else None


def _declares(source: str, *names: str) -> bool:
    """Whether a script gives any of ``names`` a value other than None."""
    for name in names:
        for value in re.findall(rf"^{name}(?:\s*:[^=\n]*)?\s*=\s*(.+)$", source, re.MULTILINE):
            if value.strip() != "None":
                return True
    return False


def _stored_revisions(engine: Engine, schema: Schema) -> tuple[str, ...] | None:
    """The revisions in the schema's version table (one SELECT), or None when there is no
    such table yet."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", schema.version_table):
        return None  # not a plain name: let Alembic quote it
    try:
        with engine.connect() as connection:
            rows = connection.execute(text(f"SELECT version_num FROM {schema.version_table}"))
            return tuple(sorted(row[0] for row in rows))
    except DBAPIError:
        return None  # a new database: Alembic creates the table


def head_revision(schema: Schema = CATALOGUE) -> str | None:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_alembic_config(create_engine("sqlite://"), schema))
    return script.get_current_head()


def current_revision(engine: Engine, schema: Schema = CATALOGUE) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"version_table": schema.version_table}
        )
        return context.get_current_revision()
