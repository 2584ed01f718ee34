"""Open the node's listening socket first thing, so a busy or wrong address is one clear line
(naming the variables that choose it) before anything else is printed or started."""

from __future__ import annotations

import errno
import socket

BACKLOG = 256  # gevent's default for its servers


class ListenError(Exception):
    pass


def listen(host: str, port: int, backlog: int = BACKLOG) -> socket.socket:
    """A bound, listening TCP socket on ``host:port``; :class:`ListenError` says why not."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (OSError, UnicodeError) as exc:
        raise ListenError(_message(where, f"cannot resolve the host ({exc})")) from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        reason = (
            "the address is already in use" if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc)
        )
        raise ListenError(_message(where, reason)) from None
    return sock


def _message(where: str, reason: str) -> str:
    return f"cannot listen on {where}: {reason} (set WAFLEET_PORT or WAFLEET_HOST to choose another address)"
