"""Outbound deliveries as their owners see them: a company's webhook and email deliveries
(``/api/whatsapp/webhooks/{id}/deliveries``, admin or that company) and the alert webhook's
(``/api/whatsapp/alert-webhook/deliveries``, admin), newest first by cursor, with a redeliver
action for dead letters."""

from __future__ import annotations

import json
from typing import Any, Literal

import bottle

from wafleet.http.api import ApiError, respond
from wafleet.http.context import Context
from wafleet.http.contract import Access, declare
from wafleet.http.fields import DIGITS, Query, Reply, query_int
from wafleet.storage import deliveries, endpoints
from wafleet.storage.clock import iso, now_ms

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
DELIVERY_ID = {"type": "string", "pattern": DIGITS}


class Page(Query):
    """``status``: pending, delivered or failed (dead letters); ``cursor``: the last page's
    ``nextCursor``."""

    status: Literal[deliveries.STATUSES] | None = None  # type: ignore[valid-type]
    limit: query_int(1, MAX_LIMIT) = DEFAULT_LIMIT
    cursor: query_int(1, 10**18) | None = None


class Delivery(Reply):
    id: str
    eventId: str  # noqa: N815
    type: str
    status: str
    attempts: int
    createdAt: str | None  # noqa: N815
    nextAttemptAt: str | None  # noqa: N815
    retryUntil: str | None  # noqa: N815
    deliveredAt: str | None  # noqa: N815
    lastError: str | None  # noqa: N815
    responseStatus: int | None  # noqa: N815
    endpoint: dict[str, Any] | None
    payload: Any = None


class DeliveryPage(Reply):
    deliveries: list[Delivery]
    nextCursor: str | None  # noqa: N815


class Redelivered(Reply):
    delivery: Delivery


class RedeliveredAll(Reply):
    redelivered: int


def delivery_json(
    row: deliveries.DeliveryRow, endpoint: endpoints.EndpointRow | None, budget_ms: int
) -> dict[str, Any]:
    deadline = row.deadline if row.deadline is not None else row.created_at + budget_ms
    out: dict[str, Any] = {
        "id": str(row.id),
        "eventId": row.event_id,
        "type": row.type,
        "status": row.status,
        "attempts": row.attempts,
        "createdAt": iso(row.created_at),
        "nextAttemptAt": iso(row.next_at) if row.status == deliveries.PENDING else None,
        "retryUntil": iso(deadline) if row.status == deliveries.PENDING else None,
        "deliveredAt": iso(row.delivered_at),
        "lastError": row.last_error,
        "responseStatus": row.response_status,
        "endpoint": {"kind": endpoint.kind, "url": endpoint.url} if endpoint is not None else None,
    }
    if endpoint is None or endpoint.kind != endpoints.EMAIL:
        out["payload"] = json.loads(row.body)  # what was (or will be) POSTed; emails hold a code
    return out


def install(app: bottle.Bottle, ctx: Context) -> None:
    outbound = ctx.settings.outbound
    assert outbound is not None
    budget = outbound.retry_budget_ms

    def listing(company_id: str | None, query: Page) -> Any:
        rows, next_id = deliveries.page(ctx.db, company_id, query.status, query.limit, query.cursor)
        return respond(
            200,
            {
                "deliveries": [delivery_json(r, e, budget) for r, e in rows],
                "nextCursor": str(next_id) if next_id is not None else None,
            },
        )

    def redeliver(company_id: str | None, delivery_id: str) -> Any:
        if not delivery_id.isascii() or not delivery_id.isdigit() or len(delivery_id) > 18:
            raise ApiError(400, "invalid_delivery_id", "the delivery id is a whole number")
        try:
            row = deliveries.redeliver(ctx.db, company_id, int(delivery_id), now_ms() + budget)
        except deliveries.NotRedeliverable as exc:
            raise ApiError(409, "not_redeliverable", str(exc)) from None
        if row is None:
            raise ApiError(404, "not_found", f"no delivery {delivery_id} here")
        endpoint = endpoints.endpoint(ctx.db, row.endpoint_id)
        return respond(202, {"delivery": delivery_json(row, endpoint, budget)})

    def redeliver_all(company_id: str | None) -> Any:
        count = deliveries.redeliver_failed(ctx.db, company_id, now_ms() + budget)
        return respond(202, {"redelivered": count})

    def company_deliveries(company_id: str, query: Page) -> Any:
        ctx.authorised_record(company_id)
        return listing(company_id, query)

    def company_redeliver(company_id: str, delivery_id: str) -> Any:
        ctx.authorised_record(company_id)
        return redeliver(company_id, delivery_id)

    def company_redeliver_all(company_id: str) -> Any:
        ctx.authorised_record(company_id)
        return redeliver_all(company_id)

    base = "/api/whatsapp/webhooks/<company_id>/deliveries"
    tag, company = "deliveries", Access.COMPANY
    declare(
        app, "GET", base, company_deliveries, summary="The company's webhook and email deliveries",
        tag=tag, access=company, query=Page, ok={200: DeliveryPage}, twin=True,
    )  # fmt: skip
    declare(
        app, "POST", f"{base}/<delivery_id>/redeliver", company_redeliver,
        summary="Send a dead letter again", tag=tag, access=company, params={"delivery_id": DELIVERY_ID},
        ok={202: Redelivered}, errors=(409,), twin=True,
    )  # fmt: skip
    declare(
        app, "POST", f"{base}/redeliver", company_redeliver_all, summary="Send every dead letter again",
        tag=tag, access=company, ok={202: RedeliveredAll}, twin=True,
    )  # fmt: skip

    alerts = "/api/whatsapp/alert-webhook/deliveries"
    declare(
        app, "GET", alerts, lambda query: listing(None, query), summary="The alert webhook's deliveries",
        tag=tag, access=Access.ADMIN, query=Page, ok={200: DeliveryPage},
    )  # fmt: skip
    declare(
        app, "POST", f"{alerts}/<delivery_id>/redeliver", lambda delivery_id: redeliver(None, delivery_id),
        summary="Send an alert dead letter again", tag=tag, access=Access.ADMIN,
        params={"delivery_id": DELIVERY_ID}, ok={202: Redelivered}, errors=(409,),
    )  # fmt: skip
    declare(
        app, "POST", f"{alerts}/redeliver", lambda: redeliver_all(None),
        summary="Send every alert dead letter again", tag=tag, access=Access.ADMIN, ok={202: RedeliveredAll},
    )  # fmt: skip
