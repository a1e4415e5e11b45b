"""Every service function decides who may call it before its body runs (issue 13, item 1).

The walk finds every public function of every module of ``dicomhaven.services`` and fails
on one that was not declared with an action. The matrix then calls each declared function
as every kind of caller (the local operator, no token, a bad token, each role): a caller
the table refuses is refused and audited without the body touching the site (a sentinel
site that allows only the catalogue's address, which the decision itself needs, and a
catalogue whose tables other than the audit log stay as they were); a caller the table
allows is let through (the body may still refuse the example's arguments on their merits).
"""

from __future__ import annotations

import importlib
import inspect
import itertools
import os
import pkgutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from sqlalchemy import MetaData, func, select

import dicomhaven.services
from dicomhaven.access import PERMISSIONS, Operator, Role
from dicomhaven.catalogue import AuditEntry, ConsentStatus, make_engine, make_sessionmaker
from dicomhaven.errors import DicomHavenError
from dicomhaven.identity import PatientIdentifier, Scheme
from dicomhaven.pixels import DeviceKey, TemplateStore
from dicomhaven.scan._devices import DeviceIdentity, DeviceRegistry, DeviceSelection
from dicomhaven.scan._review import Decision
from dicomhaven.services import (
    Caller,
    Forbidden,
    LocalOperator,
    Unauthenticated,
    User,
    registered,
    services,
)
from dicomhaven.services import users as user_services
from dicomhaven.site import Site

NHS = "9990000018"  # synthetic, valid check digit


def public_functions(package: ModuleType) -> Iterator[tuple[str, Callable[..., Any]]]:
    """Every public function defined by a public module of ``package``."""
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for name, value in inspect.getmembers(module, inspect.isfunction):
            if not name.startswith("_") and value.__module__ == module.__name__:
                yield f"{module.__name__}.{name}", value


def undeclared(package: ModuleType) -> list[str]:
    return [name for name, function in public_functions(package) if registered(function) is None]


def declared() -> dict[str, Callable[..., Any]]:
    """The product's service functions, by name."""
    return {n: f for n, f in public_functions(dicomhaven.services) if registered(f) is not None}


def test_every_public_service_function_is_declared_with_an_action() -> None:
    walked = dict(public_functions(dicomhaven.services))
    assert undeclared(dicomhaven.services) == []
    # The walk saw every registered service (a walk over nothing would pass nothing).
    product = {s.name for s in services().values() if s.name.startswith("dicomhaven.")}
    assert product and product <= set(walked)


def test_the_walk_fails_on_an_undeclared_function(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "scratch_services"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "leaky.py").write_text(
        "from dicomhaven.access import Action\n"
        "from dicomhaven.services import service\n\n"
        "@service(Action.READ_LEDGER)\n"
        "def counted(grant, site):\n    return 1\n\n"
        "def ledger_without_a_decision(site):\n    return 2\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert undeclared(importlib.import_module("scratch_services")) == [
            "scratch_services.leaky.ledger_without_a_decision"
        ]
    finally:
        for name in [m for m in sys.modules if m.startswith("scratch_services")]:
            del sys.modules[name]


# -- the matrix: every service as every caller -------------------------------------------------


@dataclass
class World:
    """A site with one user of each role and something for each service to act on."""

    site: Site
    tokens: dict[Role, str]
    pseudonym: str
    device: str
    template: str
    optout: Path
    clinical: Path
    names: Iterator[int]

    def fresh_name(self) -> str:
        return f"user{next(self.names)}"

    def someone(self) -> str:
        """A new user, for a caller to revoke."""
        manager = User(self.tokens[Role.DATA_MANAGER])
        return user_services.add(manager, self.site, self.fresh_name(), Role.RESEARCHER).name


@pytest.fixture
def world(sqlite_site: Site, tmp_path: Path) -> World:
    site = sqlite_site
    manager = user_services.add_first(LocalOperator(), site, "dana", Role.DATA_MANAGER).token
    tokens = {Role.DATA_MANAGER: manager}
    for role in Role:
        if role is not Role.DATA_MANAGER:
            tokens[role] = user_services.add(User(manager), site, role.value[:5], role).token
    pseudonym = site.open_vault().resolve([PatientIdentifier(Scheme.NHS, NHS)])
    identity = DeviceIdentity("Northwind", "Aurora 64", "SN-1", "ZZSTATION", "VX12")
    device = DeviceRegistry(make_engine(site.database_url)).register(identity, site.site_key())
    key = DeviceKey("Sonaris", "Vista U7", "7.0", rows=480, columns=640)
    TemplateStore(site.root / "templates").propose(key, [[(10, 10, 120, 24)]])
    optout = tmp_path / "optout.txt"
    optout.write_text(f"{NHS}\n")
    clinical = tmp_path / "clinical.csv"
    clinical.write_text(f"nhs_number,outcome\n{NHS},treated\n")
    return World(site, tokens, pseudonym, device.id, key.id, optout, clinical, itertools.count())


#: Arguments for each service (after caller and site). A new service without an entry here
#: fails ``test_every_service_has_an_example``: its decisions must be tested like the rest.
EXAMPLES: dict[str, Callable[[World], dict[str, Any]]] = {
    "users.add_first": lambda w: {"name": w.fresh_name(), "role": Role.DATA_MANAGER},
    "users.add": lambda w: {"name": w.fresh_name(), "role": Role.RESEARCHER},
    "users.listing": lambda w: {},
    "users.revoke": lambda w: {"name": w.someone()},
    "reidentify.reidentify": lambda w: {"pseudonym": w.pseudonym, "reason": "checking a link"},
    "audit.verify": lambda w: {},
    "audit.show": lambda w: {"limit": 5},
    "consent.record": lambda w: {"patient": w.pseudonym, "status": ConsentStatus.WITHDRAWN},
    "consent.import_optout": lambda w: {"file": w.optout},
    "consent.purge": lambda w: {"pseudonym": w.pseudonym},
    "consent.status_counts": lambda w: {},
    "vault.rotate_key": lambda w: {},
    "templates.listing": lambda w: {},
    "templates.approve": lambda w: {"device_id": w.template},
    "templates.revoke": lambda w: {"device_id": w.template, "reason": "text moved"},
    "clinical.import_csv": lambda w: {"file": w.clinical},
    "patients.summary": lambda w: {"pseudonym": w.pseudonym},
    "patients.pseudonyms": lambda w: {},
    "devices.listing": lambda w: {},
    "devices.show": lambda w: {"device_id": w.device},
    "devices.trust": lambda w: {"selection": DeviceSelection(device=w.device), "reason": "ok"},
    "devices.revoke": lambda w: {"selection": DeviceSelection(device=w.device), "reason": "no"},
    "review.groups": lambda w: {},
    "review.decide": lambda w: {
        "group_id": "g-0000000000",
        "decision": Decision.ALLOW,
        "reason": "a false alarm",
    },
    "ledger.check": lambda w: {"deep": True},
    "catalogue.rebuild_catalogue": lambda w: {},
    "directory.publish": lambda w: {},
    "directory.browse": lambda w: {"dimension": "modality"},
}
PREFIX = "dicomhaven.services."


def test_every_service_has_an_example() -> None:
    assert {name.removeprefix(PREFIX) for name in declared()} == set(EXAMPLES)


class SentinelSite:
    """A site whose only usable attribute is its catalogue's address: a decision reads the
    users and writes the audit log there, and nothing else may be touched before it."""

    def __init__(self, site: Site) -> None:
        self._url = site.database_url
        self.touched: list[str] = []

    @property
    def database_url(self) -> str:
        return self._url

    def __getattr__(self, name: str) -> Any:
        self.touched.append(name)
        raise AssertionError(f"the site's '{name}' was used before the decision")


def callers(world: World) -> Iterator[tuple[str, Caller, Role | Operator | None]]:
    """Every kind of caller, with who the table knows them as (None: nobody)."""
    yield "local operator", LocalOperator(), Operator.LOCAL
    yield "no token", User(None), None
    yield "bad token", User("dana.not-the-secret"), None
    for role, token in world.tokens.items():
        yield role.value, User(token), role


_TABLES: dict[str, MetaData] = {}  # reflected once per database (each test has its own)


def rows_outside_the_audit_log(site: Site) -> dict[str, int]:
    """Rows of every table of the catalogue (but the audit log's) and of the vault."""
    counts: dict[str, int] = {}
    for url in (site.database_url, site.vault_url):
        engine = make_engine(url)
        if url not in _TABLES:
            _TABLES[url] = MetaData()
            _TABLES[url].reflect(engine)
        tables = _TABLES[url]
        with engine.connect() as connection:
            counts |= {
                f"{url} {name}": connection.execute(
                    select(func.count()).select_from(t)
                ).scalar_one()
                for name, t in tables.tables.items()
                if name != "audit_log"
            }
    return counts


def audit_entries(site: Site) -> list[AuditEntry]:
    with make_sessionmaker(make_engine(site.database_url))() as session:
        return list(session.scalars(select(AuditEntry).order_by(AuditEntry.id)))


def files_of(site: Site) -> dict[str, bytes]:
    """Every file of the site but its databases (counted by row) and logs, with content."""
    return {
        str(p): p.read_bytes()
        for p in site.root.rglob("*")
        if p.is_file() and p.parent.name not in ("catalogue", "logs") and ".db" not in p.name
    }


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_each_caller_is_decided_by_the_table_before_the_body_runs(name: str, world: World) -> None:
    function = declared()[PREFIX + name]
    spec = registered(function)
    assert spec is not None
    allowed_by_table = PERMISSIONS[spec.action]
    for label, caller, known_as in callers(world):
        arguments = EXAMPLES[name](world)
        if known_as is None or known_as not in allowed_by_table:
            sentinel = SentinelSite(world.site)
            rows, files = rows_outside_the_audit_log(world.site), files_of(world.site)
            before = len(audit_entries(world.site))
            with pytest.raises((Unauthenticated, Forbidden)):
                function(caller, sentinel, **arguments)
            assert sentinel.touched == [], (name, label)
            assert rows_outside_the_audit_log(world.site) == rows, (name, label)
            assert files_of(world.site) == files, (name, label)
            [entry] = audit_entries(world.site)[before:]  # the refusal, audited once
            assert (entry.action, entry.outcome) == (spec.action.value, "refused"), label
            expected_actor = known_as.value if isinstance(known_as, Role) else None
            assert entry.role == (expected_actor or ""), label
            continue
        before = len(audit_entries(world.site))
        try:
            function(caller, world.site, **arguments)
        except (Unauthenticated, Forbidden) as exc:  # pragma: no cover - the failure
            pytest.fail(f"{name}: {label} is allowed by the table but was refused: {exc}")
        except DicomHavenError:
            pass  # allowed, then refused on the example's merits (a group that does not exist)
        decisions = [e for e in audit_entries(world.site)[before:] if e.action == spec.action]
        if isinstance(known_as, Role) and not spec.records_allowed:
            assert [(e.outcome, e.role) for e in decisions] == [("allowed", known_as.value)]
        if known_as is Operator.LOCAL:
            assert decisions == []  # the owner of the files: its reads are not audited


def test_the_local_operator_is_the_account_that_owns_the_site(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dicomhaven.services import ledger

    assert ledger.check(LocalOperator(), world.site).consistent
    owner = os.geteuid()
    monkeypatch.setattr(os, "geteuid", lambda: owner + 1)
    with pytest.raises(Unauthenticated, match="owns the site's files"):
        ledger.check(LocalOperator(), world.site)
