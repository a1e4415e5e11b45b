"""Access to real peers (Debian tools, shared test data) for the test suite.

A missing peer skips the test on a laptop but fails it in CI (``CI=true``), where the
project's own setup must have installed it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def missing_peer(message: str) -> None:
    """Skip locally, fail in CI: a peer the setup should have installed is absent."""
    if in_ci():
        pytest.fail(f"peer missing in CI: {message}")
    pytest.skip(message)


def require_tool(name: str) -> str:
    """Path of an executable peer such as ``dciodvfy``; skip or fail when absent."""
    path = shutil.which(name)
    if path is None:
        missing_peer(f"{name} not on PATH (run: make sysdeps)")
    assert path is not None
    return path


def shared_data(*parts: str) -> Path:
    """Path inside ``../shared/data``; skip or fail when the shared folder is absent."""
    path = SHARED.joinpath("data", *parts)
    if not path.exists():
        missing_peer(f"shared test data not found: {path}")
    return path


def shared_reference(name: str) -> Path:
    """A standard table in ``../shared/reference``; skip or fail when absent."""
    path = SHARED / "reference" / name
    if not path.exists():
        missing_peer(f"shared reference table not found: {path}")
    return path
