"""Page login sessions: the browser's cookie holds a random session id, never a token.

Only the id's SHA-256 hash is stored (the id has 256 random bits, so a fast hash suffices and a
copy of the database opens nothing). A session names its company (None: the operator's
dashboard); logout deletes it, and rotating or deleting a company deletes all of its sessions.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

import peewee

from wafleet.storage.clock import now_ms
from wafleet.storage.database import Database
from wafleet.storage.models import BaseModel


class PageSession(BaseModel):
    id_hash = peewee.CharField(primary_key=True, max_length=64)
    company = peewee.CharField(max_length=64, null=True, index=True)  # None: the admin
    created_at = peewee.BigIntegerField()
    expires_at = peewee.BigIntegerField(index=True)


@dataclass(frozen=True)
class Found:
    id_hash: str
    company_id: str | None  # None: an admin session


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()


def create(db: Database, company_id: str | None, ttl_ms: int) -> str:
    """A new session; returns its id (for the cookie). Expired sessions are swept on the way."""
    session_id = "ws_" + secrets.token_urlsafe(32)
    now = now_ms()
    with db.work(), db.atomic():
        PageSession.delete().where(PageSession.expires_at <= now).execute()
        PageSession.create(
            id_hash=_hash(session_id), company=company_id, created_at=now, expires_at=now + ttl_ms
        )
    return session_id


def lookup(db: Database, session_id: str) -> Found | None:
    if not session_id or len(session_id) > 128:
        return None
    with db.work():
        row = (
            PageSession.select(PageSession.id_hash, PageSession.company)
            .where(PageSession.id_hash == _hash(session_id), PageSession.expires_at > now_ms())
            .first()
        )
    return None if row is None else Found(row.id_hash, row.company)


def exists(db: Database, id_hash: str) -> bool:
    with db.work():
        return PageSession.select().where(PageSession.id_hash == id_hash).exists()


def revoke(db: Database, session_id: str) -> str | None:
    """Delete one session; returns its hash (to end what it opened), None if it was unknown."""
    found = lookup(db, session_id)
    if found is None:
        return None
    with db.work():
        PageSession.delete().where(PageSession.id_hash == found.id_hash).execute()
    return found.id_hash


def revoke_company(db: Database, company_id: str) -> None:
    """Every page session of a company (inside the caller's transaction when there is one)."""
    with db.work():
        PageSession.delete().where(PageSession.company == company_id).execute()
