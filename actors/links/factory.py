"""Builds the link a company's session uses, from the company's ``link`` setting."""

from __future__ import annotations

import importlib.util
import random
from collections import deque
from collections.abc import Callable
from typing import Any

import pykka

from wafleet.actors.links.base import Emit, Link
from wafleet.actors.links.cloud import CloudConfig, CloudLink
from wafleet.actors.links.sandbox import SandboxLink, SandboxTiming
from wafleet.actors.links.web import WebLink


class LinkUnavailable(Exception):
    """``transient``: try again with backoff (link hosts restarting); else the link is off here."""

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class LinkFactory:
    def __init__(
        self,
        *,
        sandbox: bool,
        sandbox_timing: SandboxTiming,
        rng: random.Random | None = None,
        web_store_dir: str | None = None,
        cloud: Callable[[str], CloudConfig | None] | None = None,
    ) -> None:
        self.sandbox = sandbox
        self.sandbox_timing = sandbox_timing
        self.rng = rng or random.Random()
        self._sandbox_delivered: dict[str, deque[dict[str, Any]]] = {}
        self._sandbox_silent: dict[str, int] = {}  # the zombie fault: starts left that stay silent
        # WhatsApp Web: on when a store folder is given and neonize is installed (extra "web").
        self.web_store_dir = web_store_dir if web_store_dir and importlib.util.find_spec("neonize") else None
        # The current LinkHostPool, looked up at the Root when a web session starts: a restarted
        # pool is a new actor, so its ref is never kept here.
        self.web_pool: Callable[[], pykka.ActorRef[Any] | None] = lambda: None
        # Cloud API: the company's config (token decrypted) when credentials can be stored here.
        self.cloud = cloud

    def sandbox_outbox(self, company_id: str) -> list[dict[str, Any]]:
        """What the sandbox's simulated WhatsApp received from this company (newest last)."""
        return list(self._sandbox_delivered.get(company_id, ()))

    def silence_starts(self, company_id: str, starts: int) -> None:
        """The sandbox's zombie fault outlives the link: the next ``starts`` starts stay silent."""
        if starts > 0:
            self._sandbox_silent[company_id] = starts
        else:
            self._sandbox_silent.pop(company_id, None)

    def forget(self, company_id: str) -> None:
        self._sandbox_delivered.pop(company_id, None)
        self._sandbox_silent.pop(company_id, None)

    def available(self) -> list[str]:
        kinds = ["sandbox"] if self.sandbox else []
        if self.web_store_dir:
            kinds.append("web")
        if self.cloud is not None:
            kinds.append("cloud")
        return kinds

    def create(self, kind: str, company_id: str, emit: Emit) -> Link:
        if kind == "sandbox" and self.sandbox:
            delivered = self._sandbox_delivered.setdefault(company_id, deque(maxlen=1000))
            silent = self._sandbox_silent.get(company_id, 0) > 0
            if silent:
                self.silence_starts(company_id, self._sandbox_silent[company_id] - 1)
            return SandboxLink(company_id, emit, self.sandbox_timing, self.rng, delivered, silent)
        if kind == "web" and self.web_store_dir:
            pool = self.web_pool()
            if pool is None:
                raise LinkUnavailable("the link hosts are restarting", transient=True)
            return WebLink(company_id, emit, pool, self.web_store_dir)
        if kind == "cloud" and self.cloud is not None:
            config = self.cloud(company_id)
            if config is None:
                raise LinkUnavailable("no Cloud API credentials: PATCH the company with cloud.accessToken")
            return CloudLink(company_id, emit, config)
        raise LinkUnavailable(f"link {kind!r} is not available on this node")
