"""/admin/companies: create (the token is shown once), list, read, update, delete, rotate the token.

Deleting a company and rotating its token end, at once, the event streams that the old right
opened (a stream checks its right only when it opens).
"""

from __future__ import annotations

import re
from typing import Any

import bottle

from wafleet.actors import messages as m
from wafleet.actors.webhook import Wake
from wafleet.http import outbound_fields
from wafleet.http.api import ApiError, field, json_body, only_fields, respond, text
from wafleet.http.context import Context
from wafleet.storage import companies, endpoints


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 200:
        raise ApiError(400, "invalid_field", "name must be a non-empty string of at most 200 characters")
    return text(value.strip(), "name")


# What turns each link on, said when a company asks for a link this node does not offer.
LINK_NEEDS = {
    "sandbox": "start the node with WAFLEET_SANDBOX=true (or wafleet serve --demo)",
    "cloud": "set WAFLEET_ENCRYPTION_KEY (base64 of 32 random bytes) so Cloud API credentials can be stored",
    "web": "install neonize (pip install -e '.[web]') and keep WAFLEET_WEB_LINK on",
}


def _link(ctx: Context, value: Any) -> str:
    available = ctx.links.available()
    if not isinstance(value, str) or value not in LINK_NEEDS:
        raise ApiError(400, "invalid_field", f"link must be one of {', '.join(LINK_NEEDS)}")
    if value not in available:
        offered = ", ".join(available) or "none"
        raise ApiError(
            400,
            "link_unavailable",
            f"link {value!r} is not available on this node: {LINK_NEEDS[value]} (available: {offered})",
        )
    return value


CLOUD_FIELDS = {"phoneNumberId", "accessToken", "appSecret", "verifyToken"}


def _cloud(ctx: Context, company_id: str, value: Any) -> dict[str, Any]:
    """Cloud API credentials -> cloud_* columns, secrets encrypted for this company only."""
    if not isinstance(value, dict):
        raise ApiError(400, "invalid_field", "cloud must be an object {phoneNumberId, accessToken, ...}")
    unknown = sorted(set(value) - CLOUD_FIELDS)
    if unknown:
        raise ApiError(400, "unknown_field", f"unknown cloud field(s): {', '.join(unknown)}")
    if ctx.cipher is None:
        raise ApiError(400, "no_encryption_key", "set WAFLEET_ENCRYPTION_KEY to store Cloud API credentials")
    columns: dict[str, Any] = {}
    number = value.get("phoneNumberId")
    if number is not None:
        if not isinstance(number, str) or not number.isascii() or not number.isdigit() or len(number) > 64:
            raise ApiError(400, "invalid_field", "cloud.phoneNumberId must be Meta's numeric phone number id")
        owner = companies.number_owner(ctx.db, number)
        if owner is not None and owner != company_id:
            raise ApiError(409, "number_taken", "another company already uses this cloud.phoneNumberId")
        columns["cloud_phone_number_id"] = number
    for name, column in (
        ("accessToken", "cloud_token"),
        ("appSecret", "cloud_app_secret"),
        ("verifyToken", "cloud_verify_token"),
    ):
        secret = value.get(name)
        if secret is None:
            continue
        if not isinstance(secret, str) or not secret.strip() or len(secret) > 2048:
            raise ApiError(400, "invalid_field", f"cloud.{name} must be a non-empty string")
        text(secret, f"cloud.{name}")
        columns[column] = ctx.cipher.encrypt(secret.strip(), aad=company_id)
    return columns


def _limit(default: int = 100) -> int:
    raw = bottle.request.query.get("limit")
    if raw is None:
        return default
    # not str.isdigit(): it accepts "²", and int() refuses more than 4300 digits
    if not re.fullmatch(r"[0-9]{1,4}", raw) or not 1 <= int(raw) <= 1000:
        raise ApiError(400, "invalid_query", "limit must be a whole number from 1 to 1000")
    return int(raw)


def install(app: bottle.Bottle, ctx: Context) -> None:
    @app.post("/admin/companies")
    def create_company() -> Any:
        ctx.auth.admin()
        data = json_body(required=True)
        only_fields(data, {"id", "name", "phone", "link", "cloud", *OUTBOUND_FIELDS})
        company_id = ctx.company_id(field(data, "id", str, required=True))
        name = _name(data.get("name"))
        phone = ctx.phone(data["phone"], "phone") if data.get("phone") is not None else None
        link = _link(ctx, data.get("link", ctx.settings.guide.provider or "sandbox"))
        cloud = _cloud(ctx, company_id, data["cloud"]) if data.get("cloud") is not None else None
        outbound = outbound_fields.parse(ctx, company_id, data)
        if link == "cloud" and not (cloud and "cloud_phone_number_id" in cloud and "cloud_token" in cloud):
            raise ApiError(
                400, "invalid_field", "a cloud company needs cloud.phoneNumberId and cloud.accessToken"
            )
        record, token = ctx.tree.call(m.CreateCompany(company_id, name, phone, link, cloud))
        if cloud and "cloud_phone_number_id" in cloud:
            ctx.tree.tell_child("inbox", Wake())  # payloads kept for this number, if any
        outbound_fields.save(ctx, company_id, outbound)
        return respond(201, {"company": _company_json(ctx, record), "token": token})

    @app.get("/admin/companies")
    def list_companies() -> Any:
        ctx.auth.admin()
        limit = _limit()
        cursor = bottle.request.query.get("cursor") or ""
        ids = sorted(i for i in ctx.directory.records if i > cursor)
        page = ids[:limit]
        listed = [ctx.directory.records[i].company_json() for i in page if i in ctx.directory.records]
        next_cursor = page[-1] if len(ids) > limit else None
        return respond(
            200, {"companies": listed, "nextCursor": next_cursor, "total": len(ctx.directory.records)}
        )

    @app.get("/admin/companies/<company_id>")
    def get_company(company_id: str) -> Any:
        ctx.auth.admin()
        record = _existing(ctx, company_id)
        return respond(200, {"company": _company_json(ctx, record), "session": record.status_json()})

    @app.route("/admin/companies/<company_id>", method="PATCH")
    def update_company(company_id: str) -> Any:
        ctx.auth.admin()
        _existing(ctx, company_id)
        data = json_body(required=True)
        only_fields(data, {"name", "phone", "link", "cloud", *OUTBOUND_FIELDS})
        outbound = outbound_fields.parse(ctx, company_id, data)
        fields: dict[str, Any] = {}
        if data.get("cloud") is not None:
            fields.update(_cloud(ctx, company_id, data["cloud"]))
        if "name" in data:
            fields["name"] = _name(data["name"])
        if "phone" in data:
            fields["phone"] = ctx.phone(data["phone"], "phone") if data["phone"] is not None else None
        if "link" in data:
            fields["link"] = _link(ctx, data["link"])
        if not fields and not outbound:
            raise ApiError(
                400,
                "invalid_field",
                "nothing to update: send name, phone, link, cloud, webhooks or notificationEmail",
            )
        record = ctx.tree.call(m.UpdateCompany(company_id, fields)) if fields else _existing(ctx, company_id)
        if "cloud_phone_number_id" in fields:
            ctx.tree.tell_child("inbox", Wake())
        outbound_fields.save(ctx, company_id, outbound)
        return respond(200, {"company": _company_json(ctx, record)})

    @app.delete("/admin/companies/<company_id>")
    def delete_company(company_id: str) -> Any:
        ctx.auth.admin()
        _existing(ctx, company_id)
        ctx.tree.call(m.DeleteCompany(company_id))
        if ctx.assistant is not None:
            ctx.assistant.forget(company_id)
        ctx.broadcaster.end(lambda listener: listener.company_id == company_id)
        return respond(200, {"deleted": company_id})

    @app.post("/admin/companies/<company_id>/token")
    def rotate_token(company_id: str) -> Any:
        ctx.auth.admin()
        _existing(ctx, company_id)
        token = ctx.tree.call(m.RotateToken(company_id))
        ctx.broadcaster.end(
            lambda listener: listener.company_id == company_id and not getattr(listener.owner, "admin", False)
        )
        return respond(200, {"companyId": company_id, "token": token})


OUTBOUND_FIELDS = {"webhooks", "notificationEmail"}


def _company_json(ctx: Context, record: Any) -> dict[str, Any]:
    """The company as the admin sees it, with its webhooks (never their secrets) and email."""
    return {**record.company_json(), **endpoints.company_config(ctx.db, record.company_id)}


def _existing(ctx: Context, company_id: str) -> Any:
    ctx.company_id(company_id)
    record = ctx.directory.get(company_id)
    if record is None:
        raise ApiError(404, "not_found", f"company {company_id!r} does not exist")
    return record
