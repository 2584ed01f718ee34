"""/api/whatsapp/metrics…: the node's figures in the shapes our users' scripts read.

Admin sees everything; a company's token opens only ``/api/whatsapp/metrics/{its id}``. Counts
are since the node started (``uptime``); rates, percentiles and alerts cover the metrics window;
the timeseries is read from the database, so it outlives restarts.
"""

from __future__ import annotations

import time
from typing import Any

import bottle

from wafleet.actors.directory import SessionRecord
from wafleet.actors.figures import CompanyFigures
from wafleet.actors.status import RUNNING, Status
from wafleet.http.api import respond
from wafleet.http.context import Context
from wafleet.http.contract import Access, Content, declare
from wafleet.http.fields import Query, Reply, query_int
from wafleet.storage import metric_minutes
from wafleet.storage.clock import iso

BASE = "/api/whatsapp/metrics"
MAX_MINUTES = metric_minutes.KEEP_MINUTES


class CompanyPage(Query):
    limit: query_int(1, 1000) = 100
    cursor: str = ""  # the last id seen


class Window(Query):
    minutes: query_int(1, MAX_MINUTES) = MAX_MINUTES


class Sessions(Reply):
    active: int
    connections: int
    disconnections: int


class Errors(Reply):
    total: int
    rate: float
    breakdown: dict[str, int]


class GlobalMetrics(Reply):
    messagesSent: int  # noqa: N815
    messagesReceived: int  # noqa: N815
    messagesFailed: int  # noqa: N815
    sessions: Sessions
    errors: Errors
    restarts: int
    zombies: int
    healthProbes: int  # noqa: N815
    companies: int
    streams: int
    uptime: float


class CompanyMessages(Reply):
    sent: int
    received: int
    failed: int


class CompanyErrors(Reply):
    total: int
    rate: float


class CompanyMetrics(Reply):
    companyId: str  # noqa: N815
    status: str
    uptime: float
    messages: CompanyMessages
    errors: CompanyErrors
    restarts: int


class OneCompany(Reply):
    success: bool
    metrics: CompanyMetrics


class AllCompanies(Reply):
    success: bool
    companies: list[CompanyMetrics]
    nextCursor: str | None  # noqa: N815
    total: int


class Point(Reply):
    t: str | None
    messagesIn: int  # noqa: N815
    messagesOut: int  # noqa: N815
    connected: int
    restarts: int
    errors: int


class Timeseries(Reply):
    intervalSeconds: int  # noqa: N815
    minutes: int
    points: list[Point]


class PerMinute(Reply):
    sent: int
    received: int
    total: int


class Rate(Reply):
    windowSeconds: int  # noqa: N815
    messagesPerMinute: PerMinute  # noqa: N815


class Alerts(Reply):
    alerts: list[dict[str, Any]]
    total: int


class Health(Reply):
    status: str
    sessions: dict[str, int]
    metrics: GlobalMetrics
    alerts: list[dict[str, Any]]
    process: dict[str, Any]


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

    def metrics() -> Any:
        return respond(200, global_metrics())

    def companies(query: CompanyPage) -> Any:
        limit = query.limit
        ids = sorted(i for i in ctx.directory.records if i > query.cursor)
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

    def performance() -> Any:
        return respond(200, figures.performance())

    def timeseries(query: Window) -> Any:
        minutes = query.minutes
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

    def rate() -> Any:
        return respond(200, {"windowSeconds": 60, "messagesPerMinute": figures.per_minute()})

    def alerts() -> Any:
        active = ctx.alerts.json()
        return respond(200, {"alerts": active, "total": len(active)})

    def health() -> Any:
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

    def company(company_id: str) -> Any:
        _, record = ctx.authorised_record(company_id)
        return respond(
            200, {"success": True, "metrics": _company_json(record, figures.companies.get(company_id))}
        )

    tag, admin = "metrics", Access.ADMIN
    declare(
        app, "GET", BASE, metrics, summary="The node's figures: messages, sessions, errors", tag=tag,
        access=admin, ok={200: GlobalMetrics},
    )  # fmt: skip
    declare(
        app, "GET", f"{BASE}/companies/all", companies, summary="Every company's figures, paged", tag=tag,
        access=admin, query=CompanyPage, ok={200: AllCompanies},
    )  # fmt: skip
    declare(
        app, "GET", f"{BASE}/performance", performance, tag=tag, access=admin,
        summary="p50/p95/p99 latency per route and per operation",
        ok={200: Content(schema={"type": "object"})},
    )  # fmt: skip
    declare(
        app, "GET", f"{BASE}/timeseries", timeseries, summary="Per-minute points of the last 24 h", tag=tag,
        access=admin, query=Window, ok={200: Timeseries},
    )  # fmt: skip
    declare(
        app, "GET", f"{BASE}/rate", rate, summary="Messages per minute now", tag=tag, access=admin,
        ok={200: Rate},
    )  # fmt: skip
    declare(
        app, "GET", f"{BASE}/alerts", alerts, summary="The alerts firing now", tag=tag, access=admin,
        ok={200: Alerts},
    )  # fmt: skip
    declare(
        app, "GET", "/api/whatsapp/health/metrics", health, tag=tag, access=admin,
        summary="Health: sessions by state, figures, alerts, the process's memory, files and CPU",
        ok={200: Health},
    )  # fmt: skip
    declare(
        app, "GET", f"{BASE}/<company_id>", company, summary="One company's figures", tag=tag,
        access=Access.COMPANY, ok={200: OneCompany},
    )  # fmt: skip
