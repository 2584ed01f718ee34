"""The HTTP server: gevent's pywsgi with a pool, plus what keeps slow clients from holding it.

Every connection holds one pool slot, so a client that opens sockets and sends nothing (or a
byte now and then) could take the whole pool. Three deadlines, each a setting:

- header: the request line and headers must arrive within it, counted from the connection's
  accept (first request) or from the first byte of the request (keep-alive); a total deadline,
  not a per-read timeout, so dripping a byte at a time does not extend it;
- body: once the app starts reading a body, all of it must arrive within it (408 otherwise);
- idle: a kept-alive connection waits at most this long for its next request; the same bound
  applies to any single socket operation, so a client that stops reading (once the kernel's send
  buffer, up to a few MB, is full) frees its slot too.
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass
from typing import Any

import gevent
from gevent.pywsgi import Input, WSGIHandler, WSGIServer


class BodyTimeout(OSError):
    """The client did not send its announced body within the body timeout."""


class _HeaderTimeout(ValueError):
    """Headers did not arrive in time (a ValueError: pywsgi answers it as a client error)."""


@dataclass(frozen=True)
class Timeouts:
    header: float  # seconds
    body: float
    idle: float


def _error(status: str, code: str, message: str) -> bytes:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    head = (
        f"HTTP/1.1 {status}\r\nConnection: close\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


_HEADER_TIMEOUT_RESPONSE = _error(
    "408 Request Timeout", "header_timeout", "the request headers came too slowly"
)


class DeadlineInput(Input):
    """The request body with one deadline for all of it, started at the first read.

    pywsgi reads what the app left unread before the next request; that goes through here too,
    so a client cannot stall the connection there either.
    """

    __slots__ = ("budget", "deadline", "on_timeout")

    def _within(self, read: Any, *args: Any) -> Any:
        if self.deadline is None:
            self.deadline = time.monotonic() + self.budget
        left = self.deadline - time.monotonic()
        if left <= 0:
            self.on_timeout()
            raise BodyTimeout("the request body came too slowly")
        try:
            with gevent.Timeout(left, BodyTimeout("the request body came too slowly")):
                return read(*args)
        except BodyTimeout:
            self.on_timeout()
            raise

    def read(self, length: int | None = None) -> bytes:
        return self._within(super().read, length)

    def readline(self, size: int | None = None) -> bytes:
        return self._within(super().readline, size)

    def readlines(self, hint: int | None = None) -> list[bytes]:
        return self._within(super().readlines, hint)


class Handler(WSGIHandler):
    """Deadlines per connection (see the module doc), and the client socket handed to the app
    (``wafleet.socket``): an event stream watches it to notice a client that went away at once,
    not at its next heartbeat write."""

    timeouts = Timeouts(header=10.0, body=30.0, idle=60.0)

    def handle(self) -> None:
        self._header_deadline = time.monotonic() + self.timeouts.header
        self._served = 0
        try:
            # Bounds every single send and receive (a reader that stopped reading, for one).
            self.socket.settimeout(max(self.timeouts.idle, self.timeouts.header))
        except OSError:
            pass
        super().handle()

    def read_requestline(self) -> str:
        if self._served:
            # Keep-alive: wait for the next request's first byte, at most the idle timeout.
            with gevent.Timeout(self.timeouts.idle, TimeoutError("idle connection")):
                self.rfile.peek(1)
            self._header_deadline = time.monotonic() + self.timeouts.header
        left = max(0.0, self._header_deadline - time.monotonic())
        with gevent.Timeout(left, TimeoutError("request line timeout")):
            return super().read_requestline()

    def read_request(self, raw_requestline: str) -> bool:
        left = max(0.0, self._header_deadline - time.monotonic())
        with gevent.Timeout(left, _HeaderTimeout("request headers timeout")):
            return super().read_request(raw_requestline)

    def _handle_client_error(self, ex: Exception) -> tuple[str, bytes]:
        if isinstance(ex, _HeaderTimeout):
            self.close_connection = True
            return ("408", _HEADER_TIMEOUT_RESPONSE)
        return super()._handle_client_error(ex)

    def handle_error(self, t: type[BaseException], v: BaseException, tb: Any) -> None:
        if isinstance(v, TimeoutError):  # a write to a client that stopped reading: just close
            self.close_connection = True
            return
        super().handle_error(t, v, tb)

    def handle_one_request(self) -> Any:
        result = super().handle_one_request()
        if result is True:
            self._served += 1
        return result

    def get_environ(self) -> dict:
        environ = super().get_environ()
        plain = self.wsgi_input
        if isinstance(plain, Input):
            wrapped = DeadlineInput(
                plain.rfile, plain.content_length, socket=plain.socket, chunked_input=plain.chunked_input
            )
            wrapped.budget = self.timeouts.body
            wrapped.deadline = None
            wrapped.on_timeout = self._body_timed_out
            self.wsgi_input = wrapped
            if environ.get("wsgi.input") is plain:
                environ["wsgi.input"] = wrapped
        environ["wafleet.socket"] = self.socket
        return environ

    def _body_timed_out(self) -> None:
        self.close_connection = True  # the rest of the body may still come: never parse it


class NoDelayWSGIServer(WSGIServer):
    """pywsgi writes headers and body separately; with Nagle on, the body of every keep-alive
    response waits for the client's delayed ACK (~40 ms). Measured: 360 -> 5,900 status/s."""

    def handle(self, sock: socket.socket, address: tuple[str, int]) -> None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass  # not TCP (a unix socket): nothing to tune
        super().handle(sock, address)


def handler_with(timeouts: Timeouts) -> type[Handler]:
    """A Handler class carrying this node's timeouts (pywsgi builds one handler per connection)."""
    return type("TimedHandler", (Handler,), {"timeouts": timeouts})
