"""The pseudonym vault's key: re-sealed under a new one, pseudonyms unchanged."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dicomhaven.access import Action
from dicomhaven.services._core import Grant, service

if TYPE_CHECKING:
    from dicomhaven.site import Site

__all__ = ["KeyRotation", "rotate_key"]


@dataclass(frozen=True)
class KeyRotation:
    resealed: int  # values sealed again under the new key
    key_file: Path


@service(Action.ROTATE_VAULT_KEY, target="vault")
def rotate_key(grant: Grant, site: Site) -> KeyRotation:
    """Re-seal every value of the vault under a new key file."""
    from dicomhaven.site import rotate_vault_key

    return KeyRotation(rotate_vault_key(site), site.vault_key_path)
