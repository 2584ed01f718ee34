"""Refusals that the HTTP layer turns into statuses, raised from inside actors."""

from __future__ import annotations

import math


class RateLimited(Exception):
    """A limit protects the company's number (HTTP 429 with Retry-After)."""

    def __init__(self, retry_after: float, message: str) -> None:
        super().__init__(message)
        self.retry_after = max(1, math.ceil(retry_after))


class Booting(Exception):
    """The node is still loading its companies (HTTP 503 with Retry-After): the company may
    exist and simply not be loaded yet."""
