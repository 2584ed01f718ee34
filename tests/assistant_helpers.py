"""Shared set-up for the assistant's tests: a salon whose assistant is configured, on a real node
or in process."""

from __future__ import annotations

import copy
import datetime as dt
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import gevent
import pykka

from tests.harness import Node, wait_for
from wafleet.actors.assistant.conversations import Conversations
from wafleet.actors.assistant.service import Assistant, AssistantSettings
from wafleet.actors.journal import Journal
from wafleet.actors.message_log import MessageLog
from wafleet.actors.messages import Shutdown
from wafleet.actors.metrics import Metrics
from wafleet.storage.database import Database
from wafleet.storage.phone_vault import vault_for
from wafleet.storage.schema import migrate

TZ = ZoneInfo("Europe/Lisbon")
EVERY_DAY = {
    day: {"open": "09:00", "close": "19:00"} for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
}

SALON: dict[str, Any] = {
    "enabled": True,
    "languages": ["ru", "pt", "en"],
    "timezone": "Europe/Lisbon",
    "businessName": "Salon Rosa",
    "services": [
        {
            "id": "haircut",
            "name": "Стрижка",
            "aliases": ["haircut", "corte", "corte de cabelo"],
            "durationMin": 60,
        },
        {"id": "manicure", "name": "Manicure", "aliases": ["маникюр", "unhas"], "durationMin": 45},
    ],
    "resources": [{"id": "anna", "name": "Anna", "services": ["haircut", "manicure"]}],
    "hours": dict(EVERY_DAY, closed=[]),
    "slotStepMin": 15,
    "horizonDays": 60,
    "faq": [{"question": "Where are you? Где вы? Onde fica?", "answer": "Rua Augusta 100, Lisboa."}],
    "ai": {"enabled": True, "model": None},
}


def salon(**changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(SALON)
    doc.update(changes)
    return doc


def tomorrow() -> dt.date:
    return dt.datetime.now(TZ).date() + dt.timedelta(days=1)


def at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), TZ)


def setup_salon(node: Node, company_id: str = "salon", config: dict[str, Any] | None = None) -> str:
    """Create the company, connect its sandbox session, configure its assistant; its token."""
    token = node.create_company(company_id)
    node.connect(company_id)
    r = node.client.put(
        f"/api/assistant/{company_id}/config",
        json=config or salon(),
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 200, r.text
    return token


class Chat:
    """One customer writing to a company through the sandbox, reading the replies it gets."""

    def __init__(self, node: Node, company_id: str, phone: str) -> None:
        self.node, self.company_id, self.phone = node, company_id, phone

    def replies(self) -> list[str]:
        r = self.node.client.get(f"/api/sandbox/{self.company_id}/outbox", headers=self.node.admin())
        assert r.status_code == 200, r.text
        return [m["text"] for m in r.json()["messages"] if m["to"] == self.phone]

    def send(self, text: str) -> None:
        r = self.node.post(f"/api/sandbox/{self.company_id}/inbound", {"from": self.phone, "text": text})
        assert r.status_code == 202, r.text

    def say(self, text: str, timeout: float = 10.0) -> str:
        """Send one message and wait for the one reply it gets."""
        before = len(self.replies())
        self.send(text)
        replies = wait_for(
            lambda: r if len(r := self.replies()) > before else None, timeout, what=f"a reply to {text!r}"
        )
        assert len(replies) == before + 1, replies[before:]
        return replies[-1]


@dataclass
class InProcess:
    """A company's assistant without a node: SQLite, the message log, the conversations supervisor."""

    db: Database
    supervisor: pykka.ActorRef[Any]
    log: MessageLog


@contextmanager
def assistant_in_process(tmp_path: Path, company_id: str = "rosa") -> Iterator[InProcess]:
    db = Database(f"sqlite:///{tmp_path}/a.db")
    migrate(db)
    journal = Journal(db, Metrics(None))
    assistant = Assistant(journal, vault_for(None, str(tmp_path)), AssistantSettings(batch_window_ms=0))
    assistant.put_config(company_id, salon())
    supervisor = Conversations.start(assistant)
    assistant.conversations = lambda: supervisor
    try:
        yield InProcess(db, supervisor, MessageLog(journal, on_stored=assistant.customer_message))
    finally:
        supervisor.ask(Shutdown(), timeout=10)
        db.close()


def wait_in_hub(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    """wait_for for in-process actors: sleeps in gevent, so they run (the test process is not
    monkey-patched)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        gevent.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what or predicate}")
