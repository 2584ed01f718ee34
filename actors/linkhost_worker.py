"""The link-host worker: many neonize (WhatsApp Web) clients in one plain-Python process.

ARCHITECTURE §5: neonize cannot run inside the gevent node (its ``connect()`` blocks in C for
the life of a session and its Go side is not safe for concurrent connect/stop), so web sessions
live here. This module never imports gevent. Run it as::

    python -m wafleet.actors.linkhost_worker

Each client runs on its own thread (neonize's ``connect()`` blocks that thread; neonize adds
one more thread of its own for the Go call). ``connect()`` and ``stop()`` are serialized by one
process-wide lock: it is held from the call of ``connect()`` until the Go side has registered
the client (its first callback, ``connect()`` returning, or ``LAUNCH_GRACE`` seconds), and for
the whole of each ``stop()``. Every other blocking FFI call (pair, send, logout, stop) runs on a
small thread pool, never on the thread that reads commands nor inside a neonize callback.

Protocol: JSON lines. The node writes commands to stdin; the worker writes events to stdout.
stdout carries protocol lines only: file descriptor 1 is redirected to stderr at start, so
anything neonize, whatsmeow (Go) or Python prints lands on stderr, with the logs.

Commands (node -> worker)::

    {"cmd": "start",  "session": S, "attempt": A, "store": PATH_OR_URL, "creds": {...} | null}
    {"cmd": "pair",   "session": S, "phone": "15551234567"}
    {"cmd": "send",   "session": S, "to": "15551234567", "text": "...", "ref": R}
    {"cmd": "logout", "session": S}
    {"cmd": "stop",   "session": S}

``store`` is the client's neonize database: a sqlite file path (its folder is created) or a
``postgres…`` URL shared by many sessions (then ``creds.jid`` picks the stored device to resume;
without it a new device is paired). ``attempt`` is echoed in every event of that start so the
node can drop late events of an earlier attempt. A ``start`` for a session whose previous client
is still stopping waits for it (one neonize uuid = one session id per process). ``pair`` before
the first QR is remembered and sent (``PairPhone``) once the first QR arrived. ``stdin`` EOF
stops every client and exits 0.

Events (worker -> node); all but ``ready`` carry ``session`` and, when known, ``attempt``::

    {"event": "ready", "pid": N, "neonize": "0.5.2"}
    {"event": "qr", "code": "2@…", "ttl": 60, "round": 1}      # ttl 60 s first, then 20 s
    {"event": "pairing_code", "code": "ABCD-EFGH", "ttl": 60}
    {"event": "connected", "phone": "15551234567", "creds": {"phone", "jid", "store"}}
    {"event": "closed", "reason": R, "message": "...", "until"?: epoch_ms, "detail"?: "..."}
    {"event": "message", "peer", "type", "text", "media", "wa_id", "at", "is_group", "push_name"}
    {"event": "receipt", "peer", "ids": [...], "type", "at"}
    {"event": "sent", "ref": R, "id": "3EB0…"}
    {"event": "stopped"}                                        # after stop/logout finished
    {"event": "error", "ref"?: R, "op": "send"|"pair"|"logout"|"start"|"protocol", "message": "..."}

``closed`` is final for that attempt (the client is stopped) and is never sent after a ``stop``
or ``logout`` the node asked for. Reasons (ARCHITECTURE §4, ``links/base.CLOSE_REASONS``):

* ``LoggedOutEv`` -> ``logged_out`` (the store is wiped);
* ``StreamReplacedEv`` -> ``replaced``;
* ``TemporaryBanEv`` -> ``banned`` with ``until`` (epoch ms of the ban's end);
* ``ClientOutdatedEv`` (or login status ``err-client-outdated``) -> ``auth`` with
  ``detail: "client_outdated"``: a final reason that leaves the session ``failed``; re-linking
  will not help, upgrading neonize will;
* a failed first connection (``connect()`` raising ``NeonizeError``), the QR codes running out
  without a scan (login status ``timeout``), or ``connect()`` ending on its own -> ``transient``.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import json
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("wafleet.linkhost_worker")

LAUNCH_GRACE = 2.0  # longest the connect/stop lock is held while a client registers in Go
QR_FIRST_TTL = 60
QR_NEXT_TTL = 20
PAIRING_TTL = 60
OUTDATED_REASON = "auth"  # final; see the module docstring


class Output:
    """The protocol stream: one JSON object per line, written whole under a lock."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.lock = threading.Lock()

    def send(self, obj: dict[str, Any]) -> None:
        line = json.dumps(obj, separators=(",", ":"), default=str) + "\n"
        with self.lock:
            try:
                self.stream.write(line)
                self.stream.flush()
            except (BrokenPipeError, ValueError, OSError):
                pass  # the node is gone; stdin EOF will end us


class Tenant:
    """One session's neonize client and the thread that runs its ``connect()``."""

    def __init__(self, host: Host, cmd: dict[str, Any], previous: Tenant | None) -> None:
        self.host = host
        self.session = str(cmd["session"])
        self.attempt = cmd.get("attempt")
        self.store = str(cmd["store"])
        self.creds = cmd.get("creds") or {}
        self.previous = previous
        self.phone: str | None = self.creds.get("phone")
        self.client: Any = None
        self.lock = threading.Lock()  # guards the flags below
        self.stopping = False
        self.closed = False
        self.launched = False  # connect() called and Go registered the client
        self.returned = False  # connect() returned
        self.qr_round = 0
        self.pending_phone: str | None = None
        self.finished = threading.Event()
        self._launch_held = False
        self._launch_guard = threading.Lock()
        self.thread = threading.Thread(target=self._run, name=f"tenant-{self.session}", daemon=True)

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        try:
            if self.previous is not None:
                self.previous.finished.wait()
                self.previous = None
            self._connect()
        except Exception as exc:  # noqa: BLE001 - every failure becomes a close
            self.close("transient", f"connection failed: {exc}")
        finally:
            with self.lock:
                self.returned = True
            self._release_launch()
            if self.client is not None:
                try:
                    self.client._stop_finalizer.detach()  # its GC must not Stop a later client's uuid
                except Exception:  # noqa: BLE001
                    pass
            self.finished.set()
            self.host.forget(self)

    def _connect(self) -> None:

        with self.lock:
            if self.stopping:
                return
        store = self.store
        if not store.startswith("postgres"):
            Path(store).parent.mkdir(parents=True, exist_ok=True)
        jid = None
        new_device = False
        if store.startswith("postgres"):
            if self.creds.get("jid"):
                from neonize.utils.jid import build_jid

                user, _, server = str(self.creds["jid"]).partition("@")
                jid = build_jid(user.split(":")[0], server or "s.whatsapp.net")
            else:
                new_device = True
        client = _client_class()(store, jid=jid, uuid=self.session, new_device=new_device)
        client._wafleet_tenant = self
        self.client = client
        self._register(client)
        self.host.ffi_lock.acquire()
        self._launch_held = True
        timer = threading.Timer(LAUNCH_GRACE, self._release_launch)
        timer.daemon = True
        with self.lock:
            if self.stopping:
                self._release_launch()
                return
            self.launched = True
        timer.start()
        try:
            client.connect()
        finally:
            timer.cancel()
        self.close("transient", "the WhatsApp Web connection ended")

    def _release_launch(self) -> None:
        with self._launch_guard:
            if self._launch_held:
                self._launch_held = False
                self.host.ffi_lock.release()

    def stop_client(self) -> None:
        """Stop the Go client (serialized with every connect/stop). Idempotent."""
        with self.lock:
            self.stopping = True
            running = self.launched and not self.returned
        if running and self.client is not None:
            with self.host.ffi_lock:
                with self.lock:
                    running = not self.returned
                if running:
                    self.client.stop()

    def close(self, reason: str, message: str, **data: Any) -> None:
        """Report a final close (once, never after a stop we were asked for), then stop."""
        with self.lock:
            if self.closed or self.stopping:
                return
            self.closed = True
        self.emit("closed", dict(data, reason=reason, message=message))
        self.host.pool.submit(self._stop_after_close, reason)

    def _stop_after_close(self, reason: str) -> None:
        try:
            self.stop_client()
        finally:
            if reason == "logged_out":
                self._wait_finished(30)
                wipe_store(self.store)

    def _wait_finished(self, timeout: float) -> None:
        if self.thread.ident is not None:  # started: wait until connect() returned
            self.finished.wait(timeout)

    def emit(self, kind: str, data: dict[str, Any] | None = None) -> None:
        event = {"event": kind, "session": self.session}
        if self.attempt is not None:
            event["attempt"] = self.attempt
        event.update(data or {})
        self.host.out.send(event)

    # -- commands --------------------------------------------------------------------------
    def pair(self, phone: str) -> None:
        with self.lock:
            if self.qr_round == 0:
                self.pending_phone = phone
                return
        self.host.pool.submit(self._pair, phone)

    def _pair(self, phone: str) -> None:
        try:
            code = self.client.PairPhone(phone, True)
        except Exception as exc:  # noqa: BLE001
            self.emit("error", {"op": "pair", "message": f"pairing code request failed: {exc}"})
            return
        self.emit("pairing_code", {"code": code, "ttl": PAIRING_TTL})

    def send(self, to: str, text: str, ref: Any) -> None:
        try:
            if self.client is None or self.returned:
                raise RuntimeError("the session is not running")
            response = self.client.send_message(to, text)
            self.emit("sent", {"ref": ref, "id": getattr(response, "ID", "")})
        except Exception as exc:  # noqa: BLE001
            self.emit("error", {"op": "send", "ref": ref, "message": str(exc) or type(exc).__name__})

    def logout(self) -> None:
        with self.lock:
            connected = self.launched and not self.returned and not self.closed
            self.stopping = True
        if connected and self.client is not None:
            try:
                self.client.logout()
            except Exception as exc:  # noqa: BLE001 - not linked (yet): nothing to remove
                log.info("session %s: logout: %s", self.session, exc)
        self.stop_client()
        self._wait_finished(30)
        wipe_store(self.store)

    # -- neonize callbacks (on neonize's Go-call thread: hand off, return at once) ---------
    def _register(self, client: Any) -> None:
        from neonize import events as ev

        client.qr(self._on_qr)
        client.event(ev.ConnectedEv)(self._on_connected)
        client.event(ev.PairStatusEv)(self._on_pair_status)
        client.event(ev.LoggedOutEv)(self._on_logged_out)
        client.event(ev.StreamReplacedEv)(self._on_replaced)
        client.event(ev.TemporaryBanEv)(self._on_ban)
        client.event(ev.ClientOutdatedEv)(self._on_outdated)
        client.event(ev.ConnectFailureEv)(self._on_connect_failure)
        client.event(ev.DisconnectedEv)(self._on_disconnected)
        client.event(ev.MessageEv)(self._on_message)
        client.event(ev.ReceiptEv)(self._on_receipt)

    def on_login_status(self, status: str) -> None:
        self._release_launch()
        if status == "timeout":
            self.close("transient", "the QR codes ran out without a scan")
        elif status == "err-client-outdated":
            self._on_outdated(None, None)
        elif status.startswith("err"):
            self.close("transient", f"login failed: {status}")

    def _on_qr(self, _client: Any, data: bytes) -> None:
        self._release_launch()
        with self.lock:
            self.qr_round += 1
            round_ = self.qr_round
            phone, self.pending_phone = self.pending_phone, None
        ttl = QR_FIRST_TTL if round_ == 1 else QR_NEXT_TTL
        self.emit("qr", {"code": data.decode(errors="replace"), "ttl": ttl, "round": round_})
        if phone:  # never inside the callback (neonize #57): from the pool
            self.host.pool.submit(self._pair, phone)

    def _on_pair_status(self, _client: Any, event: Any) -> None:
        if getattr(event, "Status", 0) == 2:  # SUCCESS
            self.phone = event.ID.User or self.phone
        else:
            self.emit("error", {"op": "pair", "message": f"pairing failed: {getattr(event, 'Error', '')}"})

    def _on_connected(self, client: Any, _event: Any) -> None:
        self._release_launch()
        me = getattr(client, "me", None)
        jid = None
        if me is not None and getattr(me, "JID", None) is not None and me.JID.User:
            self.phone = me.JID.User
            jid = f"{me.JID.User}:{me.JID.Device}@{me.JID.Server}"
        creds = {"phone": self.phone, "jid": jid or self.creds.get("jid"), "store": self.store}
        self.emit("connected", {"phone": self.phone, "creds": creds})

    def _on_logged_out(self, _client: Any, event: Any) -> None:
        reason = _enum_name(event, "Reason")
        when = "at connect" if getattr(event, "OnConnect", False) else "while connected"
        self.close("logged_out", f"WhatsApp logged this device out {when} ({reason})", detail=reason)

    def _on_replaced(self, _client: Any, _event: Any) -> None:
        self.close("replaced", "the session was opened elsewhere (stream replaced)")

    def _on_ban(self, _client: Any, event: Any) -> None:
        until = ban_until_ms(int(getattr(event, "Expire", 0) or 0))
        code = _enum_name(event, "Code")
        self.close("banned", f"temporarily banned by WhatsApp ({code})", until=until, detail=code)

    def _on_outdated(self, _client: Any, _event: Any) -> None:
        self.close(
            OUTDATED_REASON,
            "WhatsApp rejected this client as outdated (405): upgrade neonize; re-linking will not help",
            detail="client_outdated",
        )

    def _on_connect_failure(self, _client: Any, event: Any) -> None:
        log.warning(
            "session %s: connect failure %s: %s",
            self.session,
            _enum_name(event, "Reason"),
            getattr(event, "Message", ""),
        )

    def _on_disconnected(self, _client: Any, _event: Any) -> None:
        log.info("session %s: disconnected (whatsmeow reconnects by itself)", self.session)

    def _on_message(self, _client: Any, event: Any) -> None:
        try:
            info = event.Info
            source = info.MessageSource
            from_me = bool(source.IsFromMe)
            if from_me and source.IsGroup:
                return  # the company wrote in a group: nobody's chat to hand over
            msg = event.Message
            text = msg.conversation or msg.extendedTextMessage.text or None
            self.emit(
                "message",
                {
                    # from the phone (the company typed it there): the chat is the customer's
                    "from_me": from_me,
                    "peer": source.Chat.User if from_me else (source.Sender.User or source.Chat.User),
                    "chat": source.Chat.User,
                    "type": "text" if text is not None else (info.Type or "unknown"),
                    "text": text,
                    "media": info.MediaType or None,
                    "wa_id": info.ID,
                    "at": int(info.Timestamp) * 1000 if info.Timestamp < 10**11 else int(info.Timestamp),
                    "is_group": bool(source.IsGroup),
                    "push_name": info.Pushname or None,
                },
            )
        except Exception:  # noqa: BLE001 - a callback must never raise into ctypes
            log.exception("session %s: unreadable message event", self.session)

    def _on_receipt(self, _client: Any, event: Any) -> None:
        try:
            self.emit(
                "receipt",
                {
                    "peer": event.MessageSource.Chat.User,
                    "ids": list(event.MessageIDs),
                    "type": _enum_name(event, "Type"),
                    "at": int(event.Timestamp),
                },
            )
        except Exception:  # noqa: BLE001
            log.exception("session %s: unreadable receipt event", self.session)


class Host:
    """The worker's state: its tenants by session id, the connect/stop lock, the FFI pool."""

    def __init__(self, out: Output) -> None:
        self.out = out
        self.ffi_lock = threading.Lock()
        self.tenants: dict[str, Tenant] = {}
        self.tenants_lock = threading.Lock()
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="ffi")

    def forget(self, tenant: Tenant) -> None:
        with self.tenants_lock:
            if self.tenants.get(tenant.session) is tenant:
                del self.tenants[tenant.session]

    def handle(self, cmd: dict[str, Any]) -> None:
        name = cmd.get("cmd")
        session = str(cmd.get("session", ""))
        with self.tenants_lock:
            tenant = self.tenants.get(session)
        if name == "start":
            with self.tenants_lock:
                previous = self.tenants.get(session)
                if previous is not None and not previous.stopping and not previous.closed:
                    self.out.send(
                        {
                            "event": "error",
                            "session": session,
                            "attempt": cmd.get("attempt"),
                            "op": "start",
                            "message": "the session is already running",
                        }
                    )
                    return
                tenant = Tenant(self, cmd, previous)
                self.tenants[session] = tenant
            tenant.start()
        elif name == "pair":
            if tenant is None:
                self._error(session, "pair", "the session is not running", cmd.get("ref"))
            else:
                tenant.pair(str(cmd["phone"]))
        elif name == "send":
            if tenant is None:
                self._error(session, "send", "the session is not running", cmd.get("ref"))
            else:
                self.pool.submit(tenant.send, str(cmd["to"]), str(cmd["text"]), cmd.get("ref"))
        elif name in ("stop", "logout"):
            self.pool.submit(self._finish, session, tenant, name, cmd.get("store"))
        else:
            self._error(session, "protocol", f"unknown command {name!r}", cmd.get("ref"))

    def _finish(self, session: str, tenant: Tenant | None, how: str, store: str | None) -> None:
        try:
            if tenant is None:
                if how == "logout" and store:
                    wipe_store(store)
            elif how == "logout":
                tenant.logout()
            else:
                tenant.stop_client()
                tenant._wait_finished(60)
        finally:
            event: dict[str, Any] = {"event": "stopped", "session": session}
            if tenant is not None and tenant.attempt is not None:
                event["attempt"] = tenant.attempt
            self.out.send(event)

    def _error(self, session: str, op: str, message: str, ref: Any = None) -> None:
        event: dict[str, Any] = {"event": "error", "session": session, "op": op, "message": message}
        if ref is not None:
            event["ref"] = ref
        self.out.send(event)

    def shutdown(self) -> None:
        with self.tenants_lock:
            tenants = list(self.tenants.values())
        for tenant in tenants:
            tenant.stop_client()
        for tenant in tenants:
            tenant.finished.wait(60)
        self.pool.shutdown(wait=True)


def wipe_store(store: str) -> None:
    """Delete a session's sqlite store (and its journal files); Postgres stores are left to whatsmeow,
    which deletes the device's rows itself on logout."""
    if store.startswith("postgres"):
        return
    for suffix in ("", "-wal", "-shm", "-journal"):
        try:
            os.unlink(store + suffix)
        except FileNotFoundError:
            pass
    folder = Path(store).parent
    try:
        folder.rmdir()  # only if empty
    except OSError:
        pass


def ban_until_ms(expire: int, now: float | None = None) -> int:
    """TemporaryBan.Expire -> epoch ms. neonize's encoding is not documented: a Go duration in
    ns (huge), an absolute unix time in s, or a duration in s; decided by magnitude."""
    now = time.time() if now is None else now
    if expire > 10**12:
        return int((now + expire / 1e9) * 1000)
    if expire > 10**9:
        return int(expire * 1000)
    return int((now + expire) * 1000)


def _enum_name(event: Any, field: str) -> str:
    try:
        value = getattr(event, field)
        return event.DESCRIPTOR.fields_by_name[field].enum_type.values_by_number[value].name
    except Exception:  # noqa: BLE001
        return str(getattr(event, field, ""))


_CLIENT_CLASS: Any = None


def _client_class() -> Any:
    """NewClient with neonize's login-status callback (which only print()s) put to use."""
    global _CLIENT_CLASS
    if _CLIENT_CLASS is None:
        from neonize.client import NewClient

        class HostedClient(NewClient):
            def _NewClient__onLoginStatus(self, uuid: int, status: int) -> None:  # noqa: N802
                try:
                    text = ctypes.string_at(status).decode(errors="replace") if status else ""
                    tenant = getattr(self, "_wafleet_tenant", None)
                    if tenant is not None:
                        tenant.on_login_status(text)
                except Exception:  # noqa: BLE001
                    log.exception("login status callback failed")

        _CLIENT_CLASS = HostedClient
    return _CLIENT_CLASS


def main() -> int:
    # Keep fd 1 for the protocol only: everything else that writes to "stdout" goes to stderr.
    proto_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    out = Output(os.fdopen(proto_fd, "w", encoding="utf-8", buffering=1))
    level = os.environ.get("WAFLEET_LINKHOST_LOG_LEVEL", "WARNING").upper()
    logging.basicConfig(  # before neonize's own basicConfig, which then does nothing
        stream=sys.stderr, level=level, format=f"linkhost[{os.getpid()}] %(levelname)s %(name)s: %(message)s"
    )
    import neonize
    import neonize.client  # noqa: F401 - load the Go library now, not in a tenant thread

    host = Host(out)
    out.send({"event": "ready", "pid": os.getpid(), "neonize": getattr(neonize, "__version__", "?")})
    stdin = sys.stdin.buffer
    while True:
        raw = stdin.readline()
        if not raw:
            break
        try:
            cmd = json.loads(raw)
            if not isinstance(cmd, dict):
                raise ValueError("a command is a JSON object")
        except ValueError as exc:
            out.send({"event": "error", "op": "protocol", "message": f"bad command line: {exc}"})
            continue
        try:
            host.handle(cmd)
        except Exception as exc:  # noqa: BLE001
            log.exception("command %r failed", cmd.get("cmd"))
            out.send(
                {
                    "event": "error",
                    "session": cmd.get("session"),
                    "op": str(cmd.get("cmd")),
                    "ref": cmd.get("ref"),
                    "message": str(exc),
                }
            )
    host.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
