"""Secrets at rest (Cloud API access tokens, app secrets): AES-256-GCM under ``WAFLEET_ENCRYPTION_KEY``.

A token is ``base64(version byte | 12-byte random nonce | ciphertext | 16-byte tag)``. The optional
``aad`` (associated data, e.g. the company id) is authenticated but not stored: a ciphertext copied
to another company's row does not decrypt there.

The variable may list several keys, comma-separated, newest first: everything is encrypted with
the newest and decrypted with whichever key made it, so keys can be rotated without downtime
(``wafleet rotate-keys`` re-encrypts what is stored; then the old key can go).
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ENV_VAR = "WAFLEET_ENCRYPTION_KEY"
VERSION = 1
NONCE_BYTES = 12
TAG_BYTES = 16


class DecryptionError(ValueError):
    """The token was tampered with, belongs elsewhere (aad) or was made under another key."""


def generate_key() -> str:
    """A new random 32-byte key, base64: a value for WAFLEET_ENCRYPTION_KEY."""
    return base64.b64encode(os.urandom(32)).decode("ascii")


def _aad(aad: str | bytes | None) -> bytes | None:
    if aad is None:
        return None
    return aad.encode("utf-8") if isinstance(aad, str) else aad


class Cipher:
    """AES-256-GCM with a newest key (encrypts) and older ones (still decrypt)."""

    def __init__(self, key: bytes, *older: bytes) -> None:
        for k in (key, *older):
            if len(k) != 32:
                raise ValueError(f"{ENV_VAR} must be 32 bytes (base64-encoded); got {len(k)} bytes")
        self._keys = [AESGCM(k) for k in (key, *older)]
        self._aes = self._keys[0]

    def __repr__(self) -> str:  # never show the key
        return f"Cipher(<AES-256-GCM, {len(self._keys)} key(s)>)"

    @property
    def key_count(self) -> int:
        return len(self._keys)

    @classmethod
    def from_key(cls, b64_key: str | None) -> Cipher:
        """One base64 key, or several separated by commas, newest first."""
        hint = "generate one with: python -c 'from wafleet.storage.crypto import generate_key; print(generate_key())'"
        if not b64_key or not b64_key.strip():
            raise ValueError(f"{ENV_VAR} is not set: it must be a base64-encoded 32-byte key ({hint})")
        parts = [p.strip() for p in b64_key.split(",")]
        keys: list[bytes] = []
        for position, part in enumerate(parts, start=1):
            which = f" (key {position} of {len(parts)})" if len(parts) > 1 else ""
            if not part:
                raise ValueError(f"{ENV_VAR}{which} is empty: list keys as key1,key2 (newest first)")
            try:
                key = base64.b64decode(part, validate=True)
            except (binascii.Error, ValueError):
                raise ValueError(
                    f"{ENV_VAR}{which} is not valid base64: it must be a base64-encoded 32-byte key ({hint})"
                ) from None
            if len(key) != 32:
                raise ValueError(f"{ENV_VAR}{which} must decode to 32 bytes, not {len(key)} ({hint})")
            if key in keys:
                raise ValueError(f"{ENV_VAR}{which} is listed twice")
            keys.append(key)
        return cls(*keys)

    def encrypt(self, text: str, aad: str | bytes | None = None) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aes.encrypt(nonce, text.encode("utf-8"), _aad(aad))
        return base64.b64encode(bytes([VERSION]) + nonce + sealed).decode("ascii")

    def decrypt(self, token: str, aad: str | bytes | None = None) -> str:
        return self.decrypt_with_index(token, aad)[0]

    def decrypt_with_index(self, token: str, aad: str | bytes | None = None) -> tuple[str, int]:
        """The plaintext and which key opened it (0: the newest)."""
        try:
            raw = base64.b64decode(token, validate=True)
        except (binascii.Error, ValueError, TypeError):
            raise DecryptionError("cannot decrypt: the stored value is not valid base64") from None
        if len(raw) < 1 + NONCE_BYTES + TAG_BYTES:
            raise DecryptionError("cannot decrypt: the stored value is too short")
        if raw[0] != VERSION:
            raise DecryptionError(f"cannot decrypt: unknown format version {raw[0]}")
        nonce, sealed = raw[1 : 1 + NONCE_BYTES], raw[1 + NONCE_BYTES :]
        for index, aes in enumerate(self._keys):
            try:
                return aes.decrypt(nonce, sealed, _aad(aad)).decode("utf-8"), index
            except InvalidTag:
                continue
        raise DecryptionError(
            f"cannot decrypt: wrong {ENV_VAR}, the value was altered, or it belongs to another record"
        )


SEALED_PREFIX = "wafleet:sealed:1:"  # marks a sealed message text; plain ones are from before


class TextSeal:
    """Message texts at rest (WHATSAPP_ENCRYPT_MESSAGES), bound to their company.

    Texts stored before the switch stay readable as they are; sealed ones carry
    :data:`SEALED_PREFIX`, so both can live in one column until ``wafleet rotate-keys`` seals the
    rest. A sealed text whose key is gone reads as None, never as ciphertext.
    """

    def __init__(self, cipher: Cipher | None, on: bool) -> None:
        if on and cipher is None:
            raise ValueError("sealing message texts needs an encryption key")
        self.cipher = cipher
        self.on = on

    def seal(self, company_id: str, text: str | None) -> str | None:
        if not self.on or text is None or self.cipher is None:
            return text
        return SEALED_PREFIX + self.cipher.encrypt(text, aad=company_id)

    def open(self, company_id: str, stored: str | None) -> str | None:
        if stored is None or not stored.startswith(SEALED_PREFIX):
            return stored
        if self.cipher is None:
            return None
        try:
            return self.cipher.decrypt(stored[len(SEALED_PREFIX) :], aad=company_id)
        except DecryptionError:
            return None


PLAIN = TextSeal(None, False)  # no key: texts stored as they are
