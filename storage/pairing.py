"""The history of pairing codes per company (time, phone, outcome; the code only as a hash)."""

from __future__ import annotations

import hashlib

from wafleet.storage import deliveries
from wafleet.storage.clock import now_ms
from wafleet.storage.database import Database
from wafleet.storage.models import PairingCode


def code_hash(code: str) -> str:
    return hashlib.sha256(code.replace("-", "").upper().encode()).hexdigest()


def record(
    db: Database,
    company_id: str,
    phone: str,
    outcome: str,
    code: str | None = None,
    expires_at: int | None = None,
) -> None:
    """An issued code with its expiry is also queued for the company's notification email, in
    the same transaction: the email is as durable as the record of the code."""
    with db.work(), db.atomic():
        if outcome == "issued" and code and expires_at is not None:
            deliveries.enqueue_pairing_email(company_id, code, expires_at)
        PairingCode.insert(
            company=company_id,
            phone=phone,
            outcome=outcome,
            code_hash=code_hash(code) if code else None,
            at=now_ms(),
        ).execute()


def settle(db: Database, company_id: str, outcome: str) -> None:
    """The latest issued code was used or expired."""
    with db.work():
        latest = (
            PairingCode.select(PairingCode.id)
            .where((PairingCode.company == company_id) & (PairingCode.outcome == "issued"))
            .order_by(PairingCode.id.desc())
            .first()
        )
        if latest is not None:
            PairingCode.update(outcome=outcome).where(PairingCode.id == latest.id).execute()


def history(db: Database, company_id: str, limit: int = 50) -> list[dict]:
    with db.work():
        rows = (
            PairingCode.select()
            .where(PairingCode.company == company_id)
            .order_by(PairingCode.id.desc())
            .limit(limit)
        )
        return [{"phone": r.phone, "outcome": r.outcome, "codeHash": r.code_hash, "at": r.at} for r in rows]
