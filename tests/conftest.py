"""Shared fixtures: sites in tmp_path, catalogue databases on SQLite and a real PostgreSQL."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from dicomhaven.catalogue import dispose_engines
from dicomhaven.site import Site, init_site
from tests.postgres import PostgresServer, postgres_server
from tests.synth.generated import GeneratedSite, generate

_db_counter = itertools.count()


@pytest.fixture(autouse=True, scope="session")
def _device_gate_off() -> Iterator[None]:
    """Tests not about the release gate release clean copies of any device (the product's
    default holds a new device's copies until it is trusted); tests of the gate turn it on.
    Session-wide, so that module-scoped fixtures importing a site see it too."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DICOMHAVEN_DEVICE_GATE", "false")
        yield


@pytest.fixture(autouse=True)
def _close_database_connections() -> Iterator[None]:
    """Engines made during a test release their pooled connections when it ends."""
    yield
    dispose_engines()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    with postgres_server() as server:
        yield server


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty catalogue database on each backend the product supports."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalogue.db'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.create_database(f"dicomhaven_test_{next(_db_counter)}")


@pytest.fixture
def site(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Site:
    """An initialised site whose catalogue lives on the parametrised backend."""
    monkeypatch.setenv("DICOMHAVEN_DATABASE_URL", database_url)
    return init_site(tmp_path / "site")


@pytest.fixture
def sqlite_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Site:
    """An initialised site on the default SQLite catalogue (for tests that are not about the
    database backend)."""
    monkeypatch.delenv("DICOMHAVEN_DATABASE_URL", raising=False)
    return init_site(tmp_path / "site")


@pytest.fixture(scope="session")
def synth_site(tmp_path_factory: pytest.TempPathFactory) -> GeneratedSite:
    """One small synthetic hospital export, generated once per session and shared read-only."""
    return generate(tmp_path_factory.mktemp("synth-site"))
