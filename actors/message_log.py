"""Messages from any link land here: stored once (a WhatsApp id is unique per company), then
announced as a ``message`` event (persisted, streamed to listeners). Used by sessions (sandbox,
web), the webhook inbox (cloud) and the deliverer (what we sent)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from wafleet.actors.journal import Journal
from wafleet.storage import messages
from wafleet.storage.blocklist import Blocklist
from wafleet.storage.clock import now_ms
from wafleet.storage.outbox import OutboxRow


class MessageLog:
    def __init__(
        self,
        journal: Journal,
        on_stored: Callable[[str, dict[str, Any]], None] | None = None,
        blocklist: Blocklist | None = None,
    ) -> None:
        self.journal = journal
        self.db = journal.db
        self.on_stored = on_stored  # told of every new message (the assistant answers customers)
        self.blocklist = blocklist

    def inbound(self, company_id: str, data: dict[str, Any]) -> None:
        """A link reported a customer's message (or one the company sent from its phone)."""
        if data.get("from_me"):
            self._from_phone(company_id, data)
            return
        peer = str(data.get("peer") or "")
        blocked = self._blocked(company_id, peer)
        stored = messages.store_inbound(
            self.db,
            company_id,
            peer,
            str(data.get("type") or "text"),
            data.get("text"),
            data.get("media"),
            data.get("wa_id"),
            int(data.get("at") or now_ms()),
            blocked=blocked,
            announce=True,
        )
        if stored.created and not blocked:
            self._told(
                company_id,
                stored,
                {
                    "id": stored.id,
                    "direction": "in",
                    "peer": data.get("peer"),
                    "type": data.get("type"),
                    "text": data.get("text"),
                    "waId": data.get("wa_id"),
                    "name": data.get("push_name"),
                },
            )

    def _from_phone(self, company_id: str, data: dict[str, Any]) -> None:
        stored = messages.store_from_phone(
            self.db,
            company_id,
            str(data.get("peer") or ""),
            data.get("text"),
            data.get("wa_id"),
            int(data.get("at") or now_ms()),
            announce=True,
        )
        if stored.created:  # not one of our own sends coming back
            self._told(
                company_id,
                stored,
                {
                    "id": stored.id,
                    "direction": "out",
                    "peer": data.get("peer"),
                    "type": "text",
                    "text": data.get("text"),
                    "waId": data.get("wa_id"),
                    "fromPhone": True,
                },
            )

    # whatsmeow's receipt types: "" is delivered; "sender"/"retry"/"inactive" say nothing new.
    RECEIPT_STATUS = {
        "": "delivered",
        "delivered": "delivered",
        "read": "read",
        "read-self": "read",
        "played": "played",
        "played-self": "played",
    }

    def receipt(self, company_id: str, data: dict[str, Any]) -> None:
        """A link (WhatsApp Web) reported that our messages were delivered, read or played."""
        status = self.RECEIPT_STATUS.get(str(data.get("type") or "").lower().replace("_", "-"))
        if status is None:
            return
        at = int(data.get("at") or now_ms())
        if at < 10**12:  # whatsmeow reports seconds
            at *= 1000
        for wa_id in data.get("ids") or []:
            messages.apply_status(self.db, company_id, str(wa_id), status, None, at)

    def sent(self, row: OutboxRow, wa_id: str) -> None:
        stored = messages.store_outbound(
            self.db, row.company_id, row.peer, row.text, wa_id, "sent", announce=True
        )
        if stored.created:  # a retried row whose message is stored already was told already
            self._told(
                row.company_id,
                stored,
                {
                    "id": stored.id,
                    "direction": "out",
                    "peer": row.peer,
                    "type": "text",
                    "text": row.text,
                    "waId": wa_id,
                    "status": "sent",
                },
            )

    def _blocked(self, company_id: str, peer: str) -> bool:
        return self.blocklist is not None and self.blocklist.is_blocked(company_id, peer)

    def _told(self, company_id: str, stored: messages.Stored, message: dict[str, Any]) -> None:
        """After the commit of a message and its event: streamed, counted, handed on."""
        if stored.event is not None:
            self.journal.broadcaster.publish(stored.event)
        self._count(company_id, message)

    def _count(self, company_id: str, message: dict[str, Any]) -> None:
        figures = self.journal.metrics.figures
        if message.get("direction") == "in":
            figures.message_received(company_id)
        elif message.get("direction") == "out":
            figures.message_sent(company_id)
        if self.on_stored is not None:
            self.on_stored(company_id, message)

    def announce(self, company_id: str, stored: dict[str, Any]) -> None:
        """A message stored by someone else (the webhook inbox, after its commit), told to
        listeners (and through them to webhooks and the assistant). One from a number the
        company blocked stays stored, marked, and is told to nobody."""
        if stored.get("direction") == "in" and self._blocked(company_id, str(stored.get("peer") or "")):
            messages.mark_blocked(self.db, int(stored["id"]))
            self.journal.metrics.incr("messages.blocked")
            return
        data = messages.event_data(
            self.db,
            int(stored["id"]),
            str(stored.get("direction")),
            str(stored.get("peer") or ""),
            stored.get("type"),
            stored.get("waId"),
            stored.get("text"),
        )
        self.journal.event(company_id, "message", reason=stored.get("direction"), data=data)
        self._count(company_id, stored)
