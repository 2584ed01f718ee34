"""Which secrets may sign a webhook, and which verify tokens answer Meta's handshake.

The global ones (WHATSAPP_WEBHOOK_SECRET, WHATSAPP_VERIFY_TOKEN) and each company's own, which
are stored encrypted. Decrypting every company's secret on every request would be wasteful, so
they are cached for a few seconds, and a signature that matches nothing refreshes the cache once
(a company whose secret was just changed is not refused for long).
"""

from __future__ import annotations

import logging
import time

from wafleet.storage import companies
from wafleet.storage.crypto import Cipher
from wafleet.storage.database import Database

log = logging.getLogger(__name__)


class WebhookSecrets:
    def __init__(
        self,
        db: Database,
        cipher: Cipher | None,
        secret: str | None,
        verify_token: str | None,
        ttl: float = 10.0,
    ) -> None:
        self.db = db
        self.cipher = cipher
        self.global_secret = secret
        self.global_verify = verify_token
        self.ttl = ttl
        self._secrets: list[bytes] = []
        self._verify: list[bytes] = []
        self._loaded_at = float("-inf")

    def configured(self) -> bool:
        return bool(self.global_secret) or bool(self.secrets())

    def secrets(self, refresh: bool = False) -> list[bytes]:
        self._load(refresh)
        return self._secrets

    def verify_tokens(self) -> list[bytes]:
        self._load(False)
        return self._verify

    def _load(self, refresh: bool) -> None:
        now = time.monotonic()
        if now - self._loaded_at < (1.0 if refresh else self.ttl):
            return
        self._loaded_at = now
        secrets = [self.global_secret.encode()] if self.global_secret else []
        verify = [self.global_verify.encode()] if self.global_verify else []
        if self.cipher is not None:
            for company_id, app_secret, verify_token in companies.webhook_secret_columns(self.db):
                try:
                    if app_secret:
                        secrets.append(self.cipher.decrypt(app_secret, aad=company_id).encode())
                    if verify_token:
                        verify.append(self.cipher.decrypt(verify_token, aad=company_id).encode())
                except ValueError:
                    log.warning(
                        "company %s: its webhook secrets cannot be decrypted (key changed?)", company_id
                    )
        self._secrets = list(dict.fromkeys(secrets))
        self._verify = list(dict.fromkeys(verify))
