"""The ``web`` link: WhatsApp Web multi-device through neonize, in a link-host worker process.

Only the session's actor touches this object. The :class:`~wafleet.actors.linkhost.LinkHost`
actor hands each worker event to the callback this link gave it at ``Open``, which puts it in
the session's inbox (``emit(HOST_EVENT, event)``); the session gives it back to
:meth:`WebLink.host_event` in its own greenlet, and this link turns it into the link protocol's
``emit(kind, data)`` (links/base.py). The one exception is the answer to a send: the session
waits inside ``send``, so the callback completes that send's future directly.

``WebLink(company_id, emit, pool, store_dir, *, store_url=None, send_timeout=30.0)``:

* ``pool`` — the ``LinkHostPool`` actor's ref (actors/linkhost.py); ``start`` asks it for a host;
* ``store_dir`` — the company's neonize store is ``store_dir/company_{id}/neonize.db`` (sqlite);
* ``store_url`` — when given (a ``postgres…`` URL, e.g. ``DATABASE_URL``), used instead of the
  sqlite file; the device to resume is then ``creds["jid"]``;
* ``send_timeout`` — how long ``send`` waits for the worker's answer.

``creds`` reported with ``connected`` are ``{phone, jid, store}``: the secrets stay in the store.
"""

from __future__ import annotations

import logging
import os
import uuid
from typing import Any

import gevent
import gevent.event
import pykka

from wafleet.actors.linkhost import Command, HostUnavailable, Open, Place, Release
from wafleet.actors.links.base import HOST_EVENT, Emit, LinkConflict, SendError
from wafleet.actors.links.web_store import store_path, wipe_store
from wafleet.actors.status import ExitReason

log = logging.getLogger(__name__)

_PROTOCOL_KEYS = ("event", "session", "attempt")
_EMITTED = ("qr", "pairing_code", "connected", "message", "receipt")


class WebLink:
    def __init__(
        self,
        company_id: str,
        emit: Emit,
        pool: pykka.ActorRef[Any],
        store_dir: str | os.PathLike[str],
        *,
        store_url: str | None = None,
        send_timeout: float = 30.0,
    ) -> None:
        self.company_id = str(company_id)
        self.emit = emit
        self.pool = pool
        self.session = f"company_{self.company_id}"
        self.store = store_url or str(store_path(store_dir, self.company_id))
        self.send_timeout = send_timeout
        self._host: pykka.ActorRef[Any] | None = None
        self._attempt: str | None = None
        self._closed = True
        self._sends: dict[str, gevent.event.AsyncResult] = {}
        self._pings: dict[str, gevent.event.AsyncResult] = {}

    # -- driven by the session ---------------------------------------------------------------
    def start(self, creds: dict[str, Any] | None) -> None:
        self._attempt = uuid.uuid4().hex
        self._closed = False
        command = {
            "cmd": "start",
            "session": self.session,
            "attempt": self._attempt,
            "store": self.store,
            "creds": creds or None,
        }
        try:
            host = self.pool.ask(Place(self.session))
            host.tell(Open(self.session, self._from_host, command))
        except (HostUnavailable, pykka.ActorDeadError) as exc:
            self._host = None
            self._close_now(f"no link host: {exc}" if str(exc) else "no link host")
            return
        self._host = host

    def pair(self, phone: str) -> None:
        if self._host is None or self._closed:
            raise LinkConflict("the web link is not running: no pairing code can be requested")
        digits = "".join(ch for ch in phone if ch.isdigit())
        self._tell({"cmd": "pair", "session": self.session, "phone": digits})

    def send(self, to: str, text: str) -> str:
        if self._host is None or self._closed:
            raise SendError("the web link is not running", retry_after=5.0)
        ref = uuid.uuid4().hex
        waiter = gevent.event.AsyncResult()
        self._sends[ref] = waiter
        try:
            self._tell({"cmd": "send", "session": self.session, "to": to, "text": text, "ref": ref})
            return str(waiter.get(timeout=self.send_timeout))
        except gevent.Timeout:
            raise SendError(
                f"no answer from the link host in {self.send_timeout:.0f}s", retry_after=5.0, kind="TIMEOUT"
            ) from None
        finally:
            self._sends.pop(ref, None)

    def ping(self) -> gevent.event.AsyncResult:
        """Through the link host: the worker answers ``pong`` with whether its client is
        connected. A worker or client gone silent never answers (the caller's wait times out)."""
        answer = gevent.event.AsyncResult()
        if self._host is None or self._closed:
            answer.set(False)
            return answer
        ref = uuid.uuid4().hex
        if len(self._pings) > 100:  # pings nobody answered (a silent worker): forget them
            self._pings.clear()
        self._pings[ref] = answer
        try:
            self._tell({"cmd": "ping", "session": self.session, "ref": ref})
        except LinkConflict:
            self._pings.pop(ref, None)
            answer.set(False)
        return answer

    def logout(self) -> None:
        if self._host is None:
            wipe_store(self.store)  # no worker holds the store
        else:
            self._finish("logout")

    def stop(self) -> None:
        if self._host is not None:
            self._finish("stop")
            return
        self._closed = True
        try:
            self.pool.tell(Release(self.session))
        except pykka.ActorDeadError:
            pass

    # -- from the LinkHost actor -------------------------------------------------------------
    def _from_host(self, event: dict[str, Any]) -> None:
        """Runs in the LinkHost's greenlet: complete a waiting send, or queue for the session."""
        ref = event.get("ref")
        if event.get("event") == "pong" and ref is not None:
            waiter = self._pings.pop(str(ref), None)
            if waiter is not None and not waiter.ready():
                waiter.set(bool(event.get("alive")))
            return
        if event.get("event") in ("sent", "error") and ref is not None:
            waiter = self._sends.get(str(ref))
            if waiter is not None and not waiter.ready():
                if event["event"] == "sent":
                    waiter.set(event.get("id", ""))
                else:
                    waiter.set_exception(SendError(str(event.get("message", "send failed")), retry_after=5.0))
                return
        self.emit(HOST_EVENT, event)

    def host_event(self, event: dict[str, Any]) -> None:
        """A worker event, in the session's greenlet."""
        attempt = event.get("attempt")
        if attempt is not None and attempt != self._attempt:
            return  # a late event of an earlier start
        kind = str(event.get("event"))
        data = {k: v for k, v in event.items() if k not in _PROTOCOL_KEYS}
        if kind == "sent":
            waiter = self._sends.get(str(data.get("ref")))
            if waiter is not None:
                waiter.set(data.get("id", ""))
        elif kind == "error":
            ref = data.get("ref")
            waiter = self._sends.get(str(ref)) if ref is not None else None
            if waiter is not None:
                waiter.set_exception(SendError(str(data.get("message", "send failed")), retry_after=5.0))
            else:
                log.warning(
                    "company %s: link host %s error: %s", self.company_id, data.get("op"), data.get("message")
                )
        elif kind == "closed":
            if self._closed:
                return
            self._closed = True
            self._fail_sends(str(data.get("message", "closed")))
            data.setdefault("reason", ExitReason.TRANSIENT)
            data.setdefault("message", "")
            self.emit("closed", data)
        elif kind in _EMITTED:
            if not self._closed:
                self.emit(kind, data)

    # -- internals -----------------------------------------------------------------------------
    def _tell(self, command: dict[str, Any]) -> None:
        host = self._host
        if host is None:
            raise LinkConflict("the web link is not running")
        try:
            host.tell(Command(command))
        except pykka.ActorDeadError:
            self._host = None
            self._close_now("the link host is gone")
            raise LinkConflict("the link host is gone") from None

    def _finish(self, how: str) -> None:
        host, self._host = self._host, None
        self._closed = True
        self._fail_sends("the web link stopped")
        command = {"cmd": how, "session": self.session, "store": self.store}
        try:
            assert host is not None
            host.tell(Command(command, release=True))
        except pykka.ActorDeadError:
            if how == "logout":
                wipe_store(self.store)
        try:
            self.pool.tell(Release(self.session))
        except pykka.ActorDeadError:
            pass

    def _close_now(self, message: str) -> None:
        if self._closed:
            return
        self._closed = True
        self.emit("closed", {"reason": ExitReason.TRANSIENT, "message": message})

    def _fail_sends(self, message: str) -> None:
        for waiter in self._sends.values():
            if not waiter.ready():
                waiter.set_exception(SendError(message, retry_after=5.0))
