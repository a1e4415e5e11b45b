"""The declaration itself: what it refuses to declare, what it holds a body to, and the code
every error gets."""

from __future__ import annotations

import inspect

import pytest

import dicomhaven.errors
from dicomhaven.access import AccessDenied, Action, NotAuthenticated, Role
from dicomhaven.errors import ConfigError, DicomHavenError, DiskFull
from dicomhaven.services import (
    Grant,
    LocalOperator,
    ServiceError,
    User,
    problem,
    registered,
    service,
)
from dicomhaven.services import _errors as errors
from dicomhaven.services import users as user_services
from dicomhaven.site import Site


def test_a_body_must_take_the_grant_and_the_site_first() -> None:
    with pytest.raises(TypeError, match=r"takes \(grant, site, ...\)"):

        @service(Action.READ_LEDGER)  # type: ignore[arg-type]
        def counts(site: Site) -> int:  # pragma: no cover - never declared
            return 0


def test_audited_text_may_only_name_parameters() -> None:
    with pytest.raises(TypeError, match="audited text names"):

        @service(Action.READ_PATIENTS, target="{pseudonym}")
        def summary(grant: Grant, site: Site, patient: str) -> int:  # pragma: no cover
            return 0


def test_a_body_that_acts_without_recording_its_decision_fails(sqlite_site: Site) -> None:
    touched: list[str] = []

    @service(Action.MANAGE_USERS, target="{name}", records_allowed=True)
    def forgetful(grant: Grant, site: Site, name: str) -> None:
        touched.append(name)

    manager = user_services.add_first(LocalOperator(), sqlite_site, "dana", Role.DATA_MANAGER)
    with pytest.raises(RuntimeError, match="without recording its decision"):
        forgetful(User(manager.token), sqlite_site, "eve")
    assert touched == ["eve"]
    assert registered(forgetful) is not None


def test_a_caller_is_a_user_or_the_local_operator(sqlite_site: Site) -> None:
    with pytest.raises(TypeError, match="User or the LocalOperator"):
        user_services.listing("dana.secret", sqlite_site)  # type: ignore[arg-type]


def test_the_signature_shows_the_caller_in_place_of_the_grant() -> None:
    parameters = list(inspect.signature(user_services.add).parameters)
    assert parameters == ["caller", "site", "name", "role"]


def test_a_new_user_s_token_is_not_in_its_repr(sqlite_site: Site) -> None:
    added = user_services.add_first(LocalOperator(), sqlite_site, "dana", Role.DATA_MANAGER)
    assert added.token.split(".", 1)[1] not in repr(added)
    assert added.token not in repr(User(added.token))


def test_every_error_has_a_code_and_service_errors_keep_their_exit_class() -> None:
    core = [getattr(dicomhaven.errors, name) for name in dicomhaven.errors.__all__]
    for kind in core:
        if kind is DicomHavenError:
            continue
        made = kind(["store"], "writing") if kind is DiskFull else kind("a message")
        assert problem(made).code != ServiceError.code, kind
    ours = [getattr(errors, n) for n in errors.__all__ if n not in ("Problem", "problem")]
    codes = [kind.code for kind in ours]
    assert len(set(codes)) == len(codes)
    assert problem(errors.NotFound("no template x")).as_dict() == {
        "error": {"code": "not-found", "message": "no template x"}
    }
    # The command line maps these classes to its exit codes (2: ConfigError, 1: the rest).
    assert issubclass(errors.InvalidRequest, ConfigError)
    assert issubclass(errors.NotFound, ConfigError)
    assert issubclass(errors.Unauthenticated, NotAuthenticated)
    assert issubclass(errors.Forbidden, AccessDenied)
    assert not issubclass(errors.InvalidReason, ConfigError)
