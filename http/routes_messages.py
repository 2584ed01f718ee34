"""/api/whatsapp/messages/{id}: a company's message history, newest first, by cursor."""

from __future__ import annotations

from typing import Any

import bottle

from wafleet.http.api import int_query, respond
from wafleet.http.context import Context
from wafleet.storage import messages
from wafleet.storage.clock import iso

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


def install(app: bottle.Bottle, ctx: Context) -> None:
    def history(company_id: str) -> Any:
        ctx.authorised_record(company_id)
        limit = int_query("limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        cursor = int_query("cursor", None, 1, 10**18)
        rows, next_id = messages.page(ctx.db, company_id, limit or DEFAULT_LIMIT, cursor)
        for row in rows:
            row["atIso"] = iso(row["at"])
        return respond(200, {"messages": rows, "nextCursor": str(next_id) if next_id is not None else None})

    app.route("/api/whatsapp/messages/<company_id>", method="GET", callback=history)
    if not ctx.settings.multi_tenant:  # single-tenant twin, like the session routes
        default = ctx.settings.default_company_id
        app.route("/api/whatsapp/messages", method="GET", callback=lambda: history(default))
