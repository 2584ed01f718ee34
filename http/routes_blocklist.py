"""/api/whatsapp/blocklist/{id}: the numbers a company does not message and does not answer.

The company manages its own list (admin too); the node's list (WHATSAPP_BLOCKED_NUMBERS) is
shown beside it, read-only.
"""

from __future__ import annotations

from typing import Any

import bottle
from pydantic import Field

from wafleet.http.api import ApiError, respond
from wafleet.http.context import Context
from wafleet.http.contract import Access, declare
from wafleet.http.fields import MARK, Model, Phone, Reply
from wafleet.storage.blocklist import Blocklist, TooMany


class Numbers(Model):
    numbers: list[Phone]


class Listing(Reply):
    companyId: str  # noqa: N815
    numbers: list[str]
    global_: list[str] = Field(alias="global")


def install(app: bottle.Bottle, ctx: Context) -> None:
    def blocklist() -> Blocklist:
        assert ctx.blocklist is not None
        return ctx.blocklist

    def listing(company_id: str, numbers: list[str]) -> Any:
        return respond(
            200, {"companyId": company_id, "numbers": numbers, "global": list(blocklist().node_numbers)}
        )

    def read(company_id: str) -> Any:
        ctx.authorised_record(company_id)
        return listing(company_id, blocklist().numbers(company_id))

    def change(adding: bool) -> Any:
        def handler(company_id: str, body: Numbers) -> Any:
            ctx.authorised_record(company_id)
            numbers = body.numbers
            try:
                if adding:
                    return listing(company_id, blocklist().add(company_id, numbers))
                return listing(company_id, blocklist().replace(company_id, numbers))
            except TooMany as exc:
                raise ApiError(400, "too_many", str(exc)) from None

        return handler

    def remove(company_id: str, phone: str) -> Any:
        ctx.authorised_record(company_id)
        if not blocklist().remove(company_id, ctx.phone(phone, "phone")):
            raise ApiError(404, "not_found", f"{phone} is not on {company_id}'s blocklist")
        return listing(company_id, blocklist().numbers(company_id))

    one = "/api/whatsapp/blocklist/<company_id>"
    tag, company = "blocklist", Access.COMPANY
    declare(
        app, "GET", one, read, summary="The company's blocked numbers and the node's", tag=tag,
        access=company, ok={200: Listing}, twin=True,
    )  # fmt: skip
    declare(
        app, "PUT", one, change(adding=False), summary="Replace the company's blocked numbers", tag=tag,
        access=company, body=Numbers, ok={200: Listing}, twin=True,
    )  # fmt: skip
    declare(
        app, "POST", one, change(adding=True), summary="Add numbers to the company's blocklist", tag=tag,
        access=company, body=Numbers, ok={200: Listing}, twin=True,
    )  # fmt: skip
    declare(
        app, "DELETE", f"{one}/<phone>", remove, summary="Take a number off the company's blocklist",
        tag=tag, access=company, params={"phone": {"type": "string", "maxLength": 64, MARK: "phone"}},
        ok={200: Listing}, twin=True,
    )  # fmt: skip
