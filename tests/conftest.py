"""Shared fixtures: sites in tmp_path, catalogue databases on SQLite and a real PostgreSQL."""

from __future__ import annotations

import itertools
import os
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from dicomhaven.catalogue import dispose_engines
from dicomhaven.site import Site, init_site
from dicomhaven.synth import FileKind
from tests.postgres import PostgresServer, postgres_server
from tests.synth.generated import GeneratedSite, generate, subset

_db_counter = itertools.count()
_ULTRASOUND = frozenset({FileKind.US, FileKind.US_CINE})
#: Modules whose tests run for minutes: under pytest-xdist they start first, so the other
#: worker runs the rest of the suite meanwhile instead of waiting for them at the end.
_LONGEST_FIRST = ("tests/test_demo.py", "tests/test_mixed_site.py")


@pytest.hookimpl(wrapper=True)  # reorders before the other hooks (and xdist) see the items
def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> Generator[None, None, None]:
    """In a pytest-xdist worker (``make test`` runs ``-n 2 --dist loadfile``: a module's
    tests share a worker, so its module-scoped fixtures are made once), the longest modules
    come first. A run without xdist keeps pytest's order.

    ``--dist loadgroup`` would let the modules that import the synthetic site share one
    worker's OCR cache, but pytest-xdist 3.8 cannot rename pytest 9's node ids, so its
    ``xdist_group`` marks are ignored; each worker reads the site's images once instead."""
    if "PYTEST_XDIST_WORKER" in os.environ:
        items.sort(key=lambda item: item.nodeid.split("::", 1)[0] not in _LONGEST_FIRST)
    return (yield)


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


@pytest.fixture(scope="session")
def synth_patients(
    synth_site: GeneratedSite, tmp_path_factory: pytest.TempPathFactory
) -> GeneratedSite:
    """Every file of the synthetic patients who had no ultrasound: several patients, each with
    studies on several devices, for identity tests, without the ultrasound clips whose every
    frame the pixel stage reads when the whole site is imported."""
    scanned = {f.patient for f in synth_site.key.files if f.kind in _ULTRASOUND}
    chosen = {p.index for p in synth_site.key.patients} - scanned
    if len(chosen) < 3:  # the identity tests need patients to tell apart
        raise AssertionError(f"want 3 patients without ultrasound, the site has {len(chosen)}")
    root = tmp_path_factory.mktemp("synth-patients")
    return subset(synth_site, root, lambda f: f.patient in chosen)


@pytest.fixture(scope="session")
def synth_kinds(
    synth_site: GeneratedSite, tmp_path_factory: pytest.TempPathFactory
) -> GeneratedSite:
    """The first file of each kind of the synthetic site (mammogram, CT slice, ultrasound,
    cine clip, dose screen, structured report), for tests about what each kind gets."""
    first: dict[FileKind, str] = {}
    for record in synth_site.key.files:
        first.setdefault(record.kind, record.path)
    if set(first) != set(FileKind):
        raise AssertionError(f"the synthetic site lacks {sorted(set(FileKind) - set(first))}")
    paths = set(first.values())
    return subset(synth_site, tmp_path_factory.mktemp("synth-kinds"), lambda f: f.path in paths)
