"""Outbound deliveries as their owners see them: a company's webhook and email deliveries
(``/api/whatsapp/webhooks/{id}/deliveries``, admin or that company) and the alert webhook's
(``/api/whatsapp/alert-webhook/deliveries``, admin), newest first by cursor, with a redeliver
action for dead letters."""

from __future__ import annotations

import json
from typing import Any

import bottle

from wafleet.http.api import ApiError, int_query, respond
from wafleet.http.context import Context
from wafleet.storage import deliveries, endpoints
from wafleet.storage.clock import iso, now_ms

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


def _status_query() -> str | None:
    raw = bottle.request.query.get("status")
    if raw is None or raw == "":
        return None
    if raw not in deliveries.STATUSES:
        raise ApiError(400, "invalid_query", f"status must be one of {', '.join(deliveries.STATUSES)}")
    return raw


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

    def listing(company_id: str | None) -> Any:
        limit = int_query("limit", DEFAULT_LIMIT, 1, MAX_LIMIT) or DEFAULT_LIMIT
        cursor = int_query("cursor", None, 1, 10**18)
        rows, next_id = deliveries.page(ctx.db, company_id, _status_query(), limit, cursor)
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

    def company_deliveries(company_id: str) -> Any:
        ctx.authorised_record(company_id)
        return listing(company_id)

    def company_redeliver(company_id: str, delivery_id: str) -> Any:
        ctx.authorised_record(company_id)
        return redeliver(company_id, delivery_id)

    def company_redeliver_all(company_id: str) -> Any:
        ctx.authorised_record(company_id)
        return redeliver_all(company_id)

    base = "/api/whatsapp/webhooks/<company_id>/deliveries"
    app.route(base, method="GET", callback=company_deliveries)
    app.route(f"{base}/<delivery_id>/redeliver", method="POST", callback=company_redeliver)
    app.route(f"{base}/redeliver", method="POST", callback=company_redeliver_all)
    if not ctx.settings.multi_tenant:  # single-tenant twins, like the session routes
        default = ctx.settings.default_company_id
        app.route(
            "/api/whatsapp/webhooks/deliveries", method="GET", callback=lambda: company_deliveries(default)
        )
        app.route(
            "/api/whatsapp/webhooks/deliveries/<delivery_id>/redeliver",
            method="POST",
            callback=lambda delivery_id: company_redeliver(default, delivery_id),
        )
        app.route(
            "/api/whatsapp/webhooks/deliveries/redeliver",
            method="POST",
            callback=lambda: company_redeliver_all(default),
        )

    @app.get("/api/whatsapp/alert-webhook/deliveries")
    def alert_deliveries() -> Any:
        ctx.auth.admin()
        return listing(None)

    @app.post("/api/whatsapp/alert-webhook/deliveries/<delivery_id>/redeliver")
    def alert_redeliver(delivery_id: str) -> Any:
        ctx.auth.admin()
        return redeliver(None, delivery_id)

    @app.post("/api/whatsapp/alert-webhook/deliveries/redeliver")
    def alert_redeliver_all() -> Any:
        ctx.auth.admin()
        return redeliver_all(None)
