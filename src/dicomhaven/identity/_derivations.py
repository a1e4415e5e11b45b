"""What a project's secret derives: its pseudonyms, UIDs and per-patient date offsets.

All are keyed HMAC-SHA256 of the master pseudonym (or the original UID) with the project's
own secret, so two projects' extracts cannot be linked, and re-extracting a project gives
the same values. The site's own limited-access copies use the reserved project
:data:`SITE_PROJECT` the same way.

A made UID authenticates itself: ``2.25.`` and the integer of 16 bytes, the first 12 of the
keyed MAC of the original UID and then 4 bytes of a keyed MAC of those 12 under a separate
``uid-check`` label. So whoever holds the project's secret (the residual-PII scanner) can
tell a UID this project made from any other ``2.25.`` UID, such as an original one derived
from a UUID (a chance match is one in 2^32), and the UID still carries no value of the
original.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from dicomhaven.identity._crypto import PSEUDONYM_ALPHABET, PSEUDONYM_LENGTH

__all__ = ["MAX_DATE_SHIFT_DAYS", "SITE_PROJECT", "ProjectKeys"]

#: The reserved project whose secret keys the site's limited-access store.
SITE_PROJECT = "_site"
#: Dates move back by 1 to this many days, a fixed amount per patient (so intervals between
#: one patient's studies are kept, and no shift is zero).
MAX_DATE_SHIFT_DAYS = 730
_HEAD, _CHECK = 12, 4  # a made UID's bytes: MAC of the original, then its check


@dataclass(frozen=True)
class ProjectKeys:
    """A project's derivations; construct from the secret the vault keeps for it."""

    project: str
    secret: bytes

    def _mac(self, purpose: str, value: str) -> bytes:
        return hmac.new(self.secret, f"{purpose}\x00{value}".encode(), hashlib.sha256).digest()

    def pseudonym(self, master_pseudonym: str) -> str:
        """The patient's pseudonym in this project (same alphabet as master pseudonyms)."""
        number = int.from_bytes(self._mac("pseudonym", master_pseudonym), "big")
        letters = []
        for _ in range(PSEUDONYM_LENGTH):
            number, index = divmod(number, len(PSEUDONYM_ALPHABET))
            letters.append(PSEUDONYM_ALPHABET[index])
        return "".join(letters)

    def date_offset_days(self, master_pseudonym: str) -> int:
        """Days to add to every date of this patient: negative, between -MAX and -1."""
        number = int.from_bytes(self._mac("date-offset", master_pseudonym)[:8], "big")
        return -(1 + number % MAX_DATE_SHIFT_DAYS)

    def _uid_check(self, head: bytes) -> bytes:
        return hmac.new(self.secret, b"uid-check\x00" + head, hashlib.sha256).digest()[:_CHECK]

    def uid(self, original_uid: str) -> str:
        """A ``2.25.`` UID for an original UID: the same input always maps to the same UID,
        and :meth:`made_uid` recognises it."""
        head = self._mac("uid", original_uid)[:_HEAD]
        return "2.25." + str(int.from_bytes(head + self._uid_check(head), "big"))

    def made_uid(self, uid: str) -> bool:
        """Whether this project's secret made ``uid`` (see :meth:`uid`)."""
        number = uid[5:] if uid.startswith("2.25.") else ""
        if not number.isdigit() or number != str(int(number)) or len(number) > 39:
            return False
        value = int(number)
        if value >= 1 << (8 * (_HEAD + _CHECK)):
            return False
        raw = value.to_bytes(_HEAD + _CHECK, "big")
        return hmac.compare_digest(raw[_HEAD:], self._uid_check(raw[:_HEAD]))
