"""Builds the link a company's session uses, from the company's ``link`` setting."""

from __future__ import annotations

import random

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

    def available(self) -> list[str]:
        return ["sandbox"] if self.sandbox else []

    def create(self, kind: str, company_id: str, emit: Emit) -> Link:
        if kind == "sandbox" and self.sandbox:
            return SandboxLink(company_id, emit, self.sandbox_timing, self.rng)
        raise LinkUnavailable(f"link {kind!r} is not available on this node")
