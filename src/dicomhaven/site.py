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

Every folder of a site is mode 0700 and every file 0600 (owner only): the zones hold
identifiable originals, held copies that failed a check, face renders and the keys, and
even the pseudonymised store is for the site's own staff. Folders are made 0700 here and
the command line runs with umask 077, so whatever writes a file makes it owner-only;
``init`` puts an existing site's modes right and ``dicomhaven ledger --deep`` reports any
group or other bit.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from dicomhaven._modes import FILE_MODE, FOLDER_MODE, SITE_UMASK
from dicomhaven.errors import SiteError
from dicomhaven.identity import (
    SITE_PROJECT,
    EnvKeyProvider,
    FileKeyProvider,
    KeyProvider,
    Vault,
    create_key_file,
)
from dicomhaven.intake import IntakeStore
from dicomhaven.settings import SETTINGS_FILE, Settings, load_settings, render_settings_file

__all__ = [
    "FILE_MODE",
    "FOLDER_MODE",
    "RESTRICTED_ZONES",
    "SITE_UMASK",
    "ZONES",
    "Site",
    "init_site",
    "open_site",
    "permission_problems",
    "rotate_vault_key",
    "secure_site",
]

ZONES = ("keys", "intake", "vault", "store", "quarantine", "catalogue", "exports", "logs")
RESTRICTED_ZONES = frozenset({"keys", "intake", "vault"})
SITE_KEY_BYTES = 32
VAULT_KEY_ENV = "DICOMHAVEN_VAULT_KEY"
_OTHERS = 0o077  # group and other bits: none may be set anywhere in a site
_MAX_MODE_PROBLEMS = 20


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

    Running it again on an existing site is safe: it creates only what is missing, never
    replaces a key or a settings file, and makes every folder and file owner-only again.
    The site's own project secret is made here, so the workers of a first import find it.
    """
    from dicomhaven.catalogue import migrate

    root = root.resolve()
    if root.exists() and not root.is_dir():
        raise SiteError(f"{root} exists and is not a folder")
    root.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    for zone in ZONES:
        (root / zone).mkdir(mode=FOLDER_MODE, exist_ok=True)
    IntakeStore(root / "intake").prepare()
    settings_path = root / SETTINGS_FILE
    if not settings_path.exists():
        fd = os.open(settings_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(render_settings_file())
    key_path = root / "keys" / "site.key"
    if not key_path.exists():
        # FileExistsError: another 'init' of the folder made it a moment ago: keep that one.
        with contextlib.suppress(FileExistsError):
            create_key_file(key_path, SITE_KEY_BYTES)
    site = open_site(root)
    migrate(site.database_url)
    if VAULT_KEY_ENV not in os.environ and not site.vault_key_path.exists():
        with contextlib.suppress(FileExistsError):
            create_key_file(site.vault_key_path)
    # What every worker of the first import needs is made now, not by the workers at once.
    site.open_vault().project_secret(SITE_PROJECT)
    secure_site(site)
    return site


def _site_paths(site: Site) -> Iterator[tuple[Path, os.stat_result]]:
    """Every folder and file of the site (links are not followed), and the vault key."""
    for folder, subfolders, files in os.walk(site.root):
        here = Path(folder)
        for name in [".", *subfolders, *files]:
            path = here if name == "." else here / name
            try:
                info = path.lstat()
            except OSError:
                continue  # gone since the walk listed it
            yield path, info
    key = site.vault_key_path
    if VAULT_KEY_ENV not in os.environ and not key.is_relative_to(site.root):
        try:
            info = key.lstat()
        except OSError:
            return  # a missing key is reported where it is read, not here
        yield key, info


def _open_to_others(info: os.stat_result) -> bool:
    """A folder or regular file with any group or other bit (links have no mode of their own)."""
    is_entry = stat.S_ISDIR(info.st_mode) or stat.S_ISREG(info.st_mode)
    return is_entry and bool(stat.S_IMODE(info.st_mode) & _OTHERS)


def secure_site(site: Site) -> int:
    """Make every folder of the site 0700 and take every group and other bit off its files
    (an older site, or files copied in); returns how many were changed."""
    changed = 0
    for path, info in _site_paths(site):
        if _open_to_others(info):
            mode = FOLDER_MODE if stat.S_ISDIR(info.st_mode) else stat.S_IMODE(info.st_mode)
            path.chmod(mode & 0o700)
            changed += 1
    return changed


def permission_problems(site: Site) -> list[str]:
    """Each folder or file of the site that group or others may use (names in a site are
    keyed hashes and pseudonyms, never identifiers)."""
    found = [
        f"{path.relative_to(site.root) if path.is_relative_to(site.root) else path} is mode "
        f"{stat.S_IMODE(info.st_mode):04o}: group and others must have no access"
        for path, info in _site_paths(site)
        if _open_to_others(info)
    ]
    if len(found) > _MAX_MODE_PROBLEMS:
        more = len(found) - _MAX_MODE_PROBLEMS
        found = [*found[:_MAX_MODE_PROBLEMS], f"… and {more} more with group or other access"]
    if found:
        found.append(f"run 'dicomhaven init {site.root}' to make the site owner-only again")
    return found


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
