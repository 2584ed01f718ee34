"""/api/whatsapp/messages/{id}: a company's message history, newest first, by cursor."""

from __future__ import annotations

from typing import Any

import bottle

from wafleet.http.api import respond
from wafleet.http.context import Context
from wafleet.http.contract import Access, declare
from wafleet.http.fields import Query, Reply, query_int
from wafleet.storage import messages
from wafleet.storage.clock import iso

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


class Page(Query):
    """``cursor``: the ``nextCursor`` of the page before."""

    limit: query_int(1, MAX_LIMIT) = DEFAULT_LIMIT
    cursor: query_int(1, 10**18) | None = None


class MessagePage(Reply):
    messages: list[dict[str, Any]]
    nextCursor: str | None  # noqa: N815


def install(app: bottle.Bottle, ctx: Context) -> None:
    def history(company_id: str, query: Page) -> Any:
        ctx.authorised_record(company_id)
        rows, next_id = messages.page(ctx.db, company_id, query.limit, query.cursor)
        for row in rows:
            row["atIso"] = iso(row["at"])
        return respond(200, {"messages": rows, "nextCursor": str(next_id) if next_id is not None else None})

    declare(
        app, "GET", "/api/whatsapp/messages/<company_id>", history,
        summary="The company's messages in and out, newest first", tag="messages",
        access=Access.COMPANY, query=Page, ok={200: MessagePage}, twin=True,
    )  # fmt: skip
