"""/admin/companies: create (the token is shown once), list, read, update, delete, rotate the token.

Deleting a company and rotating its token end, at once, the event streams that the old right
opened (a stream checks its right only when it opens).
"""

from __future__ import annotations

from typing import Any, Literal

import bottle

from wafleet.actors import messages as m
from wafleet.actors.webhook import Wake
from wafleet.http import outbound_fields
from wafleet.http.api import ApiError, respond
from wafleet.http.context import Context
from wafleet.http.contract import Access, declare
from wafleet.http.fields import (
    NOT_BLANK,
    CompanyId,
    Model,
    Phone,
    Query,
    Reply,
    optional,
    query_int,
    text,
)
from wafleet.http.outbound_fields import Outbound
from wafleet.http.routes_sessions import SessionStatus
from wafleet.storage import companies, endpoints

Name = text(200, pattern=NOT_BLANK)
Secret = text(2048, pattern=NOT_BLANK)
Link = Literal["sandbox", "cloud", "web"]

# What turns each link on, said when a company asks for a link this node does not offer.
LINK_NEEDS = {
    "sandbox": "start the node with WAFLEET_SANDBOX=true (or wafleet serve --demo)",
    "cloud": "set WAFLEET_ENCRYPTION_KEY (base64 of 32 random bytes) so Cloud API credentials can be stored",
    "web": "install neonize (pip install -e '.[web]') and keep WAFLEET_WEB_LINK on",
}


class Cloud(Model):
    """Cloud API credentials; the secrets are stored encrypted for this company only."""

    phoneNumberId: text(64, pattern=r"^[0-9]{1,64}$") | None = None  # noqa: N815
    accessToken: Secret | None = None  # noqa: N815
    appSecret: Secret | None = None  # noqa: N815
    verifyToken: Secret | None = None  # noqa: N815


class CompanyChange(Outbound):
    """A PATCH: the fields sent change; ``phone``: null clears it."""

    name: Name = optional()
    phone: Phone | None = None
    link: Link = optional()
    cloud: Cloud | None = None


class NewCompany(CompanyChange):
    """A company to create; ``link`` defaults to WHATSAPP_PROVIDER (else sandbox)."""

    id: CompanyId
    name: Name


class CompanyPage(Query):
    """``cursor``: the last id seen (``nextCursor``); the page holds the ids after it."""

    limit: query_int(1, 1000) = 100
    cursor: str = ""


class CloudView(Reply):
    phoneNumberId: str  # noqa: N815


class WebhookView(Reply):
    url: str
    events: list[str]


class CompanyView(Reply):
    id: str
    name: str
    phone: str | None
    link: str
    createdAt: str | None  # noqa: N815
    status: str
    cloud: CloudView | None
    webhooks: list[WebhookView] | None = None
    notificationEmail: str | None = None  # noqa: N815


class Created(Reply):
    company: CompanyView
    token: str


class OneCompany(Reply):
    company: CompanyView


class CompanyAndSession(Reply):
    company: CompanyView
    session: SessionStatus


class CompanyList(Reply):
    companies: list[CompanyView]
    nextCursor: str | None  # noqa: N815
    total: int


class Deleted(Reply):
    deleted: str


class NewToken(Reply):
    companyId: str  # noqa: N815
    token: str


def _link(ctx: Context, value: str) -> str:
    available = ctx.links.available()
    if value not in LINK_NEEDS:
        raise ApiError(400, "invalid_field", f"link must be one of {', '.join(LINK_NEEDS)}")
    if value not in available:
        offered = ", ".join(available) or "none"
        raise ApiError(
            400,
            "link_unavailable",
            f"link {value!r} is not available on this node: {LINK_NEEDS[value]} (available: {offered})",
        )
    return value


def _cloud(ctx: Context, company_id: str, value: Cloud) -> dict[str, Any]:
    """Cloud API credentials -> cloud_* columns, secrets encrypted for this company only."""
    if ctx.cipher is None:
        raise ApiError(400, "no_encryption_key", "set WAFLEET_ENCRYPTION_KEY to store Cloud API credentials")
    columns: dict[str, Any] = {}
    number = value.phoneNumberId
    if number is not None:
        owner = companies.number_owner(ctx.db, number)
        if owner is not None and owner != company_id:
            raise ApiError(409, "number_taken", "another company already uses this cloud.phoneNumberId")
        columns["cloud_phone_number_id"] = number
    for secret, column in (
        (value.accessToken, "cloud_token"),
        (value.appSecret, "cloud_app_secret"),
        (value.verifyToken, "cloud_verify_token"),
    ):
        if secret is not None:
            columns[column] = ctx.cipher.encrypt(secret.strip(), aad=company_id)
    return columns


def install(app: bottle.Bottle, ctx: Context) -> None:
    def create_company(body: NewCompany) -> Any:
        company_id = body.id
        name = body.name.strip()
        phone = body.phone
        link = _link(ctx, body.link or ctx.settings.guide.provider or "sandbox")
        cloud = _cloud(ctx, company_id, body.cloud) if body.cloud is not None else None
        outbound = outbound_fields.parse(ctx, company_id, body)
        if link == "cloud" and not (cloud and "cloud_phone_number_id" in cloud and "cloud_token" in cloud):
            raise ApiError(
                400, "invalid_field", "a cloud company needs cloud.phoneNumberId and cloud.accessToken"
            )
        record, token = ctx.tree.call(m.CreateCompany(company_id, name, phone, link, cloud))
        if cloud and "cloud_phone_number_id" in cloud:
            ctx.tree.tell_child("inbox", Wake())  # payloads kept for this number, if any
        outbound_fields.save(ctx, company_id, outbound)
        return respond(201, {"company": _company_json(ctx, record), "token": token})

    def list_companies(query: CompanyPage) -> Any:
        ids = sorted(i for i in ctx.directory.records if i > query.cursor)
        page = ids[: query.limit]
        listed = [ctx.directory.records[i].company_json() for i in page if i in ctx.directory.records]
        next_cursor = page[-1] if len(ids) > query.limit else None
        return respond(
            200, {"companies": listed, "nextCursor": next_cursor, "total": len(ctx.directory.records)}
        )

    def get_company(company_id: str) -> Any:
        record = _existing(ctx, company_id)
        return respond(200, {"company": _company_json(ctx, record), "session": record.status_json()})

    def update_company(company_id: str, body: CompanyChange) -> Any:
        _existing(ctx, company_id)
        sent = body.model_fields_set
        outbound = outbound_fields.parse(ctx, company_id, body)
        fields: dict[str, Any] = {}
        if body.cloud is not None:
            fields.update(_cloud(ctx, company_id, body.cloud))
        if "name" in sent:
            fields["name"] = body.name.strip()
        if "phone" in sent:
            fields["phone"] = body.phone
        if "link" in sent:
            fields["link"] = _link(ctx, body.link)
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

    def delete_company(company_id: str) -> Any:
        _existing(ctx, company_id)
        ctx.tree.call(m.DeleteCompany(company_id))
        if ctx.assistant is not None:
            ctx.assistant.forget(company_id)
        ctx.broadcaster.end(lambda listener: listener.company_id == company_id)
        return respond(200, {"deleted": company_id})

    def rotate_token(company_id: str) -> Any:
        _existing(ctx, company_id)
        token = ctx.tree.call(m.RotateToken(company_id))
        ctx.broadcaster.end(
            lambda listener: listener.company_id == company_id and not getattr(listener.owner, "admin", False)
        )
        return respond(200, {"companyId": company_id, "token": token})

    base, one = "/admin/companies", "/admin/companies/<company_id>"
    tag, admin = "companies", Access.ADMIN
    declare(
        app, "POST", base, create_company, summary="Create a company (its token is shown once)", tag=tag,
        access=admin, body=NewCompany, ok={201: Created}, errors=(409, 504),
    )  # fmt: skip
    declare(
        app, "GET", base, list_companies, summary="List companies by id, one page at a time", tag=tag,
        access=admin, query=CompanyPage, ok={200: CompanyList},
    )  # fmt: skip
    declare(
        app, "GET", one, get_company, summary="A company and its session", tag=tag, access=admin,
        ok={200: CompanyAndSession},
    )  # fmt: skip
    declare(
        app, "PATCH", one, update_company, summary="Change a company (a webhooks list replaces the old)",
        tag=tag, access=admin, body=CompanyChange, ok={200: OneCompany}, errors=(409, 504),
    )  # fmt: skip
    declare(
        app, "DELETE", one, delete_company, summary="Delete a company, its session and its data", tag=tag,
        access=admin, ok={200: Deleted}, errors=(409, 504),
    )  # fmt: skip
    declare(
        app, "POST", f"{one}/token", rotate_token, summary="Rotate a company's token (the old one stops)",
        tag=tag, access=admin, ok={200: NewToken}, errors=(409, 504),
    )  # fmt: skip


def _company_json(ctx: Context, record: Any) -> dict[str, Any]:
    """The company as the admin sees it, with its webhooks (never their secrets) and email."""
    return {**record.company_json(), **endpoints.company_config(ctx.db, record.company_id)}


def _existing(ctx: Context, company_id: str) -> Any:
    ctx.company_id(company_id)
    record = ctx.directory.get(company_id)
    if record is None:
        raise ApiError(404, "not_found", f"company {company_id!r} does not exist")
    return record
