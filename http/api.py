"""JSON in, JSON out: request parsing, the error shape, and the plugin that guards every route.

Errors are ``{"error": {"code", "message"}}`` with the right status. Nothing a client sends can
produce a stack trace; an unexpected exception is logged and answered with a bare 500.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import bottle
import pykka

from wafleet.actors import errors
from wafleet.actors.figures import Op
from wafleet.actors.metrics import Metrics
from wafleet.http.server import BodyTimeout

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.field = field  # the body field at fault, when the client may want it apart


def error_body(code: str, message: str) -> str:
    return json.dumps({"error": {"code": code, "message": message}})


def respond(status: int, payload: Any, headers: dict[str, str] | None = None) -> bottle.HTTPResponse:
    response = bottle.HTTPResponse(body=json.dumps(payload), status=status, headers=headers or {})
    response.content_type = "application/json"
    return response


def raw_body(limit: int) -> bytes:
    """The request body, at most ``limit`` bytes (413 past that, checked before reading when the
    length is announced; a broken body is a 400 that also closes the connection)."""
    request = bottle.request
    try:
        length = request.content_length
    except ValueError:
        raise ApiError(
            400, "invalid_body", "Content-Length is not a number", {"Connection": "close"}
        ) from None
    if length > limit:
        raise ApiError(
            413, "body_too_large", f"request body is larger than {limit} bytes", {"Connection": "close"}
        )
    if length == 0:
        return b""
    try:
        raw = request.environ["wsgi.input"].read(limit + 1)
    except BodyTimeout:
        raise ApiError(
            408, "body_timeout", "the request body came too slowly", {"Connection": "close"}
        ) from None
    except (OSError, ValueError):  # a broken chunked encoding, a client that went away
        raise ApiError(
            400, "invalid_body", "the request body could not be read", {"Connection": "close"}
        ) from None
    if len(raw) > limit:
        raise ApiError(
            413, "body_too_large", f"request body is larger than {limit} bytes", {"Connection": "close"}
        )
    return raw


def json_body(required: bool = False) -> dict[str, Any]:
    """The request's JSON object; an empty body is ``{}`` unless one is required (a body that
    says it is JSON must be JSON, even when it is only white space)."""
    request = bottle.request
    raw = raw_body(MAX_BODY)
    ctype = (request.content_type or "").split(";")[0].strip().lower()
    if not raw.strip() and not (raw and ctype == "application/json"):
        if required:
            raise ApiError(400, "body_required", "a JSON object body is required")
        return {}
    if ctype != "application/json":
        raise ApiError(415, "unsupported_media_type", "send the body as Content-Type: application/json")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise ApiError(400, "invalid_json", "the body is nested too deeply") from None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    return data


# Refusal -> (status, code, Retry-After). The first class that matches wins: subclasses first.
REFUSALS: tuple[tuple[type[errors.Refusal], int, str, str | None], ...] = (
    (errors.NotFound, 404, "not_found", None),
    (errors.AlreadyExists, 409, "exists", None),
    (errors.Banned, 409, "banned", None),
    (errors.Conflict, 409, "wrong_state", None),
    (errors.WrongCode, 400, "wrong_code", None),
    (errors.AtCapacity, 503, "at_capacity", "60"),
    (errors.Booting, 503, "booting", "1"),
    (errors.Unavailable, 503, "unavailable", "2"),
)


def _to_response(exc: Exception) -> bottle.HTTPResponse:
    if isinstance(exc, ApiError):
        detail = {"code": exc.code, "message": exc.message}
        if exc.field is not None:
            detail["field"] = exc.field
        return respond(exc.status, {"error": detail}, exc.headers)
    if isinstance(exc, errors.RateLimited):
        return respond(
            429,
            {"error": {"code": "rate_limited", "message": str(exc), "retryAfter": exc.retry_after}},
            {"Retry-After": str(exc.retry_after)},
        )
    for kind, status, code, retry_after in REFUSALS:
        if isinstance(exc, kind):
            headers = {"Retry-After": retry_after} if retry_after else None
            return respond(status, {"error": {"code": code, "message": str(exc)}}, headers)
    if isinstance(exc, pykka.Timeout):
        return respond(504, {"error": {"code": "timeout", "message": "the session did not answer in time"}})
    log.error("unhandled error in %s %s", bottle.request.method, bottle.request.path, exc_info=exc)
    return respond(500, {"error": {"code": "internal", "message": "internal error"}})


# Routes whose latency is also an operation of ``/metrics/performance``: Meta's webhook is
# acknowledged (200) once its payload is committed, so the route's time is the ack's.
OPERATION_ROUTES: dict[tuple[str, str], str] = {
    ("POST", "/api/whatsapp/webhook/cloud"): Op.WEBHOOK_ACK,
    ("POST", "/api/whatsapp/webhook/cloud/<company_id>"): Op.WEBHOOK_ACK,
}


def refuse_undecodable_headers() -> None:
    """Bottle decodes a header as UTF-8 when a route reads it and raises on other bytes (a 500,
    before authentication for some routes). Every header is checked once, before routing."""
    environ = bottle.request.environ
    for key, value in environ.items():
        if not (key.startswith("HTTP_") or key in ("CONTENT_TYPE", "CONTENT_LENGTH")):
            continue
        if not isinstance(value, str):
            continue
        try:
            value.encode("latin-1").decode("utf-8")
        except UnicodeError:
            name = "-".join(part.capitalize() for part in key.removeprefix("HTTP_").split("_"))
            raise respond(
                400,
                {"error": {"code": "invalid_header", "message": f"header {name} is not valid UTF-8"}},
                {"Connection": "close"},
            ) from None


def guard(metrics: Metrics) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Bottle plugin: turns every exception into a JSON error, counts and times every request
    (by route rule: the figures never carry a company id)."""

    def decorator(callback: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            status = 500
            try:
                result = callback(*args, **kwargs)
                status = (
                    result.status_code
                    if isinstance(result, bottle.HTTPResponse)
                    else bottle.response.status_code
                )
                return result
            except bottle.HTTPResponse as exc:
                status = exc.status_code
                raise
            except Exception as exc:
                response = _to_response(exc)
                status = response.status_code
                return response
            finally:
                elapsed = (time.perf_counter() - start) * 1000
                metrics.incr(f"http.requests.{status // 100}xx")
                metrics.timing("http.latency", elapsed)
                route = bottle.request.route
                key = (bottle.request.method, route.rule)
                metrics.figures.observe_route(f"{key[0]} {key[1]}", elapsed)
                operation = OPERATION_ROUTES.get(key)
                if operation is not None and status < 300:
                    metrics.observe(operation, elapsed)

        return wrapper

    return decorator
