"""A site: one folder holding the zones, keys, settings and catalogue of a dicomhaven install.

::

    SITE/
      dicomhaven.yaml   settings (see docs/settings.md)
      keys/             secrets, mode 0700; site.key keys object identities (HMAC-SHA256)
      intake/           identifiable originals as received (restricted, mode 0700)
      vault/            the pseudonym lookup (restricted, mode 0700)
      store/            de-identified copies at the limited-access level
      quarantine/       objects held with a reason
      catalogue/        the catalogue database (ledger, metadata, audit) when SQLite
      exports/          per-project packages
      logs/             structured logs; never an identifier
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from dicomhaven.errors import SiteError
from dicomhaven.identity import (
    EnvKeyProvider,
    FileKeyProvider,
    KeyProvider,
    Vault,
    create_key_file,
)
from dicomhaven.intake import IntakeStore
from dicomhaven.settings import SETTINGS_FILE, Settings, load_settings, render_settings_file

__all__ = ["RESTRICTED_ZONES", "ZONES", "Site", "init_site", "open_site", "rotate_vault_key"]

ZONES = ("keys", "intake", "vault", "store", "quarantine", "catalogue", "exports", "logs")
RESTRICTED_ZONES = frozenset({"keys", "intake", "vault"})
SITE_KEY_BYTES = 32
VAULT_KEY_ENV = "DICOMHAVEN_VAULT_KEY"


@dataclass(frozen=True)
class Site:
    """An initialised site folder and its effective settings."""

    root: Path
    settings: Settings

    def zone(self, name: str) -> Path:
        if name not in ZONES:
            raise SiteError(f"unknown zone '{name}'; zones are: {', '.join(ZONES)}")
        return self.root / name

    @property
    def intake(self) -> Path:
        return self.root / "intake"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def database_url(self) -> str:
        if self.settings.database_url:
            return self.settings.database_url
        return f"sqlite:///{self.root / 'catalogue' / 'catalogue.db'}"

    @property
    def vault_url(self) -> str:
        if self.settings.vault_url:
            return self.settings.vault_url
        return f"sqlite:///{self.root / 'vault' / 'vault.db'}"

    @property
    def vault_key_path(self) -> Path:
        if self.settings.vault_key_file:
            return Path(self.settings.vault_key_file)
        return self.root / "keys" / "vault.key"

    def vault_key_provider(self) -> KeyProvider:
        """The environment's key if DICOMHAVEN_VAULT_KEY is set, else the key file."""
        if VAULT_KEY_ENV in os.environ:
            return EnvKeyProvider(VAULT_KEY_ENV)
        key_path = self.vault_key_path.resolve()
        if key_path.is_relative_to((self.root / "vault").resolve()):
            raise SiteError(
                f"the vault key file {key_path} is inside the vault folder: a copy of the vault "
                "would carry its key; set 'vault_key_file' to a path outside it"
            )
        return FileKeyProvider(key_path)

    def open_vault(self) -> Vault:
        """The pseudonym vault; only the identity service should call this."""
        from dicomhaven.catalogue import make_engine

        return Vault.create_or_open(
            make_engine(self.vault_url), self.vault_key_provider().vault_key()
        )

    def site_key(self) -> bytes:
        """The secret that keys object identities; kept in the restricted keys zone."""
        path = self.root / "keys" / "site.key"
        try:
            key = path.read_bytes()
        except FileNotFoundError:
            raise SiteError(
                f"{path} is missing: this folder was not initialised; run 'dicomhaven init {self.root}'"
            ) from None
        if len(key) != SITE_KEY_BYTES:
            raise SiteError(f"{path}: expected a {SITE_KEY_BYTES}-byte key, found {len(key)} bytes")
        return key


def init_site(root: Path) -> Site:
    """Create a site folder: zones, settings file, site key and catalogue schema.

    Running it again on an existing site is safe: it creates only what is missing and never
    replaces a key or a settings file.
    """
    from dicomhaven.catalogue import migrate

    root = root.resolve()
    if root.exists() and not root.is_dir():
        raise SiteError(f"{root} exists and is not a folder")
    root.mkdir(parents=True, exist_ok=True)
    for zone in ZONES:
        path = root / zone
        path.mkdir(exist_ok=True)
        if zone in RESTRICTED_ZONES:
            path.chmod(0o700)
    IntakeStore(root / "intake").prepare()
    settings_path = root / SETTINGS_FILE
    if not settings_path.exists():
        settings_path.write_text(render_settings_file(), encoding="utf-8")
    key_path = root / "keys" / "site.key"
    if not key_path.exists():
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_bytes(SITE_KEY_BYTES))
    site = open_site(root)
    migrate(site.database_url)
    if VAULT_KEY_ENV not in os.environ and not site.vault_key_path.exists():
        create_key_file(site.vault_key_path)
    site.open_vault()
    return site


def rotate_vault_key(site: Site) -> int:
    """Re-seal the vault under a fresh key file, then put the file in place.

    The new key is written beside the old one first (``vault.key.new``), so a crash between
    the database commit and the rename leaves the working key on disk, never lost.
    """
    if VAULT_KEY_ENV in os.environ:
        raise SiteError(
            f"the vault key comes from {VAULT_KEY_ENV}; rotate it in your secret store and "
            "re-seal with a key file instead"
        )
    current = site.vault_key_path
    fresh = current.with_name(current.name + ".new")
    fresh.unlink(missing_ok=True)
    create_key_file(fresh)
    count = site.open_vault().rotate_key(fresh.read_bytes())
    fresh.replace(current)
    return count


def open_site(root: Path) -> Site:
    """Open an initialised site, loading its settings (file, then environment)."""
    root = root.resolve()
    if not (root / SETTINGS_FILE).exists() or not (root / "keys").is_dir():
        raise SiteError(
            f"{root} is not a dicomhaven site; create one with 'dicomhaven init {root}'"
        )
    return Site(root=root, settings=load_settings(root))
