"""How the vocabulary reads text: case- and punctuation-insensitive words.

A value is case folded and cut at every character that is not a letter or a digit, so
``ABD/PELVIS``, ``Abd-Pelvis`` and ``abd_pelvis`` are the same two words and ``L-SPINE``
is ``l spine``. Rules' words and phrases are read the same way, and match whole words.
"""

from __future__ import annotations

import re

__all__ = ["phrase", "words"]

_WORD = re.compile(r"[^\W_]+")


def words(text: str) -> list[str]:
    """The words of ``text``, case folded."""
    return _WORD.findall(text.casefold())


def phrase(text: str) -> str:
    """``text`` as the words it matches: case folded, single spaces, no punctuation."""
    return " ".join(words(text))
