"""The vault's cryptography: sealed identifier values, keyed lookups, and pseudonyms.

From one master key two sub-keys are derived (HKDF-SHA256): one seals values (AES-256-GCM,
a fresh 96-bit nonce per value, the field name as associated data so a value cannot be
moved to another field), one makes lookup tokens (HMAC-SHA256), so the vault can find a
patient by NHS number without storing it in the clear. Pseudonyms are random: they carry
no patient information and cannot be recomputed from an identifier.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from dicomhaven.errors import DicomHavenError

__all__ = [
    "PSEUDONYM_ALPHABET",
    "PSEUDONYM_LENGTH",
    "VaultCipher",
    "VaultKeyError",
    "new_pseudonym",
]

#: Consonants only: a pseudonym holds no digit (so no part of an NHS number or a date) and
#: spells no word. 20**12 ≈ 4·10^15 values.
PSEUDONYM_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
PSEUDONYM_LENGTH = 12
_NONCE = 12


class VaultKeyError(DicomHavenError):
    """The vault key does not open the vault (wrong key, or the vault was altered)."""


def new_pseudonym() -> str:
    """A fresh random pseudonym (cryptographically random; uniqueness is checked by the vault)."""
    return "".join(secrets.choice(PSEUDONYM_ALPHABET) for _ in range(PSEUDONYM_LENGTH))


def _derive(master: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(master)


@dataclass(frozen=True)
class VaultCipher:
    """Seal, open and look up values with keys derived from the vault master key."""

    seal_key: bytes
    lookup_key: bytes

    @classmethod
    def from_master(cls, master: bytes) -> VaultCipher:
        return cls(
            _derive(master, b"dicomhaven vault seal v1"),
            _derive(master, b"dicomhaven vault lookup v1"),
        )

    def seal(self, field: str, value: bytes) -> bytes:
        nonce = secrets.token_bytes(_NONCE)
        return nonce + AESGCM(self.seal_key).encrypt(nonce, value, field.encode())

    def open(self, field: str, sealed: bytes) -> bytes:
        try:
            return AESGCM(self.seal_key).decrypt(sealed[:_NONCE], sealed[_NONCE:], field.encode())
        except InvalidTag:
            raise VaultKeyError(
                "a vault value could not be decrypted: the vault key is wrong, or the vault "
                "was altered"
            ) from None

    def lookup(self, field: str, value: str) -> str:
        """A keyed token for finding ``value`` of ``field`` without storing it."""
        message = field.encode() + b"\x00" + value.encode()
        return hmac.new(self.lookup_key, message, hashlib.sha256).hexdigest()
