"""The assistant as the rest of the node sees it: configs, the booking engine, the model, and a
way to reach the conversations supervisor."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import gevent
import gevent.event
import pykka

from wafleet.actors.assistant import config as config_mod
from wafleet.actors.assistant.config import CompanyConfig
from wafleet.actors.assistant.engine import Engine
from wafleet.actors.assistant.protocol import Inbound, Pause
from wafleet.actors.journal import Journal
from wafleet.storage import assistant as store
from wafleet.storage.clock import now_ms
from wafleet.storage.phone_vault import PhoneVault

log = logging.getLogger(__name__)


CONFIG_RECHECK = 1.0  # seconds a parsed config is used before its version is read again


class LiveChild:
    """A Root child's ref, looked up at the Root again as soon as it is no longer alive.

    An ask to the Root on every inbound message and every reply costs two trips through the hub's
    run queue: ~100 ms each under load (measured). A restarted child is a new actor and its old
    ref is dead, so checking ``is_alive()`` before each use never talks to a stale actor."""

    def __init__(self, lookup: Callable[[], pykka.ActorRef[Any] | None]) -> None:
        self.lookup = lookup
        self._ref: pykka.ActorRef[Any] | None = None

    def __call__(self) -> pykka.ActorRef[Any] | None:
        if self._ref is None or not self._ref.is_alive():
            self._ref = self.lookup()
        return self._ref

    def tell(self, message: Any) -> None:
        """Best effort: a child being restarted finds pending work itself when it starts."""
        ref = self()
        if ref is not None:
            try:
                ref.tell(message)
            except pykka.ActorDeadError:
                self._ref = None


class AssistantUnavailable(Exception):
    """The conversations supervisor is restarting: try again shortly."""


@dataclass(frozen=True)
class AssistantSettings:
    batch_window_ms: int = 2000  # WAFLEET_BATCH_WINDOW: a burst of messages is one turn
    handoff_minutes: int = 30  # WAFLEET_HANDOFF_MINUTES: quiet after a human wrote to the chat
    idle_ms: int = 600_000  # WAFLEET_CONVERSATION_IDLE: a conversation's actor ends after this
    complete_every_ms: int = 60_000  # WAFLEET_BOOKING_COMPLETE_EVERY: ended bookings -> completed


class Assistant:
    def __init__(
        self,
        journal: Journal,
        vault: PhoneVault,
        settings: AssistantSettings,
        model: Any | None = None,  # a ModelUnderstander, when OPENAI_API_KEY is set
        wake_deliverer: Callable[[str], None] = lambda company_id: None,
    ) -> None:
        self.journal = journal
        self.db = journal.db
        self.vault = vault
        self.settings = settings
        self.model = model
        self.wake_deliverer = wake_deliverer
        self.engine = Engine(self.db, vault, events=self._event)
        self._configs: dict[str, tuple[CompanyConfig | None, int | None, float]] = {}
        # The current Conversations actor (set by the composition root: a Root lookup).
        self.conversations: Callable[[], pykka.ActorRef[Any] | None] = lambda: None

    def _event(self, company_id: str, kind: str, data: dict[str, Any]) -> None:
        self.journal.event(company_id, kind, data=data)
        self.journal.metrics.incr(f"assistant.{kind}")

    # -- configs ----------------------------------------------------------------------------------
    def config(self, company_id: str) -> CompanyConfig | None:
        """The company's config, parsed once; a PUT made on another node sharing the database is
        noticed within CONFIG_RECHECK seconds (one indexed read of its version)."""
        cached = self._configs.get(company_id)
        now = time.monotonic()
        if cached is not None and now - cached[2] < CONFIG_RECHECK:
            return cached[0]
        version = store.config_version(self.db, company_id)
        if cached is None or cached[1] != version:
            document = store.get_config(self.db, company_id) if version is not None else None
            cfg = config_mod.parse(document, company_id) if document else None
            cached = (cfg, version, now)
        self._configs[company_id] = (cached[0], cached[1], now)
        return cached[0]

    def put_config(self, company_id: str, data: Any) -> CompanyConfig:
        """Validate (ConfigInvalid names the field), store, and use from the next turn on."""
        cfg = config_mod.parse(data, company_id)
        version = store.put_config(self.db, company_id, cfg.document)
        self._configs[company_id] = (cfg, version, time.monotonic())
        return cfg

    def forget(self, company_id: str) -> None:
        self._configs.pop(company_id, None)

    def model_for(self, cfg: CompanyConfig) -> Any | None:
        """The model understander for this company's turns, or None (off: the rules answer)."""
        return self.model if cfg.ai_enabled else None

    # -- conversations ----------------------------------------------------------------------------
    def customer_message(self, company_id: str, stored: dict[str, Any]) -> None:
        """The message log stored a new message: a customer's text goes to their conversation;
        one the company sent from its phone silences the assistant in that chat."""
        if stored.get("direction") == "out" and stored.get("fromPhone") and stored.get("peer"):
            self.handoff(company_id, str(stored["peer"]))  # a person answered from the phone
            return
        text = stored.get("text")
        if stored.get("direction") != "in" or not isinstance(text, str) or not text.strip():
            return
        peer = str(stored.get("peer") or "")
        if peer and isinstance(stored.get("id"), int):
            self.tell(Inbound(company_id, peer, text, stored["id"], stored.get("name")))

    def handoff(self, company_id: str, phone: str) -> None:
        """A person at the company wrote to this customer: quiet for WAFLEET_HANDOFF_MINUTES."""
        until = now_ms() + self.settings.handoff_minutes * 60_000
        self.tell(Pause(company_id, phone, until, handoff=True))

    def tell(self, message: Any) -> None:
        """Best effort (an inbound message is stored already; a restart picks it up)."""
        ref = self.conversations()
        if ref is not None:
            try:
                ref.tell(message)
            except pykka.ActorDeadError:
                pass

    def ask(self, message: Any, timeout: float = 10.0) -> Any:
        ref = self.conversations()
        if ref is None:
            raise AssistantUnavailable("the assistant is restarting")
        try:
            result = ref.ask(message, timeout=timeout)
            while isinstance(result, (pykka.Future, gevent.event.AsyncResult)):
                try:
                    result = result.get(timeout=timeout)
                except gevent.Timeout as exc:
                    raise pykka.Timeout(f"{timeout} seconds") from exc
            return result
        except pykka.ActorDeadError as exc:
            raise AssistantUnavailable("the assistant restarted while answering; try again") from exc


def build_model(env: Mapping[str, str]) -> Any | None:
    """The model understander when OPENAI_API_KEY is set, else None (the rules answer).
    Raises ModelSettingsError naming a bad WAFLEET_AI_* variable. The ``openai`` package is
    imported only when a model is configured: it alone costs ~0.4 s of the node's start, and
    /healthz must answer within a second of it."""
    from wafleet.actors.assistant.model_settings import ModelSettings

    if ModelSettings.from_env(env) is None:
        return None
    from wafleet.actors.assistant.model import model_from_env

    return model_from_env(env)
