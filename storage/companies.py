"""Companies and their session rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import peewee

from wafleet.storage import endpoints, inbox, page_sessions
from wafleet.storage.clock import now_ms
from wafleet.storage.database import Database
from wafleet.storage.models import (
    AssistantConfig,
    AssistantTurn,
    BlockedNumber,
    Booking,
    Company,
    Conversation,
    Event,
    Message,
    Outbox,
    PairingCode,
    PendingStatus,
    Session,
)


class CompanyExists(Exception):
    """A unique key clashed: ``key`` is the column, ``value`` the value that was taken."""

    def __init__(self, key: str, value: str) -> None:
        super().__init__(f"{key} {value!r} is taken")
        self.key = key
        self.value = value


def _clash(fields: dict[str, Any], company_id: str | None = None) -> CompanyExists:
    """Which unique key ``fields`` would clash on (checked after the database refused them)."""
    for key in ("id", "cloud_phone_number_id", "token_hash"):
        value = fields.get(key)
        if value is None:
            continue
        if key == "id":  # unique regardless of case
            row = Company.select(Company.id).where(peewee.fn.LOWER(Company.id) == str(value).lower()).first()
            if row is not None and row.id != company_id:
                return CompanyExists("id", row.id)
            continue
        column = getattr(Company, key)
        query = Company.select(Company.id).where(column == value)
        if company_id is not None:
            query = query.where(Company.id != company_id)
        if query.exists():
            return CompanyExists(key, str(value))
    return CompanyExists("id", str(fields.get("id") or company_id))


@dataclass
class CompanyRow:
    id: str
    name: str
    phone: str | None
    link: str
    token_hash: str
    created_at: int
    updated_at: int
    cloud_phone_number_id: str | None = None


@dataclass
class SessionRow:
    company_id: str
    desired_state: str
    status: str
    phone: str | None
    restarts: int
    last_error: dict[str, Any] | None
    since: int
    blocked_until: int | None = None


def _company(row: Company) -> CompanyRow:
    return CompanyRow(
        id=row.id,
        name=row.name,
        phone=row.phone,
        link=row.link,
        token_hash=row.token_hash,
        created_at=row.created_at,
        updated_at=row.updated_at,
        cloud_phone_number_id=row.cloud_phone_number_id,
    )


def _session(row: Session) -> SessionRow:
    last_error = None
    if row.last_error_reason:
        last_error = {
            "reason": row.last_error_reason,
            "message": row.last_error_message or "",
            "at": row.last_error_at,
        }
    return SessionRow(
        company_id=row.company_id,
        desired_state=row.desired_state,
        status=row.status,
        phone=row.phone,
        restarts=row.restarts,
        last_error=last_error,
        since=row.since,
        blocked_until=row.blocked_until,
    )


def create(
    db: Database,
    *,
    id: str,
    name: str,
    phone: str | None,
    link: str,
    token_hash: str,
    cloud: dict[str, Any] | None = None,
) -> CompanyRow:
    """``cloud``: cloud_* columns, secrets already encrypted (storage/crypto.py). Ids are unique
    regardless of case: a clash on the id carries the id that is already there."""
    now = now_ms()
    values = dict(
        id=id, name=name, phone=phone, link=link, token_hash=token_hash, created_at=now, updated_at=now
    )
    values.update(cloud or {})
    with db.work():
        existing = same_id(db, id)
        if existing is not None:
            raise CompanyExists("id", existing)
        try:
            with db.atomic():
                row = Company.create(**values)
                Session.create(
                    company=id, desired_state="stopped", status="stopped", since=now, updated_at=now
                )
        except peewee.IntegrityError:  # created meanwhile: which unique key was it?
            raise _clash(values) from None
    return _company(row)


def same_id(db: Database, company_id: str) -> str | None:
    """The id of the company whose id equals ``company_id`` ignoring case, if there is one."""
    with db.work():
        row = Company.select(Company.id).where(peewee.fn.LOWER(Company.id) == company_id.lower()).first()
    return row.id if row else None


def cloud_columns(db: Database, company_id: str) -> dict[str, Any] | None:
    """The company's Cloud API columns as stored (secrets encrypted), or None without a number."""
    with db.work():
        row = Company.get_or_none(Company.id == company_id)
    if row is None or not row.cloud_phone_number_id:
        return None
    return {
        "phone_number_id": row.cloud_phone_number_id,
        "token": row.cloud_token,
        "app_secret": row.cloud_app_secret,
        "verify_token": row.cloud_verify_token,
    }


def webhook_secret_columns(db: Database) -> list[tuple[str, str | None, str | None]]:
    """(company id, encrypted app secret, encrypted verify token) of companies that have one."""
    with db.work():
        query = Company.select(Company.id, Company.cloud_app_secret, Company.cloud_verify_token).where(
            Company.cloud_app_secret.is_null(False) | Company.cloud_verify_token.is_null(False)
        )
        return [(r.id, r.cloud_app_secret, r.cloud_verify_token) for r in query]


def number_owner(db: Database, phone_number_id: str) -> str | None:
    with db.work():
        row = Company.get_or_none(Company.cloud_phone_number_id == phone_number_id)
    return row.id if row else None


def update(db: Database, company_id: str, **fields: Any) -> CompanyRow | None:
    fields["updated_at"] = now_ms()
    with db.work():
        try:
            with db.atomic():
                Company.update(**fields).where(Company.id == company_id).execute()
        except peewee.IntegrityError:
            raise _clash(fields, company_id) from None
        row = Company.get_or_none(Company.id == company_id)
    return _company(row) if row else None


def delete(db: Database, company_id: str) -> None:
    """Erase everything the company had: events, messages, outbox, pairing history, webhooks and
    their deliveries, assistant config, bookings, conversations, raw webhook payloads (and statuses
    waiting for a message), the row."""
    with db.work(), db.atomic():
        inbox.erase_company(db, company_id)
        endpoints.delete_company(company_id)
        for model, column in (
            (AssistantConfig, AssistantConfig.company),
            (AssistantTurn, AssistantTurn.company),
            (Booking, Booking.company),
            (Conversation, Conversation.company),
            (Event, Event.company),
            (Message, Message.company),
            (PendingStatus, PendingStatus.company),
            (Outbox, Outbox.company),
            (PairingCode, PairingCode.company),
            (BlockedNumber, BlockedNumber.company),
        ):
            model.delete().where(column == company_id).execute()
        page_sessions.revoke_company(db, company_id)
        Session.delete().where(Session.company == company_id).execute()
        Company.delete().where(Company.id == company_id).execute()


def rotate_token(db: Database, company_id: str, token_hash: str) -> None:
    """The company's token changes; every page login made with the old one ends with it."""
    with db.work(), db.atomic():
        Company.update(token_hash=token_hash, updated_at=now_ms()).where(Company.id == company_id).execute()
        page_sessions.revoke_company(db, company_id)


def load_all(db: Database) -> list[tuple[CompanyRow, SessionRow]]:
    return load_page(db, None, None)


def load_page(db: Database, after: str | None, limit: int | None) -> list[tuple[CompanyRow, SessionRow]]:
    """Companies with their session rows in id order, ``limit`` of them after id ``after``: a
    boot reads 100,000 companies in pages, yielding between them (rows as tuples: building
    peewee models would cost more than the query)."""
    company_columns = [
        Company.id,
        Company.name,
        Company.phone,
        Company.link,
        Company.token_hash,
        Company.created_at,
        Company.updated_at,
        Company.cloud_phone_number_id,
    ]
    session_columns = [
        Session.company,
        Session.desired_state,
        Session.status,
        Session.phone,
        Session.restarts,
        Session.last_error_reason,
        Session.last_error_message,
        Session.last_error_at,
        Session.since,
        Session.blocked_until,
    ]
    query = (
        Company.select(*company_columns, *session_columns)
        .join(Session, peewee.JOIN.LEFT_OUTER, on=(Session.company == Company.id))
        .order_by(Company.id)
    )
    if after is not None:
        query = query.where(Company.id > after)
    if limit is not None:
        query = query.limit(limit)
    out = []
    now = now_ms()
    split = len(company_columns)
    with db.work():
        for row in query.tuples():
            company = CompanyRow(*row[:split])
            (sid, desired, status, phone, restarts, reason, message, error_at, since, blocked) = row[split:]
            last_error = None
            if reason:
                last_error = {"reason": reason, "message": message or "", "at": error_at}
            if sid is None:  # a company whose session row is missing: stopped
                out.append((company, SessionRow(company.id, "stopped", "stopped", None, 0, None, now)))
                continue
            session = SessionRow(company.id, desired, status, phone, restarts, last_error, since, blocked)
            out.append((company, session))
    return out


def save_session(db: Database, company_id: str, **fields: Any) -> None:
    fields["updated_at"] = now_ms()
    Session.update(**fields).where(Session.company == company_id).execute()
