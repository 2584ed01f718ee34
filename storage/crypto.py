"""Secrets at rest (Cloud API access tokens, app secrets): AES-256-GCM under ``WAFLEET_ENCRYPTION_KEY``.

A token is ``base64(version byte | 12-byte random nonce | ciphertext | 16-byte tag)``. The optional
``aad`` (associated data, e.g. the company id) is authenticated but not stored: a ciphertext copied
to another company's row does not decrypt there.
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
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError(f"{ENV_VAR} must be 32 bytes (base64-encoded); got {len(key)} bytes")
        self._aes = AESGCM(key)

    def __repr__(self) -> str:  # never show the key
        return "Cipher(<AES-256-GCM>)"

    @classmethod
    def from_key(cls, b64_key: str | None) -> Cipher:
        hint = "generate one with: python -c 'from wafleet.storage.crypto import generate_key; print(generate_key())'"
        if not b64_key or not b64_key.strip():
            raise ValueError(f"{ENV_VAR} is not set: it must be a base64-encoded 32-byte key ({hint})")
        try:
            key = base64.b64decode(b64_key.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(
                f"{ENV_VAR} is not valid base64: it must be a base64-encoded 32-byte key ({hint})"
            ) from None
        if len(key) != 32:
            raise ValueError(f"{ENV_VAR} must decode to 32 bytes, not {len(key)} ({hint})")
        return cls(key)

    def encrypt(self, text: str, aad: str | bytes | None = None) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aes.encrypt(nonce, text.encode("utf-8"), _aad(aad))
        return base64.b64encode(bytes([VERSION]) + nonce + sealed).decode("ascii")

    def decrypt(self, token: str, aad: str | bytes | None = None) -> str:
        try:
            raw = base64.b64decode(token, validate=True)
        except (binascii.Error, ValueError, TypeError):
            raise DecryptionError("cannot decrypt: the stored value is not valid base64") from None
        if len(raw) < 1 + NONCE_BYTES + TAG_BYTES:
            raise DecryptionError("cannot decrypt: the stored value is too short")
        if raw[0] != VERSION:
            raise DecryptionError(f"cannot decrypt: unknown format version {raw[0]}")
        nonce, sealed = raw[1 : 1 + NONCE_BYTES], raw[1 + NONCE_BYTES :]
        try:
            plain = self._aes.decrypt(nonce, sealed, _aad(aad))
        except InvalidTag:
            raise DecryptionError(
                f"cannot decrypt: wrong {ENV_VAR}, the value was altered, or it belongs to another record"
            ) from None
        return plain.decode("utf-8")
