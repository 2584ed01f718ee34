"""Who is calling: the admin (WAFLEET_ADMIN_TOKEN) or one company (its own token).

401 when no token or an unknown one; 403 when a valid token asks for someone else's routes.
Tokens are compared in constant time (admin) or looked up by their hash (companies).

Browsers (the connect page and the dashboard) present the same tokens in an HttpOnly,
SameSite=Strict cookie (``COOKIE``), set by the pages' login forms; it is read only when no
Authorization / X-Admin-Token header is sent. A cookie-authenticated unsafe request whose Origin
names another site is refused (defence in depth on top of SameSite).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

import bottle

from wafleet.actors.directory import Directory
from wafleet.http.api import ApiError
from wafleet.storage.tokens import hash_token

COOKIE = "wafleet_token"
_SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


@dataclass(frozen=True)
class Principal:
    admin: bool
    company_id: str | None = None


class Authenticator:
    def __init__(self, admin_token: str, directory: Directory) -> None:
        self._admin = admin_token.encode()
        self.directory = directory

    def principal(self) -> Principal:
        token, admin_only = _presented_token(bottle.request)
        if not token:
            raise ApiError(
                401,
                "unauthorized",
                "send Authorization: Bearer <token>",
                {"WWW-Authenticate": 'Bearer realm="wafleet"'},
            )
        principal = self.check(token, admin_only)
        if principal is None:
            raise ApiError(
                401,
                "unauthorized",
                "the token is not valid",
                {"WWW-Authenticate": 'Bearer realm="wafleet", error="invalid_token"'},
            )
        return principal

    def check(self, token: str, admin_only: bool = False) -> Principal | None:
        """Whom a token opens, or None: the admin token, or a company's (looked up by hash)."""
        if not token:
            return None
        if hmac.compare_digest(token.encode("utf-8", "surrogatepass"), self._admin):
            return Principal(admin=True)
        company_id = None if admin_only else self.directory.company_for_token(hash_token(token))
        return None if company_id is None else Principal(admin=False, company_id=company_id)

    def admin(self) -> Principal:
        principal = self.principal()
        if not principal.admin:
            raise ApiError(403, "forbidden", "this route needs the admin token")
        return principal

    def company(self, company_id: str) -> Principal:
        principal = self.principal()
        if not principal.admin and principal.company_id != company_id:
            raise ApiError(403, "forbidden", "this token does not open this company's routes")
        return principal


def _presented_token(request: bottle.BaseRequest) -> tuple[str | None, bool]:
    """(token, admin_only): X-Admin-Token carries only the admin token."""
    header = _header(request, "HTTP_AUTHORIZATION")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip(), False
        return None, False
    admin = _header(request, "HTTP_X_ADMIN_TOKEN").strip()
    if admin:
        return admin, True
    cookie = cookie_token(request)
    if cookie and request.method not in _SAFE_METHODS and not _same_origin(request):
        raise ApiError(403, "forbidden", "cross-site request refused")
    return cookie, False


def cookie_token(request: bottle.BaseRequest) -> str | None:
    """The token held in the pages' login cookie, if any."""
    try:
        value = request.cookies.get(COOKIE, "")
    except Exception:  # a malformed Cookie header is no token at all
        return None
    value = value.strip() if isinstance(value, str) else ""
    return value or None


def _same_origin(request: bottle.BaseRequest) -> bool:
    """True when the request carries no Origin, or one naming this host."""
    origin = _header(request, "HTTP_ORIGIN").strip()
    if not origin:
        return True
    host = _header(request, "HTTP_HOST").strip()
    return origin.split("://", 1)[-1].rstrip("/") == host


def _header(request: bottle.BaseRequest, key: str) -> str:
    """A header as UTF-8 text (Bottle's own decoding raises on other bytes: a 500 before)."""
    raw = request.environ.get(key, "")
    try:
        return raw.encode("latin-1").decode("utf-8")
    except UnicodeError:
        raise ApiError(
            401,
            "unauthorized",
            "the token is not valid",
            {"WWW-Authenticate": 'Bearer realm="wafleet", error="invalid_token"'},
        ) from None
