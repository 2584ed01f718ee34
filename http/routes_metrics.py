"""/api/whatsapp/metrics…: the node's figures in the shapes our users' scripts read.

Admin sees everything; a company's token opens only ``/api/whatsapp/metrics/{its id}``. Counts
are since the node started (``uptime``); rates, percentiles and alerts cover the metrics window;
the timeseries is read from the database, so it outlives restarts.
"""

from __future__ import annotations

import re
import time
from typing import Any

import bottle

from wafleet.actors.directory import SessionRecord
from wafleet.actors.figures import CompanyFigures
from wafleet.actors.status import RUNNING, Status
from wafleet.http.api import ApiError, respond
from wafleet.http.context import Context
from wafleet.storage import metric_minutes
from wafleet.storage.clock import iso

BASE = "/api/whatsapp/metrics"
MAX_MINUTES = metric_minutes.KEEP_MINUTES


def _int_query(name: str, default: int, low: int, high: int) -> int:
    raw = bottle.request.query.get(name)
    if raw is None:
        return default
    if not re.fullmatch(r"[0-9]{1,5}", raw) or not low <= int(raw) <= high:
        raise ApiError(400, "invalid_query", f"{name} must be a whole number from {low} to {high}")
    return int(raw)


def _company_json(record: SessionRecord, figures: CompanyFigures | None) -> dict[str, Any]:
    figures = figures or CompanyFigures()
    connected = record.status == Status.CONNECTED
    return {
        "companyId": record.company_id,
        "status": record.status,
        # seconds the session has been connected without a break (0 when it is not)
        "uptime": round(max(0.0, time.time() - record.since / 1000), 1) if connected else 0,
        "messages": {"sent": figures.sent, "received": figures.received, "failed": figures.failed},
        "errors": {
            "total": figures.errors,
            "rate": round(figures.errors / figures.operations, 4) if figures.operations else 0.0,
        },
        "restarts": record.restarts,
    }


def install(app: bottle.Bottle, ctx: Context) -> None:
    figures = ctx.metrics.figures

    def global_metrics() -> dict[str, Any]:
        counts = ctx.directory.counts()
        return {
            "messagesSent": figures.sent,
            "messagesReceived": figures.received,
            "messagesFailed": figures.failed,
            "sessions": {
                **counts,  # by state, as before
                "active": sum(counts[s] for s in RUNNING),
                "connections": figures.connections,
                "disconnections": figures.disconnections,
            },
            "errors": {
                "total": sum(figures.errors.values()),
                "rate": figures.error_rate(),
                "breakdown": dict(sorted(figures.errors.items())),
            },
            "restarts": ctx.directory.restarts(),
            "zombies": figures.zombies,
            "healthProbes": figures.probes,
            "companies": len(ctx.directory.records),
            "streams": ctx.broadcaster.count(),
            "uptime": round(figures.uptime(), 1),
        }

    @app.get(BASE)
    def metrics() -> Any:
        ctx.auth.admin()
        return respond(200, global_metrics())

    @app.get(f"{BASE}/companies/all")
    def companies() -> Any:
        ctx.auth.admin()
        limit = _int_query("limit", 100, 1, 1000)
        cursor = bottle.request.query.get("cursor") or ""
        ids = sorted(i for i in ctx.directory.records if i > cursor)
        page = ids[:limit]
        listed = [
            _company_json(record, figures.companies.get(i))
            for i in page
            if (record := ctx.directory.get(i)) is not None
        ]
        return respond(
            200,
            {
                "success": True,
                "companies": listed,
                "nextCursor": page[-1] if len(ids) > limit else None,
                "total": len(ctx.directory.records),
            },
        )

    @app.get(f"{BASE}/performance")
    def performance() -> Any:
        ctx.auth.admin()
        return respond(200, figures.performance())

    @app.get(f"{BASE}/timeseries")
    def timeseries() -> Any:
        ctx.auth.admin()
        minutes = _int_query("minutes", MAX_MINUTES, 1, MAX_MINUTES)
        now_minute = int(time.time() // 60)
        rows = metric_minutes.since(ctx.db, now_minute - minutes + 1)
        points = [
            {
                "t": iso(row["minute"] * 60_000),
                "messagesIn": row["messages_in"],
                "messagesOut": row["messages_out"],
                "connected": row["connected"],
                "restarts": row["restarts"],
                "errors": row["errors"],
            }
            for row in rows
        ]
        return respond(200, {"intervalSeconds": 60, "minutes": minutes, "points": points})

    @app.get(f"{BASE}/rate")
    def rate() -> Any:
        ctx.auth.admin()
        return respond(200, {"windowSeconds": 60, "messagesPerMinute": figures.per_minute()})

    @app.get(f"{BASE}/alerts")
    def alerts() -> Any:
        ctx.auth.admin()
        active = ctx.alerts.json()
        return respond(200, {"alerts": active, "total": len(active)})

    @app.get("/api/whatsapp/health/metrics")
    def health() -> Any:
        ctx.auth.admin()
        active = ctx.alerts.json()
        return respond(
            200,
            {
                "status": "degraded" if active else "ok",
                "sessions": ctx.directory.counts(),
                "metrics": global_metrics(),
                "alerts": active,
                "process": ctx.process.json(),
            },
        )

    @app.get(f"{BASE}/<company_id>")
    def company(company_id: str) -> Any:
        _, record = ctx.authorised_record(company_id)
        return respond(
            200, {"success": True, "metrics": _company_json(record, figures.companies.get(company_id))}
        )
