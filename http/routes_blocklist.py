"""/api/whatsapp/blocklist/{id}: the numbers a company does not message and does not answer.

The company manages its own list (admin too); the node's list (WHATSAPP_BLOCKED_NUMBERS) is
shown beside it, read-only.
"""

from __future__ import annotations

from typing import Any

import bottle

from wafleet.http.api import ApiError, json_body, only_fields, respond
from wafleet.http.context import Context
from wafleet.storage.blocklist import Blocklist, TooMany


def install(app: bottle.Bottle, ctx: Context) -> None:
    def blocklist() -> Blocklist:
        assert ctx.blocklist is not None
        return ctx.blocklist

    def numbers_field() -> list[str]:
        data = json_body(required=True)
        only_fields(data, {"numbers"})
        numbers = data.get("numbers")
        if not isinstance(numbers, list):
            raise ApiError(400, "invalid_field", "numbers must be a list of phone numbers")
        return [ctx.phone(n, "numbers[]") for n in numbers]

    def listing(company_id: str, numbers: list[str]) -> Any:
        return respond(
            200, {"companyId": company_id, "numbers": numbers, "global": list(blocklist().node_numbers)}
        )

    def read(company_id: str) -> Any:
        ctx.authorised_record(company_id)
        return listing(company_id, blocklist().numbers(company_id))

    def replace(company_id: str) -> Any:
        ctx.authorised_record(company_id)
        try:
            return listing(company_id, blocklist().replace(company_id, numbers_field()))
        except TooMany as exc:
            raise ApiError(400, "too_many", str(exc)) from None

    def add(company_id: str) -> Any:
        ctx.authorised_record(company_id)
        try:
            return listing(company_id, blocklist().add(company_id, numbers_field()))
        except TooMany as exc:
            raise ApiError(400, "too_many", str(exc)) from None

    def remove(company_id: str, phone: str) -> Any:
        ctx.authorised_record(company_id)
        if not blocklist().remove(company_id, ctx.phone(phone, "phone")):
            raise ApiError(404, "not_found", f"{phone} is not on {company_id}'s blocklist")
        return listing(company_id, blocklist().numbers(company_id))

    base = "/api/whatsapp/blocklist"
    routes = [("GET", "", read), ("PUT", "", replace), ("POST", "", add), ("DELETE", "/<phone>", remove)]
    for method, tail, callback in routes:
        app.route(f"{base}/<company_id>{tail}", method=method, callback=callback)
    if not ctx.settings.multi_tenant:  # single-tenant twins, like the session routes
        default = ctx.settings.default_company_id
        for method, tail, callback in routes:
            app.route(
                f"{base}{tail}",
                method=method,
                callback=lambda *a, _cb=callback, **kw: _cb(default, *a, **kw),
            )
