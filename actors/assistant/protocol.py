"""Messages to the conversations supervisor (from the message log, the send API and routes)."""

from __future__ import annotations

from dataclasses import dataclass

FOREVER_MS = 253_402_300_799_000  # 9999-12-31: a pause with no end


@dataclass(frozen=True)
class Inbound:
    """A customer's text message, stored once already (the message log)."""

    company_id: str
    peer: str
    text: str
    message_id: int  # Message.id: the messages table is the conversation's durable inbox
    name: str | None = None


@dataclass(frozen=True)
class Pause:
    """Silence the assistant in one chat until ``until_ms`` (None: speak again now).

    ``handoff``: a person wrote to the customer; applies only where the assistant is on."""

    company_id: str
    peer: str
    until_ms: int | None
    handoff: bool = False


@dataclass(frozen=True)
class Active:
    """Which of a company's customers have a conversation actor running now (their phones)."""

    company_id: str
