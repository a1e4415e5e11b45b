"""Profile layers: what one modality or one device needs on top of the site's profile.

A layers file lists profile files (each without ``extends``) and the objects they apply to::

    layers:
      - profile: ultrasound.yaml          # a modality layer: it matches on modality alone
        match: {modality: US}
      - profile: logiq-e9.yaml            # a device layer: it names the device
        match: {manufacturer: GE Healthcare, model: LOGIQ E9}

For each object the profile is composed in a fixed order, whatever the file's order: the
base profile, then every matching modality layer, then every matching device layer (a
project's layer will go last). Within a kind, layers apply in the file's order. Matching
is on Modality, Manufacturer, Manufacturer's Model Name and Software Versions, exact but
for case and surrounding spaces. The composed profile's name lists its layers and its hash
covers them all, so the hash written into each output says exactly which rules made it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from pydicom.dataset import Dataset

from dicomhaven._yaml import read_yaml
from dicomhaven.deid._profile import Profile, load_layer
from dicomhaven.errors import ConfigError

__all__ = ["Layer", "ProfileLayers", "load_layers"]

#: Match keys of a layers file, and the attribute each is compared with.
MATCH_KEYS = {
    "modality": "Modality",
    "manufacturer": "Manufacturer",
    "model": "ManufacturerModelName",
    "software": "SoftwareVersions",
}
_ORDER = ("modality", "device")  # after the base; a project's layer will follow


def _normal(value: object) -> str:
    if isinstance(value, list | tuple):
        value = "\\".join(str(v) for v in value)
    return str(value).strip().casefold()


@dataclass(frozen=True)
class Layer:
    """One profile file and the objects it applies to."""

    profile: Path
    match: tuple[tuple[str, str], ...]  # (match key, normalised value)

    @property
    def kind(self) -> str:
        return "modality" if all(key == "modality" for key, _ in self.match) else "device"

    def matches(self, values: dict[str, str]) -> bool:
        return all(values.get(key) == value for key, value in self.match)


@dataclass(frozen=True)
class ProfileLayers:
    """The site's profile and its layers: the profile for any one object."""

    base: Profile
    layers: tuple[Layer, ...] = ()

    def for_header(self, header: Dataset) -> Profile:
        if not self.layers:
            return self.base
        values = tuple(_normal(header.get(keyword, "")) for keyword in MATCH_KEYS.values())
        return _composed(self, values)


@functools.lru_cache(maxsize=256)
def _composed(layers: ProfileLayers, values: tuple[str, ...]) -> Profile:
    found = dict(zip(MATCH_KEYS, values, strict=True))
    profile = layers.base
    for kind in _ORDER:
        for layer in layers.layers:
            if layer.kind == kind and layer.matches(found):
                profile = load_layer(layer.profile, profile)
    if profile is layers.base:
        return profile
    names = "+".join(p.rsplit(".", 1)[0] for p in profile.chain[len(layers.base.chain) :])
    return Profile(
        name=f"{layers.base.name}+{names}",
        level=profile.level,
        options=profile.options,
        keep=profile.keep,
        remove=profile.remove,
        chain=profile.chain,
        safe_private=profile.safe_private,
        band_ages=profile.band_ages,
    )


def load_layers(path: Path, base: Profile) -> ProfileLayers:
    """Read and check a layers file; each layer is loaded once on ``base`` to find its
    errors now, with file and line, rather than on the first object it matches."""
    data, lines = read_yaml(path, "layers file")
    data = data or {}
    if (
        not isinstance(data, dict)
        or set(data) != {"layers"}
        or not isinstance(data["layers"], list)
    ):
        raise ConfigError(f"{path}: a layers file is a mapping with one key, 'layers', a list")
    layers = []
    for number, entry in enumerate(data["layers"]):
        where = f"{path}:{lines.get(f'layers[{number}]', 1)}"
        if not isinstance(entry, dict) or set(entry) != {"profile", "match"}:
            raise ConfigError(f"{where}: each layer has 'profile' (a file) and 'match'")
        match = entry["match"]
        if not isinstance(match, dict) or not match:
            raise ConfigError(f"{where}: 'match' names at least one of {', '.join(MATCH_KEYS)}")
        unknown = sorted(set(match) - set(MATCH_KEYS))
        if unknown:
            raise ConfigError(
                f"{where}: unknown match key '{unknown[0]}'; keys are: {', '.join(MATCH_KEYS)}"
            )
        profile = Path(str(entry["profile"]))
        if not profile.is_absolute():
            profile = path.parent / profile
        load_layer(profile, base)  # its own errors name its own file and line
        pairs = tuple(sorted((str(k), _normal(v)) for k, v in match.items()))
        layers.append(Layer(profile.resolve(), pairs))
    return ProfileLayers(base, tuple(layers))
