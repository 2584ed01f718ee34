"""Customers' phone numbers at rest: encrypted (AES-256-GCM, storage/crypto.py) and findable by a
keyed hash, so a lookup ("this customer's bookings") never needs to decrypt anything.

The key is ``WAFLEET_ENCRYPTION_KEY``. A node started without it (the demo, a laptop) still never
writes a phone in clear: it uses a key of its own, created once in the data folder with mode 0600.
That key does not leave the machine, so several nodes sharing PostgreSQL must set the variable.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os

from wafleet.storage.crypto import Cipher, generate_key

log = logging.getLogger(__name__)

LOCAL_KEY_FILE = "phone.key"


class PhoneVault:
    def __init__(self, b64_key: str) -> None:
        self._cipher = Cipher.from_key(b64_key)
        # WAFLEET_ENCRYPTION_KEY may list several keys, newest first: the lookup hash comes from
        # the last one (the oldest), so putting a new key in front changes no customer's hash.
        raw = base64.b64decode(b64_key.split(",")[-1].strip())
        # A separate key for the lookup hash: the hash must not be a by-product of the cipher key.
        self._lookup_key = hmac.new(raw, b"wafleet customer phone lookup", hashlib.sha256).digest()

    def __repr__(self) -> str:
        return "PhoneVault(<keys hidden>)"

    def seal(self, company_id: str, phone: str) -> str:
        return self._cipher.encrypt(phone, aad=company_id)

    def open(self, company_id: str, token: str) -> str:
        return self._cipher.decrypt(token, aad=company_id)

    def lookup(self, company_id: str, phone: str) -> str:
        """The same phone gives the same hash within a company, and another one elsewhere."""
        message = f"{company_id}\x00{phone}".encode()
        return hmac.new(self._lookup_key, message, hashlib.sha256).hexdigest()


def vault_for(encryption_key: str | None, data_dir: str) -> PhoneVault:
    """The configured key, or this node's own key file (created on first use)."""
    if encryption_key:
        return PhoneVault(encryption_key)
    path = os.path.join(data_dir, LOCAL_KEY_FILE)
    if not os.path.exists(path):
        os.makedirs(data_dir, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(generate_key())
        log.warning(
            "WAFLEET_ENCRYPTION_KEY is not set: customers' phones are encrypted with a key created in %s "
            "(set the variable when several nodes share the database)",
            path,
        )
    with open(path) as f:
        return PhoneVault(f.read().strip())
