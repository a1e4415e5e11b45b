"""Lazy exports for a package's ``__init__``: a public name is imported on first use.

A command pays only for what it runs: ``from dicomhaven.deid import load_profile`` reads the
profile module, not the engine and, through it, pydicom's dictionaries and the vault. Each
package lists its public names once, by the private module that defines them; type checkers
read the same names from an ``if TYPE_CHECKING:`` block of real imports.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    namespace: MutableMapping[str, Any], exports: Mapping[str, str]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """The module ``__getattr__`` and ``__dir__`` (PEP 562) for the package whose
    ``globals()`` is ``namespace``; ``exports`` maps each public name to the submodule
    (relative to the package) that defines it."""
    package = namespace["__name__"]

    def get(name: str) -> object:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        namespace[name] = value  # the next use is an ordinary attribute
        return value

    def names() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return get, names
