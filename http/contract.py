"""The API's contract: every route declares itself here, and the OpenAPI document is built from
the same declarations.

``declare`` mounts a route and records what it takes (who may call it, its path parameters, its
query and body models) and what it answers. The registered callback checks the caller's right,
then validates the query string and the body against their pydantic models and hands the
validated models to the handler; ``document`` turns the declarations into OpenAPI 3.1, whose
schemas are those same models' JSON Schema. A route cannot be served without being described.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import bottle
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema

from wafleet.http.api import ApiError, json_body
from wafleet.http.context import Context
from wafleet.http.fields import MARK, Reply, first_error, node_schema

KEY = "wafleet.contract"


class Access(enum.Enum):
    """Who may call a route, and how the document says so."""

    PUBLIC = "public"  # no credential (health, the document itself, static files)
    ADMIN = "admin"  # the admin token
    COMPANY = "company"  # the admin token or the token of the company the path names
    TOKEN = "token"  # the admin token or any company's (the route checks what it touches)
    PAGE = "page"  # a person's page: the login cookie, or a login form
    META = "meta"  # Meta's servers: the verify token, or an X-Hub-Signature-256 over the body


SECURITY: dict[Access, list[dict[str, list[str]]]] = {
    Access.PUBLIC: [],
    Access.ADMIN: [{"adminToken": []}, {"adminHeader": []}, {"pageSession": []}],
    Access.COMPANY: [{"adminToken": []}, {"adminHeader": []}, {"companyToken": []}, {"pageSession": []}],
    Access.TOKEN: [{"adminToken": []}, {"adminHeader": []}, {"companyToken": []}, {"pageSession": []}],
    Access.PAGE: [{}, {"pageSession": []}],
    Access.META: [{}, {"metaSignature": []}],
}

SECURITY_SCHEMES = {
    "adminToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "The admin token (WAFLEET_ADMIN_TOKEN): opens every route.",
    },
    "adminHeader": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Admin-Token",
        "description": "The admin token in a header of its own (admin routes only).",
    },
    "companyToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "A company's token (returned once when the company is created or its token "
        "rotated): opens that company's routes and nothing else. Same header as the admin token.",
    },
    "pageSession": {
        "type": "apiKey",
        "in": "cookie",
        "name": "wafleet_session",
        "description": "The login cookie of the dashboard or a connect page (set by the login forms); "
        "unsafe requests with it must come from the node's own pages.",
    },
    "metaSignature": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Hub-Signature-256",
        "description": "Meta's signature of a webhook POST: sha256= and the hex HMAC-SHA256 of the raw "
        "body with the app secret.",
    },
}

ERROR_WORDS = {
    400: "Bad input: the message names what is wrong",
    401: "No credential, or one that is not valid",
    403: "The credential does not open this route",
    404: "Not found",
    405: "Method not allowed",
    408: "The request body came too slowly",
    409: "The resource is in the wrong state for this",
    413: "The request body is too large",
    415: "The body is not application/json",
    429: "Too many requests: retry after Retry-After seconds",
    500: "Internal error",
    503: "Not available now (booting, at capacity, a dependency down): retry after Retry-After seconds",
    504: "The session did not answer in time",
}
RETRY_STATUSES = (429, 503)


class ErrorDetail(Reply):
    code: str
    message: str
    retryAfter: int | None = None
    field: str | None = None


class ErrorBody(Reply):
    """Every error: ``{"error": {"code", "message"}}``; a 429 also says ``retryAfter``."""

    error: ErrorDetail


@dataclass(frozen=True)
class Content:
    """A response (or request) body: a media type and its schema (a model or a plain schema)."""

    media: str = "application/json"
    model: type[BaseModel] | None = None
    schema: dict[str, Any] | None = None
    headers: tuple[str, ...] = ()
    description: str = "OK"


PathParam = dict[str, Any]  # a path parameter's JSON Schema


@dataclass
class Operation:
    method: str
    rule: str
    summary: str
    tag: str
    access: Access
    params: dict[str, PathParam]
    query: type[BaseModel] | None
    body: type[BaseModel] | None
    body_required: bool
    body_error: str | None
    payload: Content | None  # a body the route reads itself (documented, not validated here)
    replies: dict[int, list[Content]]
    errors: tuple[int, ...]
    headers: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def path(self) -> str:
        """The OpenAPI path: ``<company_id>`` -> ``{company_id}``."""
        out = self.rule
        for name in self.params:
            out = out.replace(f"<{name}>", f"{{{name}}}").replace(f"<{name}:path>", f"{{{name}}}")
        return out


class Contract:
    """The declarations of one app (one per node: what it serves depends on its settings)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.operations: list[Operation] = []

    # -- mounting -------------------------------------------------------------------------------
    def mount(self, app: bottle.Bottle, op: Operation, handler: Callable[..., Any], twin: bool) -> None:
        self.operations.append(op)
        app.route(op.rule, method=op.method, callback=self._callback(op, handler, None))
        if twin and not self.ctx.settings.multi_tenant:
            # single-tenant mode: the same route without the company segment, for the default one
            default = self.ctx.settings.default_company_id
            params = {k: v for k, v in op.params.items() if k != "company_id"}
            rule = op.rule.replace("/<company_id>", "")
            twin_op = Operation(**{**op.__dict__, "rule": rule, "params": params})
            self.operations.append(twin_op)
            app.route(rule, method=op.method, callback=self._callback(twin_op, handler, default))

    def patterns(self) -> dict[str, re.Pattern[str]]:
        """The node's own patterns for phones and company ids (settings)."""
        settings = self.ctx.settings
        return {"phone": settings.allowed_phone_pattern, "company_id": settings.company_id_pattern}

    def _callback(
        self, op: Operation, handler: Callable[..., Any], company: str | None
    ) -> Callable[..., Any]:
        def callback(**kwargs: Any) -> Any:
            if company is not None:
                kwargs["company_id"] = company
            self._gate(op.access, kwargs.get("company_id"))
            if op.query is not None:
                kwargs["query"] = _validate_query(op.query, self.patterns())
            if op.body is not None:
                kwargs["body"] = _validate_body(op.body, op.body_required, op.body_error, self.patterns())
            return handler(**kwargs)

        callback.__name__ = getattr(handler, "__name__", "route")
        return callback

    def _gate(self, access: Access, company_id: str | None) -> None:
        """The caller's right, and the company id's form, before anything else: a stranger
        learns nothing from how its body was judged."""
        auth = self.ctx.auth
        if access is Access.ADMIN:
            auth.admin()
            if company_id is not None:
                self.ctx.company_id(company_id)
        elif access is Access.COMPANY:
            assert company_id is not None
            principal = auth.principal(company_id)
            self.ctx.company_id(company_id)
            if not principal.admin and principal.company_id != company_id:
                raise ApiError(403, "forbidden", "this token does not open this company's routes")
        elif access is Access.TOKEN:
            auth.principal()

    # -- the document ---------------------------------------------------------------------------
    def document(self) -> dict[str, Any]:
        models: list[tuple[type[BaseModel], str]] = [(ErrorBody, "serialization")]
        for op in self.operations:
            if op.body is not None:
                models.append((op.body, "validation"))
            for contents in op.replies.values():
                models.extend((c.model, "serialization") for c in contents if c.model is not None)
        refs, defs = models_json_schema(models, ref_template="#/components/schemas/{model}")
        schemas = defs.get("$defs", {})
        paths: dict[str, dict[str, Any]] = {}
        for op in self.operations:
            methods = ["get"] if op.method == "ANY" else [op.method.lower()]
            for method in methods:
                paths.setdefault(op.path, {})[method] = self._operation(op, refs)
        document = {
            "openapi": "3.1.0",
            "info": {
                "title": "wafleet",
                "version": "1",
                "description": "The WhatsApp sessions of many companies, on one node. Errors are "
                '`{"error": {"code", "message"}}`; 429 and 503 carry Retry-After.',
            },
            "paths": paths,
            "components": {"schemas": schemas, "securitySchemes": SECURITY_SCHEMES},
        }
        return node_schema(document, self.patterns())

    def _operation(self, op: Operation, refs: dict[Any, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "operationId": _operation_id(op),
            "summary": op.summary,
            "tags": [op.tag],
            "security": SECURITY[op.access],
        }
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": schema}
            for name, schema in op.params.items()
        ]
        if op.query is not None:
            schema = op.query.model_json_schema(mode="validation")
            required = set(schema.get("required", ()))
            for name, prop in schema.get("properties", {}).items():
                prop = {k: v for k, v in prop.items() if k != "title"}
                parameters.append({"name": name, "in": "query", "required": name in required, "schema": prop})
        for name, schema in op.headers.items():
            parameters.append({"name": name, "in": "header", "required": False, "schema": schema})
        if parameters:
            out["parameters"] = parameters
        if op.body is not None:
            out["requestBody"] = {
                "required": op.body_required,
                "content": {"application/json": {"schema": refs[(op.body, "validation")]}},
            }
        elif op.payload is not None:
            schema = op.payload.schema or {}
            out["requestBody"] = {"required": True, "content": {op.payload.media: {"schema": schema}}}
        responses: dict[str, Any] = {}
        for status, contents in sorted(op.replies.items()):
            entry: dict[str, Any] = {"description": contents[0].description}
            for content in contents:
                if content.model is not None:
                    schema = refs[(content.model, "serialization")]
                    entry.setdefault("content", {})[content.media] = {"schema": schema}
                elif content.schema is not None:
                    entry.setdefault("content", {})[content.media] = {"schema": content.schema}
                for header in content.headers:
                    entry.setdefault("headers", {})[header] = {"schema": {"type": "string"}}
            responses[str(status)] = entry
        # The HTTP server refuses a request line past its limit before any route sees it.
        responses.setdefault("414", {"description": "The request line is too long"})
        for status in sorted(self._errors(op)):
            if str(status) in responses:
                continue
            entry = {
                "description": ERROR_WORDS.get(status, "Error"),
                "content": {"application/json": {"schema": refs[(ErrorBody, "serialization")]}},
            }
            if status in RETRY_STATUSES:
                entry["headers"] = {"Retry-After": {"schema": {"type": "string", "pattern": "^[0-9]+$"}}}
            if status == 401:
                entry["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
            responses[str(status)] = entry
        out["responses"] = responses
        return out

    @staticmethod
    def _errors(op: Operation) -> set[int]:
        """The statuses a route may answer with besides its own: every route refuses an
        undecodable header (400) and answers 503 while the node boots; credentials bring 401,
        403 and 429; a body brings 408, 413 and 415; a path parameter, 404."""
        out = {400, 503, *op.errors}
        if op.access in (Access.ADMIN, Access.COMPANY, Access.TOKEN):
            out |= {401, 403, 429}
        if op.body is not None:
            out |= {408, 413, 415}
        if op.params:
            out.add(404)
        return out


def contract_of(app: bottle.Bottle) -> Contract:
    contract = app.config.get(KEY)
    assert isinstance(contract, Contract), "build_app puts the contract on the app first"
    return contract


def declare(
    app: bottle.Bottle,
    method: str,
    rule: str,
    handler: Callable[..., Any],
    *,
    summary: str,
    tag: str,
    access: Access,
    params: dict[str, PathParam] | None = None,
    query: type[BaseModel] | None = None,
    body: type[BaseModel] | None = None,
    body_required: bool = True,
    body_error: str | None = None,
    payload: Content | None = None,
    ok: dict[int, Content | list[Content] | type[BaseModel]] | None = None,
    errors: tuple[int, ...] = (),
    headers: dict[str, dict[str, Any]] | None = None,
    twin: bool = False,
) -> None:
    """Mount ``handler`` on ``method rule`` and describe it. The handler gets the path
    parameters, and ``query``/``body`` as validated models when the route declares them.
    ``twin``: in single-tenant mode the route is also served without its company segment."""
    contract = contract_of(app)
    params = dict(params or {})
    if "<company_id>" in rule:
        params.setdefault("company_id", {"type": "string", "maxLength": 64, MARK: "company_id"})
    replies = {
        status: reply
        if isinstance(reply, list)
        else [reply if isinstance(reply, Content) else Content(model=reply)]
        for status, reply in (ok or {200: Content(schema={"type": "object"})}).items()
    }
    op = Operation(
        method=method,
        rule=rule,
        summary=summary,
        tag=tag,
        access=access,
        params=params,
        query=query,
        body=body,
        body_required=body_required,
        body_error=body_error,
        payload=payload,
        replies=replies,
        errors=errors,
        headers=headers or {},
    )
    contract.mount(app, op, handler, twin)


def _operation_id(op: Operation) -> str:
    words = [w.strip("<>").replace(":path", "") for w in op.rule.strip("/").split("/") if w]
    name = "_".join(w.replace("-", "_").replace(".", "_") for w in words) or "root"
    return f"{op.method.lower() if op.method != 'ANY' else 'get'}_{name}"


def _validate_body(
    model: type[BaseModel], required: bool, error_code: str | None, patterns: dict[str, re.Pattern[str]]
) -> BaseModel:
    data = json_body(required=required)
    try:
        return model.model_validate(data, context={"patterns": patterns})
    except ValidationError as exc:
        kind, path, message = first_error(exc, model, patterns)
        if error_code is not None:
            raise ApiError(400, error_code, message, field=path) from None
        code = {"unknown": "unknown_field", "invalid": "invalid_field"}.get(kind, kind)
        raise ApiError(400, code, message) from None


def _validate_query(model: type[BaseModel], patterns: dict[str, re.Pattern[str]]) -> BaseModel:
    query = bottle.request.query
    values: dict[str, Any] = {}
    for name in query.keys():
        value = query.getunicode(name)
        values[name] = value if value is not None else query.get(name)  # not UTF-8: as sent
    try:
        return model.model_validate(values, context={"patterns": patterns})
    except ValidationError as exc:
        _, _, message = first_error(exc, model, patterns)
        raise ApiError(400, "invalid_query", message) from None


def serve_document(app: bottle.Bottle) -> None:
    """``GET /api/openapi.json``: this node's document (no credential: it holds no secret)."""
    cache: dict[str, str] = {}

    def openapi() -> Any:
        if "doc" not in cache:
            cache["doc"] = json.dumps(contract_of(app).document())
        return bottle.HTTPResponse(
            body=cache["doc"], status=200, headers={"Content-Type": "application/json"}
        )

    declare(
        app,
        "GET",
        "/api/openapi.json",
        openapi,
        summary="This document: the node's routes as OpenAPI 3.1",
        tag="contract",
        access=Access.PUBLIC,
        ok={200: Content(schema={"type": "object", "required": ["openapi", "paths"]})},
    )


__all__ = ["Access", "Content", "Contract", "Operation", "contract_of", "declare", "serve_document"]
