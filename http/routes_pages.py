"""Pages for people: a company's connect page (/connect/{id}) and the fleet dashboard (/).

Server-rendered Bottle templates plus plain JavaScript (EventSource + fetch) from ``static/``;
nothing comes from a CDN. The login forms post the token in the body and answer with an HttpOnly,
SameSite=Strict cookie holding a server-side session id (never the token) and a 303 back to the
page, so the token never appears in a URL. The JSON API reads the same cookie (auth.py) so the
page's scripts call it without holding the token. Login and logout refuse another site's Origin;
logout revokes the session on the server and ends the streams it opened.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bottle

from wafleet.actors.directory import STATES
from wafleet.http.api import ApiError
from wafleet.http.auth import COOKIE, Principal, TooManyFailures, cookie_value, same_origin
from wafleet.http.context import Context
from wafleet.http.contract import Access, Content, declare

HERE = Path(__file__).resolve().parent
TEMPLATES = str(HERE / "templates")
STATIC = str(HERE / "static")
MAX_TOKEN = 512

_HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
}


def page(_template: str, _status: int = 200, **values: Any) -> bottle.HTTPResponse:
    body = bottle.template(_template, template_lookup=[TEMPLATES], **values)
    return bottle.HTTPResponse(body=body, status=_status, headers=dict(_HEADERS))


def redirect(
    location: str, cookie: str | None = None, clear: bool = False, max_age: int = 0
) -> bottle.HTTPResponse:
    response = bottle.HTTPResponse(status=303, headers={"Location": location, "Cache-Control": "no-store"})
    secure = bottle.request.urlparts.scheme == "https"
    if cookie is not None:
        response.set_cookie(
            COOKIE, cookie, path="/", httponly=True, samesite="strict", secure=secure, max_age=max_age
        )
    if clear:
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict", secure=secure)
    return response


def cross_site() -> bottle.HTTPResponse | None:
    """Login and logout posts from another site are refused: a 403 page, nothing changes."""
    if same_origin(bottle.request):
        return None
    return page("message", 403, title="Refused", message="This form was sent from another site.")


def install(app: bottle.Bottle, ctx: Context) -> None:
    session_max_age = ctx.settings.page_session_ttl_ms // 1000

    def current() -> Principal | None:
        session_id = cookie_value(bottle.request)
        return ctx.auth.session(session_id) if session_id else None

    def sign_in(token: str, company_id: str | None) -> Principal | TooManyFailures | None:
        """Check a login form's token; a counted failure when wrong."""
        if not token:
            return None
        try:
            return ctx.auth.verify(token, admin_only=company_id is None, company_id=company_id)
        except TooManyFailures as exc:
            return exc

    def sign_out(target: str) -> bottle.HTTPResponse:
        refused = cross_site()
        if refused is not None:
            return refused
        session_id = cookie_value(bottle.request)
        if session_id:
            session_hash = ctx.auth.logout(session_id)
            if session_hash is not None:
                ctx.broadcaster.end(
                    lambda listener: getattr(listener.owner, "session_hash", None) == session_hash
                )
        return redirect(target, clear=True)

    def valid_id(company_id: str) -> bool:
        return len(company_id) <= 64 and bool(ctx.settings.company_id_pattern.fullmatch(company_id))

    def form_token() -> str:
        try:
            value = bottle.request.forms.getunicode("token", default="") or ""
        except Exception:
            return ""
        return value.strip()[:MAX_TOKEN]

    def static(path: str) -> Any:
        response = bottle.static_file(path, root=STATIC)
        response.set_header("Cache-Control", "no-cache")
        response.set_header("X-Content-Type-Options", "nosniff")
        return response

    # -- a company's connect page ---------------------------------------------------------------
    def connect_page(company_id: str) -> Any:
        if not valid_id(company_id):
            return page("message", 404, title="Not found", message="There is no such company.")
        principal = current()
        if principal is None or not (principal.admin or principal.company_id == company_id):
            error = "This login is for another company." if principal is not None else ""
            return page(
                "login",
                403 if principal is not None else 200,
                title=f"Connect {company_id}",
                heading=f"Connect WhatsApp for {company_id}",
                action=f"/connect/{company_id}/login",
                label="Company token",
                error=error,
            )
        record = ctx.directory.get(company_id)
        if record is None:
            return page("message", 404, title="Not found", message=f"Company {company_id} does not exist.")
        return page(
            "connect",
            company_id=company_id,
            name=record.name,
            phone=record.company_phone,
            max_codes=ctx.settings.max_pairing_per_hour,
            admin=principal.admin,
        )

    def connect_login(company_id: str) -> Any:
        if not valid_id(company_id):
            return page("message", 404, title="Not found", message="There is no such company.")
        refused = cross_site()
        if refused is not None:
            return refused
        principal = sign_in(form_token(), company_id)
        if isinstance(principal, TooManyFailures):
            return _too_many(
                principal, f"Connect {company_id}", f"/connect/{company_id}/login", "Company token"
            )
        if principal is None or not (principal.admin or principal.company_id == company_id):
            return page(
                "login",
                401,
                title=f"Connect {company_id}",
                heading=f"Connect WhatsApp for {company_id}",
                action=f"/connect/{company_id}/login",
                label="Company token",
                error="That token does not open this company.",
            )
        return redirect(f"/connect/{company_id}", ctx.auth.login(principal), max_age=session_max_age)

    def connect_logout(company_id: str) -> Any:
        if not valid_id(company_id):
            return page("message", 404, title="Not found", message="There is no such company.")
        return sign_out(f"/connect/{company_id}")

    # -- the operator's dashboard ---------------------------------------------------------------
    def dashboard() -> Any:
        environ = bottle.request.environ
        path = environ.get("bottle.raw_path", environ.get("PATH_INFO", ""))
        if path != "/":  # e.g. "/%FF": Bottle maps a path that is not UTF-8 to "/"
            raise ApiError(404, "not_found", "no route for this path")
        if bottle.request.method not in ("GET", "HEAD"):
            raise ApiError(405, "method_not_allowed", f"{bottle.request.method} is not allowed here")
        principal = current()
        if principal is None or not principal.admin:
            return page(
                "login",
                403 if principal is not None else 200,
                title="wafleet dashboard",
                heading="wafleet: operator login",
                action="/login",
                label="Admin token",
                error="This page needs the admin token." if principal is not None else "",
            )
        return page("dashboard", states=STATES)

    def dashboard_login() -> Any:
        refused = cross_site()
        if refused is not None:
            return refused
        principal = sign_in(form_token(), None)
        if isinstance(principal, TooManyFailures):
            return _too_many(principal, "wafleet dashboard", "/login", "Admin token")
        if principal is None:
            return page(
                "login",
                401,
                title="wafleet dashboard",
                heading="wafleet: operator login",
                action="/login",
                label="Admin token",
                error="That is not the admin token.",
            )
        return redirect("/", ctx.auth.login(principal), max_age=session_max_age)

    def dashboard_logout() -> Any:
        return sign_out("/")

    tag, page_access = "pages", Access.PAGE
    declare(
        app, "GET", "/static/<path:path>", static, summary="The pages' scripts and styles", tag=tag,
        access=Access.PUBLIC, params={"path": {"type": "string"}},
        ok={
            200: [Content(media="text/javascript", schema=HTML), Content(media="text/css", schema=HTML)],
            304: Content(description="Not modified"),
        },
        errors=(403, 404),
    )  # fmt: skip
    declare(
        app, "GET", "/connect/<company_id>", connect_page, summary="A company's connect page", tag=tag,
        access=page_access, ok={200: PAGE, 403: _html("Logged in for another company"),
                                404: _html("No such company")},
    )  # fmt: skip
    declare(
        app, "POST", "/connect/<company_id>/login", connect_login, summary="Log in to a connect page",
        tag=tag, access=page_access, payload=FORM,
        ok={303: REDIRECT, 401: _html("Not this company's token"), 403: _html("Sent from another site"),
            404: _html("No such company"), 429: Content(media="text/html", schema=HTML,
                                                         headers=("Retry-After",), description="Too many failures")},
    )  # fmt: skip
    declare(
        app, "POST", "/connect/<company_id>/logout", connect_logout, summary="Log out of a connect page",
        tag=tag, access=page_access,
        ok={303: REDIRECT, 403: _html("Sent from another site"), 404: _html("No such company")},
    )  # fmt: skip
    declare(
        app, "ANY", "/", dashboard, summary="The fleet dashboard (GET or HEAD)", tag=tag, access=page_access,
        ok={200: PAGE, 403: _html("Logged in without the admin token")}, errors=(404, 405),
    )  # fmt: skip
    declare(
        app, "POST", "/login", dashboard_login, summary="Log in to the dashboard", tag=tag,
        access=page_access, payload=FORM,
        ok={303: REDIRECT, 401: _html("Not the admin token"), 403: _html("Sent from another site"),
            429: Content(media="text/html", schema=HTML, headers=("Retry-After",), description="Too many failures")},
    )  # fmt: skip
    declare(
        app, "POST", "/logout", dashboard_logout, summary="Log out of the dashboard", tag=tag,
        access=page_access, ok={303: REDIRECT, 403: _html("Sent from another site")},
    )  # fmt: skip


HTML = {"type": "string"}
PAGE = Content(media="text/html", schema=HTML, description="The page (or its login form)")
FORM = Content(
    media="application/x-www-form-urlencoded",
    schema={"type": "object", "properties": {"token": {"type": "string", "maxLength": MAX_TOKEN}}},
)
REDIRECT = Content(media="text/html", headers=("Location", "Set-Cookie"), description="Back to the page")


def _html(description: str) -> Content:
    return Content(media="text/html", schema=HTML, description=description)


def _too_many(exc: TooManyFailures, title: str, action: str, label: str) -> bottle.HTTPResponse:
    response = page(
        "login",
        429,
        title=title,
        heading=title,
        action=action,
        label=label,
        error=f"Too many failed logins from here. Try again in {exc.retry_after} seconds.",
    )
    response.set_header("Retry-After", str(exc.retry_after))
    return response
