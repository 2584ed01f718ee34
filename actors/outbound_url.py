"""Which URLs the node may call (company webhooks, the alert webhook): ``https`` to public
addresses only, unless private ones are explicitly allowed (a development or internal setup).

A host name is resolved and *every* address it has must be allowed: a name with one public and
one loopback address could otherwise reach the loopback one. The sender connects to an address
checked here (not to the name again), so a DNS answer that changes between the check and the
connection (rebinding) cannot move a delivery into the private network.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_URL = 2048


class UrlRefused(ValueError):
    """The URL is malformed, not https, or reaches an address that is not allowed."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # as written in the URL (the Host header and the TLS server name)
    port: int
    path: str  # path and query
    addresses: tuple[str, ...]  # every address the host resolved to, all allowed

    def url_for(self, address: str) -> str:
        """The URL with the host replaced by one of its checked addresses."""
        literal = f"[{address}]" if ":" in address else address
        return f"{self.scheme}://{literal}:{self.port}{self.path}"

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        name = f"[{self.host}]" if ":" in self.host else self.host
        return name if self.port == default else f"{name}:{self.port}"


def parse(url: str, allow_private: bool) -> tuple[str, str, int, str]:
    """(scheme, host, port, path) of a URL we may call, without resolving it."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL:
        raise UrlRefused(f"the URL must be a string of at most {MAX_URL} characters")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise UrlRefused("the URL must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UrlRefused(f"the URL is malformed: {exc}") from None
    allowed = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in allowed:
        raise UrlRefused("only https URLs are accepted")
    if parts.username is not None or parts.password is not None:
        raise UrlRefused("the URL must not carry credentials: the endpoint's secret signs each delivery")
    if not parts.hostname:
        raise UrlRefused("the URL has no host")
    if parts.fragment:
        raise UrlRefused("the URL must not have a #fragment")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80), path


def address_allowed(address: str) -> bool:
    """A public unicast address (IPv4-mapped IPv6 judged as the IPv4 address it carries)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check(url: str, allow_private: bool) -> Target:
    """Parse and resolve ``url``; every address must be allowed. Blocks only this greenlet
    (gevent's resolver)."""
    scheme, host, port, path = parse(url, allow_private)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UrlRefused(f"cannot resolve {host!r}: {exc}") from None
    addresses = tuple(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise UrlRefused(f"{host!r} has no address")
    if not allow_private:
        refused = [a for a in addresses if not address_allowed(a)]
        if refused:
            raise UrlRefused(
                f"{host!r} resolves to a private, loopback or link-local address ({refused[0]}); "
                "set WAFLEET_WEBHOOK_ALLOW_PRIVATE to allow it"
            )
    return Target(scheme, host, port, path, addresses)
