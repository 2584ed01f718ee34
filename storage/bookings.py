"""Bookings: insert, cancel and move them without ever double-booking a resource.

The database decides, whatever the concurrency: on PostgreSQL the exclusion constraint
``booking_no_overlap`` refuses an overlapping confirmed booking of the same resource; on SQLite
the overlap check and the write run in one IMMEDIATE transaction (the write lock is taken before
the check, so no other writer, in this process or another, can slip in between).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import peewee

from wafleet.storage.clock import now_ms
from wafleet.storage.database import Database
from wafleet.storage.models import Booking
from wafleet.storage.sql import Insert, Statement, table

# Pre-built statements for the booking a turn makes (query building cost as much as SQLite's work).
_CLASH = Statement(
    f"SELECT 1 FROM {table(Booking)} WHERE company = ? AND resource = ? AND status = 'confirmed' "
    "AND start_ms < ? AND end_ms > ? AND id <> ? LIMIT 1"
)
_CODE_TAKEN = Statement(f"SELECT 1 FROM {table(Booking)} WHERE company = ? AND code = ? LIMIT 1")
_INSERT = Insert(
    Booking,
    (
        "company", "code", "customer_phone", "customer_hash", "customer_name", "service", "resource",
        "start_ms", "end_ms", "status", "source", "created_at", "updated_at",
    ),
)  # fmt: skip
_BUSY_ONE = Statement(
    f"SELECT resource, start_ms, end_ms FROM {table(Booking)} WHERE company = ? AND resource = ? "
    "AND status = 'confirmed' AND start_ms < ? AND end_ms > ?"
)

# No 0/O or 1/I look-alikes: a code is read aloud and typed on a phone.
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 6
CODE_ATTEMPTS = 8  # ~1e9 codes: a collision is rare, eight in a row is a bug
STATUSES = ("confirmed", "cancelled", "completed")


def new_code() -> str:
    """A random code with at least one digit and one letter: an all-letter code reads like a word
    ("PLEASE", "AMANHA") and collides with what customers write. Drawn until it qualifies (5 of
    6 draws do), so every such code is equally likely."""
    while True:
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
        if not code.isalpha() and not code.isdigit():
            return code


@dataclass(frozen=True)
class BookingRow:
    id: int
    company_id: str
    code: str
    sealed_phone: str
    customer_hash: str
    customer_name: str | None
    service: str
    resource: str
    start_ms: int
    end_ms: int
    status: str
    source: str
    created_at: int
    updated_at: int


def _row(b: Booking) -> BookingRow:
    return BookingRow(
        id=b.id,
        company_id=b.company,
        code=b.code,
        sealed_phone=b.customer_phone,
        customer_hash=b.customer_hash,
        customer_name=b.customer_name,
        service=b.service,
        resource=b.resource,
        start_ms=b.start_ms,
        end_ms=b.end_ms,
        status=b.status,
        source=b.source,
        created_at=b.created_at,
        updated_at=b.updated_at,
    )


@contextmanager
def _write(db: Database) -> Iterator[None]:
    """A transaction that holds the write lock from its first statement (SQLite: IMMEDIATE)."""
    with db.work():
        if db.kind == "sqlite" and not db.db.in_transaction():
            with db.db.atomic("IMMEDIATE"):
                yield
        else:
            with db.db.atomic():
                yield


def _is_overlap(exc: peewee.IntegrityError) -> bool:
    original = exc.args[0] if exc.args else None
    return getattr(original, "pgcode", None) == "23P01" or "booking_no_overlap" in str(exc)


def _clash(db: Database, company_id: str, resource: str, start: int, end: int, exclude: int | None) -> bool:
    return _CLASH.one(db, (company_id, resource, end, start, -1 if exclude is None else exclude)) is not None


def insert(
    db: Database,
    *,
    company_id: str,
    resources: list[str],
    service: str,
    start_ms: int,
    end_ms: int,
    sealed_phone: str,
    customer_hash: str,
    customer_name: str | None,
    source: str,
) -> BookingRow | None:
    """Book the first of ``resources`` free over [start, end); None when every one is taken."""
    for resource in resources:
        for _ in range(CODE_ATTEMPTS):
            code = new_code()
            now = now_ms()
            values = (
                company_id, code, sealed_phone, customer_hash, customer_name, service, resource,
                start_ms, end_ms, "confirmed", source, now, now,
            )  # fmt: skip
            try:
                with _write(db):
                    if db.kind == "sqlite":
                        if _clash(db, company_id, resource, start_ms, end_ms, None):
                            break  # this resource is taken: try the next
                        if _CODE_TAKEN.one(db, (company_id, code)) is not None:
                            continue
                    row_id = _INSERT.run(db, values)
                return BookingRow(
                    row_id, company_id, code, sealed_phone, customer_hash, customer_name, service,
                    resource, start_ms, end_ms, "confirmed", source, now, now,
                )  # fmt: skip
            except peewee.IntegrityError as exc:
                if _is_overlap(exc):
                    break
                continue  # the code was drawn twice: draw again
        else:
            raise RuntimeError(f"no free booking code after {CODE_ATTEMPTS} draws")
    return None


def move(
    db: Database, booking: BookingRow, resources: list[str], start_ms: int, end_ms: int
) -> BookingRow | None:
    """Move a confirmed booking to [start, end) on the first free of ``resources``, in one
    statement per try: either it moved, or it stayed exactly where it was (None)."""
    for resource in resources:
        now = now_ms()
        try:
            with _write(db):
                if db.kind == "sqlite" and _clash(
                    db, booking.company_id, resource, start_ms, end_ms, booking.id
                ):
                    continue
                changed = (
                    Booking.update(resource=resource, start_ms=start_ms, end_ms=end_ms, updated_at=now)
                    .where((Booking.id == booking.id) & (Booking.status == "confirmed"))
                    .execute()
                )
        except peewee.IntegrityError as exc:
            if _is_overlap(exc):
                continue
            raise
        if not changed:
            return None
        return get_by_id(db, booking.id)
    return None


def set_status(db: Database, booking_id: int, status: str, only_from: str = "confirmed") -> bool:
    with db.work():
        changed = (
            Booking.update(status=status, updated_at=now_ms())
            .where((Booking.id == booking_id) & (Booking.status == only_from))
            .execute()
        )
    return changed > 0


def complete_past(db: Database, now: int) -> int:
    """Confirmed bookings that have ended become ``completed``; how many did."""
    with db.work():
        return (
            Booking.update(status="completed", updated_at=now)
            .where((Booking.status == "confirmed") & (Booking.end_ms <= now))
            .execute()
        )


def get_by_id(db: Database, booking_id: int) -> BookingRow | None:
    with db.work():
        b = Booking.get_or_none(Booking.id == booking_id)
    return _row(b) if b else None


def get_by_code(db: Database, company_id: str, code: str) -> BookingRow | None:
    with db.work():
        b = Booking.get_or_none((Booking.company == company_id) & (Booking.code == code))
    return _row(b) if b else None


def upcoming_for(db: Database, company_id: str, customer_hash: str, after_ms: int) -> list[BookingRow]:
    with db.work():
        query = (
            Booking.select()
            .where(
                (Booking.company == company_id)
                & (Booking.customer_hash == customer_hash)
                & (Booking.status == "confirmed")
                & (Booking.end_ms > after_ms)
            )
            .order_by(Booking.start_ms)
        )
        return [_row(b) for b in query]


def busy(
    db: Database, company_id: str, resources: list[str], start_ms: int, end_ms: int
) -> list[tuple[str, int, int]]:
    """Confirmed bookings of these resources that touch [start, end): (resource, start, end)."""
    found: list[tuple[str, int, int]] = []
    with db.work():
        for resource in resources:  # one pre-built statement per resource (a company has few)
            found.extend(_BUSY_ONE.all(db, (company_id, resource, end_ms, start_ms)))
    return found


def page(
    db: Database,
    company_id: str,
    *,
    limit: int,
    after: tuple[int, int] | None,
    from_ms: int | None,
    to_ms: int | None,
    status: str | None,
) -> tuple[list[BookingRow], tuple[int, int] | None]:
    """A company's bookings by start time; the cursor is the (start, id) of the last one given."""
    with db.work():
        query = Booking.select().where(Booking.company == company_id)
        if from_ms is not None:
            query = query.where(Booking.start_ms >= from_ms)
        if to_ms is not None:
            query = query.where(Booking.start_ms < to_ms)
        if status is not None:
            query = query.where(Booking.status == status)
        if after is not None:
            start, last_id = after
            query = query.where(
                (Booking.start_ms > start) | ((Booking.start_ms == start) & (Booking.id > last_id))
            )
        rows = [_row(b) for b in query.order_by(Booking.start_ms, Booking.id).limit(limit + 1)]
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, ((rows[-1].start_ms, rows[-1].id) if more and rows else None)


def counts(db: Database, company_id: str, from_ms: int, to_ms: int) -> dict[str, int]:
    """Bookings made in [from, to) and bookings cancelled in it (by their last update)."""
    with db.work():
        made = (
            Booking.select()
            .where(
                (Booking.company == company_id)
                & (Booking.created_at >= from_ms)
                & (Booking.created_at < to_ms)
            )
            .count()
        )
        cancelled = (
            Booking.select()
            .where(
                (Booking.company == company_id)
                & (Booking.status == "cancelled")
                & (Booking.updated_at >= from_ms)
                & (Booking.updated_at < to_ms)
            )
            .count()
        )
    return {"made": made, "cancelled": cancelled}


def double_bookings(db: Database) -> int:
    """Pairs of overlapping confirmed bookings of one resource (must always be 0)."""
    with db.work():
        a, b = Booking.alias("a"), Booking.alias("b")
        return (
            a.select()
            .join(b, on=((a.company == b.company) & (a.resource == b.resource) & (a.id < b.id)))
            .where(
                (a.status == "confirmed")
                & (b.status == "confirmed")
                & (a.start_ms < b.end_ms)
                & (b.start_ms < a.end_ms)
            )
            .count()
        )


def delete_company(db: Database, company_id: str) -> None:
    with db.work():
        Booking.delete().where(Booking.company == company_id).execute()
