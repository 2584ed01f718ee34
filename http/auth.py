"""Who is calling: the admin (WAFLEET_ADMIN_TOKEN), one company (its own token), or a page login.

401 when no credential or an unknown one; 403 when a valid one asks for someone else's routes.
The admin token is compared in constant time; company tokens are looked up by their hash.

Browsers (the connect page and the dashboard) hold a page session: the login form checks the
token once and sets an HttpOnly, SameSite=Strict cookie (``COOKIE``) carrying a random session id,
stored only as a hash (storage/page_sessions.py), never the token. Logout deletes the session;
rotating or deleting the company deletes all of its sessions. The cookie is read only when no
Authorization / X-Admin-Token header is sent. A cookie-authenticated unsafe request, and every
login or logout, whose Origin names another site is refused (login CSRF would otherwise log a
victim into an attacker's company).

Failed authentications are counted per client address and per company named in the route; past
``AuthLimits.failures`` in a window, failed attempts get 429 with Retry-After. A company token
(256 random bits: it cannot be guessed) is always checked first and always works, so an attacker
cannot lock a company out; the admin token may be human-chosen, so an address over its limit
gets 429 without it being compared, while failures against a company never block the admin.
"""

from __future__ import annotations

import hmac
import math
from dataclasses import dataclass

import bottle

from wafleet.actors.directory import Directory
from wafleet.http.api import ApiError
from wafleet.storage import page_sessions
from wafleet.storage.database import Database
from wafleet.storage.shared_state import SharedState
from wafleet.storage.tokens import hash_token

COOKIE = "wafleet_session"
_SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


@dataclass(frozen=True)
class Principal:
    admin: bool
    company_id: str | None = None
    token_hash: str | None = None  # the company token that opened the request
    session_hash: str | None = None  # the page session that opened it


@dataclass(frozen=True)
class AuthLimits:
    failures: int = 10  # failed authentications per window, per address and per company
    window_ms: int = 60_000
    session_ttl_ms: int = 7 * 86_400_000  # a page login lasts this long at most


class TooManyFailures(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed authentications; retry in {retry_after} s")
        self.retry_after = retry_after


class Authenticator:
    def __init__(
        self,
        admin_token: str,
        directory: Directory,
        db: Database | None = None,
        shared: SharedState | None = None,
        limits: AuthLimits | None = None,
    ) -> None:
        self._admin = admin_token.encode()
        self.directory = directory
        self.db = db
        self.shared = shared or SharedState()
        self.limits = limits or AuthLimits()

    # -- requests ---------------------------------------------------------------------------
    def principal(self, company_id: str | None = None) -> Principal:
        """The caller of this request; ``company_id`` is the company the route names, if any
        (failed attempts against it are counted for it)."""
        request = bottle.request
        token, kind = _presented_token(request)
        if not token:
            raise ApiError(
                401,
                "unauthorized",
                "send Authorization: Bearer <token>",
                {"WWW-Authenticate": 'Bearer realm="wafleet"'},
            )
        if kind == "cookie":
            if request.method not in _SAFE_METHODS and not same_origin(request):
                raise ApiError(403, "forbidden", "cross-site request refused")
            principal = self.session(token)
            if principal is None:
                raise ApiError(401, "unauthorized", "the login session has ended: log in again")
            return principal
        try:
            principal = self.verify(token, admin_only=kind == "admin", company_id=company_id)
        except TooManyFailures as exc:
            raise ApiError(
                429, "too_many_failures", str(exc), {"Retry-After": str(exc.retry_after)}
            ) from None
        if principal is None:
            raise ApiError(
                401,
                "unauthorized",
                "the token is not valid",
                {"WWW-Authenticate": 'Bearer realm="wafleet", error="invalid_token"'},
            )
        return principal

    def admin(self) -> Principal:
        principal = self.principal()
        if not principal.admin:
            raise ApiError(403, "forbidden", "this route needs the admin token")
        return principal

    def company(self, company_id: str) -> Principal:
        principal = self.principal(company_id)
        if not principal.admin and principal.company_id != company_id:
            raise ApiError(403, "forbidden", "this token does not open this company's routes")
        return principal

    # -- tokens -----------------------------------------------------------------------------
    def verify(
        self, token: str, *, admin_only: bool = False, company_id: str | None = None
    ) -> Principal | None:
        """Whom a token opens, or None (a counted failure); TooManyFailures past the limit."""
        if not token:
            return None
        if not admin_only:
            token_hash = hash_token(token)
            owner = self.directory.company_for_token(token_hash)
            if owner is not None:  # unguessable: checked before any limit, never locked out
                return Principal(admin=False, company_id=owner, token_hash=token_hash)
        address, company = self._failure_keys(company_id)
        self._check_limit(address)  # a human-chosen admin token is not compared from here
        if hmac.compare_digest(token.encode("utf-8", "surrogatepass"), self._admin):
            return Principal(admin=True)  # failures against a company never lock the admin out
        if company is not None:
            self._check_limit(company)
        for key in (address, company):
            if key is not None:
                self.shared.count_failure(key, self.limits.window_ms / 1000)
        return None

    def _check_limit(self, key: str) -> None:
        count, left = self.shared.failures(key)
        if count >= self.limits.failures:
            raise TooManyFailures(max(1, math.ceil(left)))

    def _failure_keys(self, company_id: str | None) -> tuple[str, str | None]:
        # The socket's peer, never X-Forwarded-For (bottle's remote_addr): a client writes that.
        address = f"addr:{bottle.request.environ.get('REMOTE_ADDR') or 'unknown'}"
        if company_id is None or self.directory.get(company_id) is None:
            return address, None  # only real companies: the key space stays bounded
        return address, f"company:{company_id}"

    # -- page sessions ----------------------------------------------------------------------
    def login(self, principal: Principal) -> str:
        """A page session for a verified principal; returns the id for the cookie."""
        assert self.db is not None
        return page_sessions.create(
            self.db, None if principal.admin else principal.company_id, self.limits.session_ttl_ms
        )

    def logout(self, session_id: str) -> str | None:
        """Revoke a page session; returns its hash (to end its streams)."""
        assert self.db is not None
        return page_sessions.revoke(self.db, session_id)

    def session(self, session_id: str) -> Principal | None:
        assert self.db is not None
        found = page_sessions.lookup(self.db, session_id)
        if found is None:
            return None
        if found.company_id is None:
            return Principal(admin=True, session_hash=found.id_hash)
        if self.directory.get(found.company_id) is None:
            return None
        return Principal(admin=False, company_id=found.company_id, session_hash=found.id_hash)

    def still_valid(self, principal: Principal) -> bool:
        """Does what opened a long request (a stream) still stand? Rotation, deletion and
        logout take it away."""
        if principal.session_hash is not None:
            assert self.db is not None
            return page_sessions.exists(self.db, principal.session_hash)
        if principal.token_hash is not None:
            return self.directory.company_for_token(principal.token_hash) == principal.company_id
        return principal.admin


def _presented_token(request: bottle.BaseRequest) -> tuple[str | None, str | None]:
    """(credential, kind): kind is "bearer", "admin" (X-Admin-Token: the admin token only) or
    "cookie" (a page session id)."""
    header = request.get_header("Authorization", "")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip(), "bearer"
        return None, None
    admin = request.get_header("X-Admin-Token", "").strip()
    if admin:
        return admin, "admin"
    cookie = cookie_value(request)
    return (cookie, "cookie") if cookie else (None, None)


def cookie_value(request: bottle.BaseRequest) -> str | None:
    """The page session id held in the login cookie, if any."""
    try:
        value = request.cookies.get(COOKIE, "")
    except Exception:  # a malformed Cookie header is no session at all
        return None
    value = value.strip() if isinstance(value, str) else ""
    return value or None


def same_origin(request: bottle.BaseRequest) -> bool:
    """Is this request from our own pages? A browser's Sec-Fetch-Site says so directly ("none":
    typed or bookmarked); without it, an Origin naming this host, or none at all (not a browser).
    Origin alone is not enough: under our no-referrer policy Chromium sends "null" for our own
    form posts, and another port of the same host is another origin but the same site."""
    fetch_site = request.get_header("Sec-Fetch-Site", "").strip().lower()
    if fetch_site:
        return fetch_site in ("same-origin", "none")
    origin = request.get_header("Origin", "").strip()
    if not origin:
        return True
    host = request.get_header("Host", "").strip()
    return origin.split("://", 1)[-1].rstrip("/") == host
