"""Creating, updating and forgetting a company: the database rows, the read model, the journal.

Called by the Fleet (the one actor that owns the directory), which first stops the company's
session where a change needs it.
"""

from __future__ import annotations

from typing import Any

from wafleet.actors.directory import Directory, SessionRecord
from wafleet.actors.errors import AlreadyExists
from wafleet.actors.journal import Journal
from wafleet.actors.messages import CreateCompany
from wafleet.storage import companies, inbox
from wafleet.storage.database import Database
from wafleet.storage.tokens import hash_token, new_token

# The storage layer names the clashing column; users know it by its API field.
_KEY_NAMES = {"id": "id", "cloud_phone_number_id": "cloud.phoneNumberId", "token_hash": "token"}


class CompanyAdmin:
    def __init__(self, db: Database, directory: Directory, journal: Journal) -> None:
        self.db = db
        self.directory = directory
        self.journal = journal

    def create(self, msg: CreateCompany) -> tuple[SessionRecord, str]:
        token = new_token()
        try:
            row = companies.create(
                self.db,
                id=msg.id,
                name=msg.name,
                phone=msg.phone,
                link=msg.link,
                token_hash=hash_token(token),
                cloud=msg.cloud,
            )
        except companies.CompanyExists as exc:
            message = None
            if exc.key == "id" and exc.value != msg.id:
                message = f"company {msg.id!r} clashes with {exc.value!r}: ids are unique regardless of case"
            raise AlreadyExists(_KEY_NAMES.get(exc.key, exc.key), exc.value, message) from None
        record = SessionRecord(
            company_id=row.id,
            name=row.name,
            link=row.link,
            company_phone=row.phone,
            token_hash=row.token_hash,
            cloud_number=row.cloud_phone_number_id,
            created_at=row.created_at,
            since=row.created_at,
        )
        self.directory.add(record)
        self.journal.event(row.id, "company", reason="created", data={"link": row.link})
        self._claim_unrouted(row.id, row.cloud_phone_number_id)
        return record, token

    def update(self, record: SessionRecord, fields: dict[str, Any]) -> SessionRecord:
        company_id = record.company_id
        try:
            companies.update(self.db, company_id, **fields)
        except companies.CompanyExists as exc:
            raise AlreadyExists(_KEY_NAMES.get(exc.key, exc.key), exc.value) from None
        record.name = fields.get("name", record.name)
        record.company_phone = fields.get("phone", record.company_phone)
        record.link = fields.get("link", record.link)
        record.cloud_number = fields.get("cloud_phone_number_id", record.cloud_number)
        self.journal.event(company_id, "company", reason="updated", data={"fields": sorted(fields)})
        self._claim_unrouted(company_id, fields.get("cloud_phone_number_id"))
        return record

    def rotate(self, record: SessionRecord) -> str:
        """A new token for the company; the old one (and every login made with it) is dead."""
        token = new_token()
        companies.rotate_token(self.db, record.company_id, hash_token(token))
        self.directory.rekey(record.company_id, hash_token(token))
        self.journal.event(record.company_id, "company", reason="token_rotated")
        return token

    def delete(self, company_id: str) -> None:
        """Erase the rows and the record (the session is already stopped, its login wiped)."""
        companies.delete(self.db, company_id)
        self.directory.remove(company_id)
        self.journal.event(None, "company", reason="deleted", data={"company": company_id})

    def _claim_unrouted(self, company_id: str, phone_number_id: str | None) -> None:
        """Webhooks Meta sent for this number before any company owned it are processed again."""
        if not phone_number_id:
            return
        count = inbox.requeue_unrouted(self.db, phone_number_id)
        if count:
            self.journal.event(company_id, "company", reason="unrouted_claimed", data={"payloads": count})
