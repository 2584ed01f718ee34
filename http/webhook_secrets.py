"""Which app secret signs which webhook URL, and which verify token answers its handshake.

One Meta app, one secret (Meta's own model): the global URL takes the platform's
WHATSAPP_WEBHOOK_SECRET and WHATSAPP_VERIFY_TOKEN only; a company with its own app secret has its
own URL, checked against its own secret and verify token only. So every request costs exactly one
HMAC, whatever the number of companies.

Company secrets are stored encrypted; decrypting them on every request would be wasteful, so the
map of companies with their own app is cached for a few seconds, and a company missing from it
(just created) reloads the map at most once a second.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from wafleet.storage import companies
from wafleet.storage.crypto import Cipher
from wafleet.storage.database import Database

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AppKeys:
    secret: bytes | None
    verify_token: bytes | None


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
        self.platform = AppKeys(
            secret.encode() if secret else None, verify_token.encode() if verify_token else None
        )
        self.ttl = ttl
        self._companies: dict[str, AppKeys] = {}
        self._loaded_at = float("-inf")

    def company(self, company_id: str) -> AppKeys | None:
        """The company's own app keys, or None when it has no app secret of its own."""
        self._load(refresh=False)
        keys = self._companies.get(company_id)
        if keys is None:
            self._load(refresh=True)
            keys = self._companies.get(company_id)
        return keys if keys is not None and keys.secret else None

    def _load(self, refresh: bool) -> None:
        now = time.monotonic()
        if now - self._loaded_at < (1.0 if refresh else self.ttl):
            return
        self._loaded_at = now
        loaded: dict[str, AppKeys] = {}
        if self.cipher is not None:
            for company_id, app_secret, verify_token in companies.webhook_secret_columns(self.db):
                try:
                    loaded[company_id] = AppKeys(
                        self.cipher.decrypt(app_secret, aad=company_id).encode() if app_secret else None,
                        self.cipher.decrypt(verify_token, aad=company_id).encode() if verify_token else None,
                    )
                except ValueError:
                    log.warning(
                        "company %s: its webhook secrets cannot be decrypted (key changed?)", company_id
                    )
        self._companies = loaded
