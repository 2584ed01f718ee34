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

TEXT_IN_EVENT = 1000  # the event carries a preview; the message itself is in the messages table


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
        row_id, created = messages.store_inbound(
            self.db,
            company_id,
            str(data.get("peer") or ""),
            str(data.get("type") or "text"),
            data.get("text"),
            data.get("media"),
            data.get("wa_id"),
            int(data.get("at") or now_ms()),
        )
        if created:
            self.announce(
                company_id,
                {
                    "id": row_id,
                    "direction": "in",
                    "peer": data.get("peer"),
                    "type": data.get("type"),
                    "text": data.get("text"),
                    "waId": data.get("wa_id"),
                    "name": data.get("push_name"),
                },
            )

    def _from_phone(self, company_id: str, data: dict[str, Any]) -> None:
        row_id, created = messages.store_from_phone(
            self.db,
            company_id,
            str(data.get("peer") or ""),
            data.get("text"),
            data.get("wa_id"),
            int(data.get("at") or now_ms()),
        )
        if created:  # not one of our own sends coming back
            self.announce(
                company_id,
                {
                    "id": row_id,
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
        row_id = messages.store_outbound(self.db, row.company_id, row.peer, row.text, wa_id, "sent")
        self.announce(
            row.company_id,
            {
                "id": row_id,
                "direction": "out",
                "peer": row.peer,
                "type": "text",
                "text": row.text,
                "waId": wa_id,
                "status": "sent",
            },
        )

    def announce(self, company_id: str, stored: dict[str, Any]) -> None:
        """A new message, told to listeners (and through them to webhooks and the assistant).
        One from a number the company blocked stays stored, marked, and is told to nobody."""
        if (
            stored.get("direction") == "in"
            and self.blocklist is not None
            and self.blocklist.is_blocked(company_id, str(stored.get("peer") or ""))
        ):
            messages.mark_blocked(self.db, int(stored["id"]))
            self.journal.metrics.incr("messages.blocked")
            return
        text = stored.get("text")
        if self.db.text_seal.on:  # texts are sealed at rest: the event (a stored row) carries none
            text = None
        data = {
            "messageId": stored.get("id"),
            "direction": stored.get("direction"),
            "peer": stored.get("peer"),
            "type": stored.get("type"),
            "waId": stored.get("waId"),
            "text": text[:TEXT_IN_EVENT] if isinstance(text, str) else None,
        }
        self.journal.event(company_id, "message", reason=stored.get("direction"), data=data)
        figures = self.journal.metrics.figures
        if stored.get("direction") == "in":
            figures.message_received(company_id)
        elif stored.get("direction") == "out":
            figures.message_sent(company_id)
        if self.on_stored is not None:
            self.on_stored(company_id, stored)
