"""De-identification profiles as data: YAML files, composed, validated, hashed.

A profile names the options of the Basic Application Level Confidentiality Profile it
applies and its output level. Profiles compose through ``extends`` (base → modality →
device → project): options and the ``keep``/``remove`` lists accumulate, the last level
wins. A profile may add private attributes it knows to be safe (``safe_private``, written
the way TCIA's knowledge base writes them, ``(0019,"GEMS_ACQU_01",23)``) to the standard's
list that the Retain Safe Private Option keeps. Unknown keys, options, attribute keywords
and malformed private tags are refused with file and line. ``band_ages: 5`` keeps Patient's
Age in five-year bands (90 and over as one band) where the table would remove it. The
SHA-256 of the composed profile is written into every output, so each file says exactly
which rules made it.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydicom.datadict import tag_for_keyword

from dicomhaven._yaml import read_yaml
from dicomhaven.deid._table import Option, options_conflict
from dicomhaven.errors import ConfigError

__all__ = ["BUILTIN_PROFILES", "Level", "PrivateTag", "Profile", "load_layer", "load_profile"]

BUILTIN_PROFILES = Path(__file__).with_name("profiles")
_KEYS = {"name", "extends", "level", "options", "keep", "remove", "safe_private", "band_ages"}
_PRIVATE_TAG = re.compile(r'\(([0-9A-Fa-f]{4}),"([^"\\]+)",([0-9A-Fa-f]{2})\)')

#: A private data element by (private creator, odd group, element byte).
PrivateTag = tuple[str, int, int]


class Level(StrEnum):
    """The two output levels of UK guidance."""

    LIMITED_ACCESS = "limited-access"  # pseudonymised, for controlled access
    PUBLICATION = "publication"  # no direct or indirect identifiers


@dataclass(frozen=True)
class Profile:
    """A composed, validated profile."""

    name: str
    level: Level
    options: frozenset[Option]
    keep: frozenset[str]  # keywords kept whatever the table says (each must be justified)
    remove: frozenset[str]  # keywords removed whatever the table says
    chain: tuple[str, ...]  # the files composed, base first
    safe_private: frozenset[PrivateTag] = frozenset()  # known safe besides the standard's
    band_ages: int = 0  # keep Patient's Age in bands of this many years (0: as the table says)

    def canonical(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "level": self.level.value,
            "options": sorted(o.value for o in self.options),
            "keep": sorted(self.keep),
            "remove": sorted(self.remove),
            "safe_private": [_private_text(t) for t in sorted(self.safe_private)],
            "band_ages": self.band_ages,
        }

    @property
    def sha256(self) -> str:
        body = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(body.encode()).hexdigest()


def _find(reference: str, relative_to: Path | None) -> Path:
    if reference.endswith((".yaml", ".yml")):
        path = Path(reference)
        if not path.is_absolute() and relative_to is not None:
            path = relative_to.parent / path
        return path
    return BUILTIN_PROFILES / f"{reference}.yaml"


def _read(path: Path) -> tuple[dict[str, Any], dict[str, int]]:
    data, lines = read_yaml(path, "profile")
    data = data or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a profile is a mapping of {', '.join(sorted(_KEYS))}")
    return data, lines


def _keywords(values: Any, path: Path, line: int, key: str) -> frozenset[str]:
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ConfigError(f"{path}:{line}: '{key}' must be a list of attribute keywords")
    for value in values:
        if tag_for_keyword(value) is None:
            raise ConfigError(f"{path}:{line}: '{value}' in '{key}' is not a DICOM keyword")
    return frozenset(values)


def _private_text(tag: PrivateTag) -> str:
    creator, group, element = tag
    return f'({group:04X},"{creator}",{element:02X})'


def _private_tags(values: Any, path: Path, line: int) -> frozenset[PrivateTag]:
    form = '(gggg,"CREATOR",ee), e.g. (0019,"GEMS_ACQU_01",23)'
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ConfigError(f"{path}:{line}: 'safe_private' must be a list of {form}")
    tags = set()
    for value in values:
        match = _PRIVATE_TAG.fullmatch(value.strip())
        if match is None:
            raise ConfigError(f"{path}:{line}: '{value}' in 'safe_private' is not {form}")
        group = int(match.group(1), 16)
        if group % 2 == 0 or group < 0x0009:
            raise ConfigError(f"{path}:{line}: '{value}' in 'safe_private' is not a private group")
        tags.add((match.group(2), group, int(match.group(3), 16)))
    return frozenset(tags)


def load_profile(reference: str | Path, _seen: tuple[Path, ...] = ()) -> Profile:
    """Load a profile by built-in name (``publication``) or file path, with its ancestors."""
    path = _find(str(reference), _seen[-1] if _seen else None).resolve()
    if path in _seen:
        raise ConfigError(f"{path}: 'extends' makes a loop")
    data, lines = _read(path)
    parent = load_profile(data["extends"], (*_seen, path)) if "extends" in data else None
    return _compose(path, data, lines, parent)


def load_layer(path: Path, parent: Profile) -> Profile:
    """``parent`` with one more layer on top (a modality's, a device's, a project's): a
    profile file without ``extends``, since the layers file says where it goes."""
    path = path.resolve()
    data, lines = _read(path)
    if "extends" in data:
        raise ConfigError(
            f"{path}:{lines['extends']}: a layer does not extend: the layers file places it"
        )
    return _compose(path, data, lines, parent)


def _compose(
    path: Path, data: dict[str, Any], lines: dict[str, int], parent: Profile | None
) -> Profile:
    """The profile ``data`` (read from ``path``) says, on top of ``parent``: options
    accumulate; a keyword kept or removed here overrides the parent's word on it."""
    for key in data:
        if key not in _KEYS:
            raise ConfigError(
                f"{path}:{lines.get(key, 1)}: unknown key '{key}'; keys are: {', '.join(sorted(_KEYS))}"
            )
    try:
        level = Level(data.get("level", parent.level.value if parent else "publication"))
    except ValueError:
        raise ConfigError(
            f"{path}:{lines.get('level', 1)}: level must be limited-access or publication"
        ) from None
    raw_options = data.get("options", [])
    if not isinstance(raw_options, list):
        raise ConfigError(f"{path}:{lines.get('options', 1)}: 'options' must be a list")
    options = set(parent.options) if parent else set()
    for value in raw_options:
        try:
            options.add(Option(value))
        except ValueError:
            known = ", ".join(o.value for o in Option)
            raise ConfigError(
                f"{path}:{lines.get('options', 1)}: unknown option '{value}'; options are: {known}"
            ) from None
    conflict = options_conflict(options)
    if conflict:
        raise ConfigError(f"{path}:{lines.get('options', 1)}: {conflict}")
    keep = _keywords(data.get("keep", []), path, lines.get("keep", 1), "keep")
    remove = _keywords(data.get("remove", []), path, lines.get("remove", 1), "remove")
    if keep & remove:
        raise ConfigError(f"{path}: {', '.join(sorted(keep & remove))} both kept and removed")
    safe_private = _private_tags(data.get("safe_private", []), path, lines.get("safe_private", 1))
    band_ages = data.get("band_ages", parent.band_ages if parent else 0)
    if not isinstance(band_ages, int) or isinstance(band_ages, bool) or not 0 <= band_ages <= 30:
        raise ConfigError(
            f"{path}:{lines.get('band_ages', 1)}: 'band_ages' must be a whole number of years "
            "from 1 to 30, or 0 for no banding"
        )
    name = data.get("name", path.stem)
    return Profile(
        name=str(name),
        level=level,
        options=frozenset(options),
        keep=((parent.keep - remove) if parent else frozenset()) | keep,
        remove=((parent.remove - keep) if parent else frozenset()) | remove,
        chain=((*parent.chain,) if parent else ()) + (path.name,),
        safe_private=(parent.safe_private if parent else frozenset()) | safe_private,
        band_ages=band_ages,
    )
