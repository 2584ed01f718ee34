"""Where outbound deliveries go: a company's webhooks (``http``), its notification email
(``email``), and the node's alert webhook (``alert``). Removing an endpoint removes its queue.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from wafleet.storage.clock import now_ms
from wafleet.storage.database import Database
from wafleet.storage.models import Delivery, Endpoint

HTTP, EMAIL, ALERT = "http", "email", "alert"

_config_version = 0  # bumped whenever this process changes an endpoint


def config_version() -> int:
    """Changes when an endpoint is added, changed or removed by this process: a sender that
    read endpoints earlier reads them again before its next attempt."""
    return _config_version


def _config_changed() -> None:
    global _config_version
    _config_version += 1


@dataclass(frozen=True)
class EndpointRow:
    id: int
    company_id: str | None
    kind: str
    url: str
    events: list[str]
    secret: str | None
    retry_at: int


def endpoint_row(row: Endpoint) -> EndpointRow:
    return EndpointRow(
        row.id, row.company, row.kind, row.url, json.loads(row.events), row.secret, row.retry_at
    )


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def replace_webhooks(db: Database, company_id: str, hooks: list[dict[str, Any]]) -> None:
    """The company's webhooks become exactly ``hooks`` ({url, events, secret (encrypted)}).

    An endpoint whose URL stays keeps its identity and its queue (a secret rotation loses
    nothing); an endpoint that goes is deleted with everything queued for it."""
    now = now_ms()
    with db.work(), db.atomic():
        current = {
            e.url: e
            for e in Endpoint.select().where((Endpoint.company == company_id) & (Endpoint.kind == HTTP))
        }
        wanted = {h["url"] for h in hooks}
        gone = [e.id for url, e in current.items() if url not in wanted]
        if gone:
            Delivery.delete().where(Delivery.endpoint.in_(gone)).execute()
            Endpoint.delete().where(Endpoint.id.in_(gone)).execute()
        for hook in hooks:
            fields = {"events": _dumps(hook["events"]), "secret": hook["secret"]}
            existing = current.get(hook["url"])
            if existing is not None:
                Endpoint.update(**fields).where(Endpoint.id == existing.id).execute()
            else:
                Endpoint.create(company=company_id, kind=HTTP, url=hook["url"], created_at=now, **fields)
    _config_changed()


def set_email(db: Database, company_id: str, address: str | None) -> None:
    """The company's notification email (None: none); a changed address keeps the queue."""
    with db.work(), db.atomic():
        existing = Endpoint.get_or_none((Endpoint.company == company_id) & (Endpoint.kind == EMAIL))
        if address is None:
            if existing is not None:
                Delivery.delete().where(Delivery.endpoint == existing.id).execute()
                existing.delete_instance()
        elif existing is not None:
            Endpoint.update(url=address).where(Endpoint.id == existing.id).execute()
        else:
            Endpoint.create(
                company=company_id,
                kind=EMAIL,
                url=address,
                events=_dumps(["pairing_code"]),
                created_at=now_ms(),
            )
    _config_changed()


def sync_alert_endpoint(db: Database, url: str | None) -> None:
    """The node's alert webhook as configured now (None: alerting off, its queue dropped).
    Undelivered alerts stay queued across a URL change."""
    with db.work(), db.atomic():
        existing = Endpoint.get_or_none(Endpoint.kind == ALERT)
        if url is None:
            if existing is not None:
                Delivery.delete().where(Delivery.endpoint == existing.id).execute()
                existing.delete_instance()
        elif existing is not None:
            Endpoint.update(url=url).where(Endpoint.id == existing.id).execute()
        else:
            Endpoint.create(company=None, kind=ALERT, url=url, events=_dumps(["alert"]), created_at=now_ms())
    _config_changed()


def company_config(db: Database, company_id: str) -> dict[str, Any]:
    """What the company registered, as the API shows it: never a secret."""
    with db.work():
        rows = list(Endpoint.select().where(Endpoint.company == company_id).order_by(Endpoint.id))
    email = next((e.url for e in rows if e.kind == EMAIL), None)
    hooks = [{"url": e.url, "events": json.loads(e.events)} for e in rows if e.kind == HTTP]
    return {"webhooks": hooks, "notificationEmail": email}


def delete_company(company_id: str) -> None:
    """Everything outbound of a company; inside the caller's transaction."""
    Delivery.delete().where(Delivery.company == company_id).execute()
    Endpoint.delete().where(Endpoint.company == company_id).execute()
    _config_changed()


def endpoint(db: Database, endpoint_id: int) -> EndpointRow | None:
    with db.work():
        row = Endpoint.get_or_none(Endpoint.id == endpoint_id)
    return endpoint_row(row) if row is not None else None
