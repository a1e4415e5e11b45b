"""Where secrets come from: the ``KeyProvider`` seam.

The vault's key must live apart from the vault (another folder, volume or the environment),
so that a copy of the vault alone reveals nothing. The default provider reads a key file;
``DICOMHAVEN_VAULT_KEY`` (base64) takes precedence, for sites that inject secrets.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from dicomhaven.errors import ConfigError

__all__ = ["KEY_BYTES", "EnvKeyProvider", "FileKeyProvider", "KeyProvider", "create_key_file"]

KEY_BYTES = 32


class KeyProvider(Protocol):
    """Gives the current 32-byte vault master key."""

    def vault_key(self) -> bytes: ...


@dataclass(frozen=True)
class FileKeyProvider:
    """A key in a file of its own (mode 0600), outside the vault's folder."""

    path: Path

    def vault_key(self) -> bytes:
        try:
            key = self.path.read_bytes()
        except FileNotFoundError:
            raise ConfigError(
                f"vault key file {self.path} not found; set 'vault_key_file' or "
                "DICOMHAVEN_VAULT_KEY, or run 'dicomhaven init' to create one"
            ) from None
        if len(key) != KEY_BYTES:
            raise ConfigError(f"{self.path}: expected a {KEY_BYTES}-byte key, found {len(key)}")
        return key


@dataclass(frozen=True)
class EnvKeyProvider:
    """A key given in base64 by an environment variable."""

    variable: str = "DICOMHAVEN_VAULT_KEY"
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)

    def vault_key(self) -> bytes:
        try:
            key = base64.b64decode(self.environ[self.variable], validate=True)
        except (KeyError, binascii.Error):
            raise ConfigError(f"{self.variable} must hold a base64 {KEY_BYTES}-byte key") from None
        if len(key) != KEY_BYTES:
            raise ConfigError(f"{self.variable}: expected {KEY_BYTES} bytes, found {len(key)}")
        return key


def create_key_file(path: Path, size: int = KEY_BYTES) -> None:
    """Write a new random key, readable by its owner only; never replaces an existing one
    (raises ``FileExistsError``).

    The key is written to a file of its own and then linked into place, so a process that
    reads the key while another creates it sees the whole key or no file, never a part.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.part")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_bytes(size))
            handle.flush()
            os.fsync(handle.fileno())
        os.link(partial, path)
    finally:
        partial.unlink(missing_ok=True)
