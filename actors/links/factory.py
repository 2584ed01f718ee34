"""Builds the link a company's session uses, from the company's ``link`` setting."""

from __future__ import annotations

import random
from collections import deque
from typing import Any

from wafleet.actors.links.base import Emit, Link
from wafleet.actors.links.sandbox import SandboxLink, SandboxTiming


class LinkUnavailable(Exception):
    pass


class LinkFactory:
    def __init__(
        self, *, sandbox: bool, sandbox_timing: SandboxTiming, rng: random.Random | None = None
    ) -> None:
        self.sandbox = sandbox
        self.sandbox_timing = sandbox_timing
        self.rng = rng or random.Random()
        self._sandbox_delivered: dict[str, deque[dict[str, Any]]] = {}

    def sandbox_outbox(self, company_id: str) -> list[dict[str, Any]]:
        """What the sandbox's simulated WhatsApp received from this company (newest last)."""
        return list(self._sandbox_delivered.get(company_id, ()))

    def forget(self, company_id: str) -> None:
        self._sandbox_delivered.pop(company_id, None)

    def available(self) -> list[str]:
        return ["sandbox"] if self.sandbox else []

    def create(self, kind: str, company_id: str, emit: Emit) -> Link:
        if kind == "sandbox" and self.sandbox:
            delivered = self._sandbox_delivered.setdefault(company_id, deque(maxlen=1000))
            return SandboxLink(company_id, emit, self.sandbox_timing, self.rng, delivered)
        raise LinkUnavailable(f"link {kind!r} is not available on this node")
