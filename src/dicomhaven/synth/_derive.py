"""Seed-derived randomness and UIDs, so every value depends only on the seed and its role.

Each patient, study and file draws from its own stream named after its place in the site
(``seed/patient/3/study/2``), so adding a patient never changes the ones before it and the
order in which files are built does not matter.
"""

from __future__ import annotations

import hashlib
import random
import uuid

import numpy as np
from pydicom.uid import UID

__all__ = ["derived_rng", "derived_uid", "numpy_rng", "stream_name"]

# A fixed namespace for name-based (version 5) UUIDs: the UIDs are 2.25.<uuid as integer>,
# valid under ISO/IEC 9834-8 without an organisation root.
_NAMESPACE = uuid.UUID("7d0f3c1e-5a55-4c5e-9b1d-6f7a1d1c0a5e")


def stream_name(seed: int, *parts: object) -> str:
    """The name of one random stream, e.g. ``dicomhaven.synth/7/patient/3``."""
    return "/".join(["dicomhaven.synth", str(seed), *(str(p) for p in parts)])


def derived_rng(seed: int, *parts: object) -> random.Random:
    """A Python RNG for one role; str seeds are hashed with SHA-512, stable across runs."""
    return random.Random(stream_name(seed, *parts))


def numpy_rng(seed: int, *parts: object) -> np.random.Generator:
    """A numpy RNG for one role (pixel noise)."""
    digest = hashlib.sha256(stream_name(seed, *parts).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "big"))


def derived_uid(seed: int, *parts: object) -> UID:
    """A deterministic ``2.25.`` UID for one role.

    ``pydicom.uid.generate_uid(prefix=None)`` ignores ``entropy_srcs`` and calls uuid4, so
    the UUID is made here from the role's name instead.
    """
    return UID(f"2.25.{uuid.uuid5(_NAMESPACE, stream_name(seed, *parts)).int}")
