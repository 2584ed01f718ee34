"""The Bottle application: thin routes that parse, authorise and hand over to actors."""

from __future__ import annotations

import bottle

from wafleet.actors.metrics import Metrics
from wafleet.http import (
    routes_admin,
    routes_assistant,
    routes_blocklist,
    routes_deliveries,
    routes_events,
    routes_health,
    routes_messages,
    routes_metrics,
    routes_pages,
    routes_sandbox,
    routes_send,
    routes_sessions,
    routes_webhook,
)
from wafleet.http.api import error_body, guard, refuse_undecodable_headers, respond
from wafleet.http.context import Context
from wafleet.http.contract import KEY, Contract, serve_document

OPEN_WHILE_BOOTING = ("/healthz", "/readyz", "/static/", "/api/openapi.json")


def build_app(ctx: Context, metrics: Metrics) -> bottle.Bottle:
    app = bottle.Bottle(catchall=True)
    app.config["json.enable"] = False  # every route answers through api.respond
    app.config[KEY] = Contract(ctx)  # every route declares itself there (http/contract.py)
    app.install(guard(metrics))
    app.add_hook("before_request", refuse_undecodable_headers)

    @app.hook("before_request")
    def booting() -> None:
        """Until the Fleet has loaded every company, a company's token or id may just not be
        loaded yet: 503 and come back, never a wrong 401 or 404. Liveness and readiness answer."""
        if not ctx.directory.loaded and not bottle.request.path.startswith(OPEN_WHILE_BOOTING):
            raise respond(
                503,
                {
                    "error": {
                        "code": "booting",
                        "message": f"the node is loading its companies ({ctx.directory.boot.loaded} "
                        "so far): try again in a moment",
                    }
                },
                {"Retry-After": "1"},
            )

    serve_document(app)
    routes_health.install(app, ctx)
    routes_admin.install(app, ctx)
    routes_sessions.install(app, ctx)
    routes_metrics.install(app, ctx)
    routes_webhook.install(app, ctx)
    routes_messages.install(app, ctx)
    routes_deliveries.install(app, ctx)
    routes_send.install(app, ctx)
    routes_blocklist.install(app, ctx)
    routes_pages.install(app, ctx)
    routes_events.install(app, ctx, ctx.broadcaster, ctx.settings.sse_heartbeat_ms / 1000)
    routes_assistant.install(app, ctx)
    if ctx.settings.sandbox:
        routes_sandbox.install(app, ctx)

    def error_handler(err: bottle.HTTPError) -> str:
        bottle.response.content_type = "application/json"
        status = err.status_code
        if status == 404:
            return error_body("not_found", f"no route for {bottle.request.method} {bottle.request.path}")
        if status == 405:
            return error_body("method_not_allowed", f"{bottle.request.method} is not allowed here")
        if status == 413:
            return error_body("body_too_large", "request body is too large")
        if 400 <= status < 500:
            return error_body("bad_request", str(err.body or "bad request"))
        return error_body("internal", "internal error")

    app.default_error_handler = error_handler  # type: ignore[method-assign]
    return app
