"""The durable queue of outbound deliveries: what each endpoint (storage/endpoints.py) must
receive, and what became of it.

A delivery row is written inside the transaction that records its cause (:func:`fan_out` is
called by ``events.append``; :func:`enqueue_pairing_email` by the pairing-code record), so an
event is never committed without its deliveries, nor a delivery without its event. Rows are
sent in id order per endpoint by the deliverer actor; this module only reads and writes them.
Which journal event becomes which webhook event is storage/webhook_events.py.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import peewee

from wafleet.storage.clock import now_ms
from wafleet.storage.database import Database
from wafleet.storage.endpoints import ALERT, EMAIL, HTTP, EndpointRow, endpoint_row
from wafleet.storage.models import Company, Delivery, Endpoint
from wafleet.storage.sql import Statement, table
from wafleet.storage.webhook_events import RULES

# Most companies have no webhook: one pre-built look per event says so before any query building.
_HAS_HTTP_ENDPOINT = Statement(f"SELECT 1 FROM {table(Endpoint)} WHERE company = ? AND kind = ? LIMIT 1")

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
STATUSES = (PENDING, DELIVERED, FAILED)

_listeners: list[Callable[[], None]] = []


def on_new_delivery(callback: Callable[[], None]) -> Callable[[], None]:
    """Call ``callback`` (cheap, non-blocking) whenever deliveries are queued in this process;
    returns the function that unregisters it. The deliverer also polls: a wake that comes
    before the commit is only an early look."""
    _listeners.append(callback)
    return lambda: _listeners.remove(callback) if callback in _listeners else None


def _notify() -> None:
    for callback in list(_listeners):
        callback()


@dataclass(frozen=True)
class DeliveryRow:
    id: int
    endpoint_id: int
    company_id: str | None
    event_id: str
    type: str
    body: str
    status: str
    attempts: int
    deadline: int | None  # None: the node's retry budget, counted from created_at
    next_at: int
    last_error: str | None
    response_status: int | None
    created_at: int
    delivered_at: int | None
    horizon: int | None = None


def _delivery(row: Delivery) -> DeliveryRow:
    return DeliveryRow(
        row.id,
        row.endpoint,
        row.company,
        row.event_id,
        row.type,
        row.body,
        row.status,
        row.attempts,
        row.deadline,
        row.next_at,
        row.last_error,
        row.response_status,
        row.created_at,
        row.delivered_at,
        row.horizon,
    )


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# -- producing ------------------------------------------------------------------------------------
def fan_out(
    company_id: str | None,
    kind: str,
    state: str | None,
    reason: str | None,
    data: dict[str, Any] | None,
    at: int,
) -> int:
    """Queue the deliveries one journal event causes; the caller's transaction commits them.
    Returns how many were queued."""
    rules = [r for r in RULES if r.kind == kind and r.when(state, reason)]
    if not rules:
        return 0
    match = (Endpoint.company == company_id) & (Endpoint.kind == HTTP) if company_id is not None else None
    if kind == "alert":
        alert = Endpoint.kind == ALERT
        match = alert if match is None else (match | alert)
    if match is None:
        return 0
    if kind != "alert" and _HAS_HTTP_ENDPOINT.one(Endpoint._meta.database, (company_id, HTTP)) is None:
        return 0
    endpoints = [endpoint_row(e) for e in Endpoint.select().where(match).order_by(Endpoint.id)]
    if not endpoints:
        return 0
    rows = []
    for rule in rules:
        targets = [e for e in endpoints if e.kind == ALERT or rule.type in e.events]
        if not targets:
            continue
        event_id = f"evt_{uuid.uuid4().hex}"
        body = _dumps(
            {
                "id": event_id,
                "type": rule.type,
                "companyId": company_id,
                "createdAt": at,
                "data": rule.payload(state, reason, dict(data or {})),
            }
        )
        rows += [_new_row(e, event_id, rule.type, body, at, None) for e in targets]
    if rows:
        Delivery.insert_many(rows).execute()
        _notify()
    return len(rows)


def _new_row(
    endpoint: EndpointRow, event_id: str, type_: str, body: str, at: int, deadline: int | None
) -> dict[str, Any]:
    return {
        "endpoint": endpoint.id,
        "company": endpoint.company_id,
        "event_id": event_id,
        "type": type_,
        "body": body,
        "status": PENDING,
        "attempts": 0,
        "deadline": deadline,
        "next_at": at,
        "created_at": at,
        "horizon": _horizon(),
    }


def _horizon() -> Any:
    """On PostgreSQL, ids are taken before commit: a transaction still open may hold a lower id
    than a row already committed. The row's horizon (when it was written, database clock) says
    when that can no longer be (see :func:`queue`). SQLite runs one transaction at a time."""
    if isinstance(Delivery._meta.database.obj, peewee.PostgresqlDatabase):
        return peewee.SQL("(extract(epoch FROM clock_timestamp()) * 1000)::bigint")
    return None


# Start of the oldest transaction, in this database, that has written and is still open.
_OLDEST_WRITER = """
SELECT (extract(epoch FROM min(xact_start)) * 1000)::bigint FROM pg_stat_activity
WHERE datname = current_database() AND backend_xid IS NOT NULL AND pid <> pg_backend_pid()
"""
SETTLE_MARGIN_MS = 50  # covers the instant between a row's clock reading and its id


def enqueue_pairing_email(company_id: str, code: str, expires_at: int) -> bool:
    """The company's notification email gets this pairing code; it is worth sending only until
    the code expires, so that is the delivery's deadline. Called inside the caller's transaction."""
    endpoint = Endpoint.get_or_none((Endpoint.company == company_id) & (Endpoint.kind == EMAIL))
    company = Company.get_or_none(Company.id == company_id)
    if endpoint is None or company is None:
        return False
    now = now_ms()
    body = _dumps({"to": endpoint.url, "company": company.name, "code": code, "expiresAt": expires_at})
    row = _new_row(endpoint_row(endpoint), f"evt_{uuid.uuid4().hex}", "pairing_code", body, now, expires_at)
    Delivery.insert(**row).execute()
    _notify()
    return True


def forget_secret_content(body: str) -> str:
    """An email delivery's body without the pairing code: kept for the record once final."""
    data = json.loads(body)
    if "code" in data:
        data["code"] = None
    return _dumps(data)


# -- sending (the deliverer actor) -------------------------------------------------------------
def due_endpoints(db: Database, now: int, limit: int) -> list[int]:
    """Endpoints with something pending whose queue head may be tried now."""
    with db.work():
        query = (
            Delivery.select(Delivery.endpoint)
            .join(Endpoint, on=(Endpoint.id == Delivery.endpoint))
            .where((Delivery.status == PENDING) & (Endpoint.retry_at <= now))
            .distinct()
            .limit(limit)
        )
        return [r.endpoint for r in query]


def next_retry_at(db: Database, now: int) -> int | None:
    """When the earliest queue head now waiting out a backoff may be tried (None: none waits;
    queues due now are being sent, and their workers say when they are done)."""
    with db.work():
        row = (
            Endpoint.select(Endpoint.retry_at)
            .join(Delivery, on=(Delivery.endpoint == Endpoint.id))
            .where((Delivery.status == PENDING) & (Endpoint.retry_at > now))
            .order_by(Endpoint.retry_at)
            .first()
        )
    return row.retry_at if row is not None else None


def queue(db: Database, endpoint_id: int, limit: int) -> tuple[list[DeliveryRow], bool]:
    """The oldest pending deliveries of an endpoint, in the order they must be sent, up to the
    first one that must wait for older transactions to end (PostgreSQL: a transaction that
    began before it was written may still commit a delivery with a lower id); and whether
    some wait so."""
    with db.work():
        oldest_writer: int | None = None
        if db.kind == "postgresql":  # before the read: what began before this has committed
            oldest_writer = db.db.execute_sql(_OLDEST_WRITER).fetchone()[0]
        rows = [
            _delivery(r)
            for r in Delivery.select()
            .where((Delivery.endpoint == endpoint_id) & (Delivery.status == PENDING))
            .order_by(Delivery.id)
            .limit(limit)
        ]
    if oldest_writer is None:
        return rows, False  # no transaction is writing: everything with a lower id is visible
    for i, row in enumerate(rows):
        if row.horizon is not None and row.horizon + SETTLE_MARGIN_MS >= oldest_writer:
            return rows[:i], True  # a transaction open since before it may commit an earlier one
    return rows, False


def delivered(
    db: Database, row: DeliveryRow, response_status: int | None, reset_endpoint: bool = True
) -> None:
    now = now_ms()
    body = forget_secret_content(row.body) if row.type == "pairing_code" and '"code"' in row.body else None
    fields: dict[str, Any] = {
        "status": DELIVERED,
        "attempts": row.attempts + 1,
        "delivered_at": now,
        "response_status": response_status,
        "last_error": None,
    }
    if body is not None:
        fields["body"] = body
    with db.work(), db.atomic():
        Delivery.update(**fields).where(Delivery.id == row.id).execute()
        if reset_endpoint:
            Endpoint.update(retry_at=0).where(Endpoint.id == row.endpoint_id).execute()


def retry_later(db: Database, row: DeliveryRow, error: str, response_status: int | None, at: int) -> None:
    """A failed attempt; the endpoint's queue waits until ``at`` (order is kept)."""
    with db.work(), db.atomic():
        Delivery.update(
            attempts=row.attempts + 1, last_error=error[:1000], response_status=response_status, next_at=at
        ).where(Delivery.id == row.id).execute()
        Endpoint.update(retry_at=at).where(Endpoint.id == row.endpoint_id).execute()


def dead_letter(db: Database, row: DeliveryRow, error: str, response_status: int | None) -> None:
    """Out of retries: listed as failed until redelivered; the queue moves on."""
    body = (
        forget_secret_content(row.body) if row.type == "pairing_code" and '"code"' in row.body else row.body
    )
    with db.work(), db.atomic():
        Delivery.update(
            status=FAILED,
            attempts=row.attempts + 1,
            last_error=error[:1000],
            response_status=response_status,
            body=body,
        ).where(Delivery.id == row.id).execute()
        Endpoint.update(retry_at=0).where(Endpoint.id == row.endpoint_id).execute()


def prune(db: Database, delivered_before: int, limit: int = 1000) -> int:
    """Forget up to ``limit`` deliveries delivered before then (dead letters stay listed)."""
    with db.work(), db.atomic():
        old = (
            Delivery.select(Delivery.id)
            .where((Delivery.status == DELIVERED) & (Delivery.delivered_at < delivered_before))
            .limit(limit)
        )
        return Delivery.delete().where(Delivery.id.in_([r.id for r in old])).execute()


# -- listing and redelivering (the API) ---------------------------------------------------------
def page(
    db: Database, company_id: str | None, status: str | None, limit: int, before_id: int | None
) -> tuple[list[tuple[DeliveryRow, EndpointRow | None]], int | None]:
    """A company's deliveries (or the alert webhook's, company None), newest first; the cursor is
    the last id given, None when there is nothing older."""
    with db.work():
        query = Delivery.select()
        if company_id is None:
            alert_ids = Endpoint.select(Endpoint.id).where(Endpoint.kind == ALERT)
            query = query.where(Delivery.company.is_null() & Delivery.endpoint.in_(alert_ids))
        else:
            query = query.where(Delivery.company == company_id)
        if status is not None:
            query = query.where(Delivery.status == status)
        if before_id is not None:
            query = query.where(Delivery.id < before_id)
        rows = [_delivery(r) for r in query.order_by(Delivery.id.desc()).limit(limit + 1)]
        ids = {r.endpoint_id for r in rows}
        endpoints = (
            {e.id: endpoint_row(e) for e in Endpoint.select().where(Endpoint.id.in_(ids))} if ids else {}
        )
    more = len(rows) > limit
    rows = rows[:limit]
    return [(r, endpoints.get(r.endpoint_id)) for r in rows], (rows[-1].id if more and rows else None)


class NotRedeliverable(Exception):
    pass


def redeliver_failed(db: Database, company_id: str | None, deadline: int) -> int:
    """Every dead letter of a company (or of the alert webhook) back in its queue, in its old
    place (queues go by id); pairing-code emails, whose code is gone, stay where they are."""
    with db.work(), db.atomic():
        query = Delivery.update(
            status=PENDING, attempts=0, deadline=deadline, next_at=now_ms(), last_error=None
        )
        if company_id is None:
            alert_ids = Endpoint.select(Endpoint.id).where(Endpoint.kind == ALERT)
            where = Delivery.company.is_null() & Delivery.endpoint.in_(alert_ids)
        else:
            where = Delivery.company == company_id
        count = query.where(where & (Delivery.status == FAILED) & (Delivery.type != "pairing_code")).execute()
    if count:
        _notify()
    return count


def redeliver(db: Database, company_id: str | None, delivery_id: int, deadline: int) -> DeliveryRow | None:
    """A dead letter goes back to its endpoint's queue, with the same event id and body and a
    fresh retry budget. None when the company (or the alert webhook) has no such delivery."""
    with db.work(), db.atomic():
        row = Delivery.get_or_none(
            (Delivery.id == delivery_id)
            & ((Delivery.company == company_id) if company_id else Delivery.company.is_null())
        )
        if row is None:
            return None
        if (
            company_id is None
            and Endpoint.get_or_none((Endpoint.id == row.endpoint) & (Endpoint.kind == ALERT)) is None
        ):
            return None
        if row.status != FAILED:
            raise NotRedeliverable(
                f"delivery {delivery_id} is {row.status}; only failed ones are redelivered"
            )
        if row.type == "pairing_code" and json.loads(row.body).get("code") is None:
            raise NotRedeliverable("a pairing-code email is not kept once final: request a new pairing code")
        now = now_ms()
        Delivery.update(status=PENDING, attempts=0, deadline=deadline, next_at=now, last_error=None).where(
            Delivery.id == row.id
        ).execute()
        row = Delivery.get_by_id(row.id)
    _notify()
    return _delivery(row)
