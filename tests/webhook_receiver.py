"""A real webhook receiver on loopback, as a company's system would run one: it verifies the
signature of every request itself and can fail, hold or answer each one as a test scripts."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a node killed mid-request resets its connection: expected here


class Receiver:
    def __init__(self, secret: str | None = None, fail_first: int = 0, status: int = 200) -> None:
        self.secret = secret
        self.fail_first = fail_first  # the first N requests get a 500
        self.status = status  # the answer after those
        self.requests: list[dict[str, Any]] = []  # every request, in arrival order
        self.lock = threading.Lock()
        self.release = threading.Event()  # held requests wait for it
        self.release.set()
        self.hold_from: int | None = None  # requests from this index on are held until release
        self.held = threading.Event()  # set when a request is being held
        self.gates: dict[int, threading.Event] = {}  # request index -> held until that is set
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms ACK wait

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver._handle(self, raw)

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def _handle(self, handler: BaseHTTPRequestHandler, raw: bytes) -> None:
        headers = handler.headers
        expected = (
            "sha256=" + hmac.new(self.secret.encode(), raw, hashlib.sha256).hexdigest()
            if self.secret
            else None
        )
        with self.lock:
            index = len(self.requests)
            status = 500 if self.fail_first > 0 else self.status
            if self.fail_first > 0:
                self.fail_first -= 1
            record = {
                "index": index,
                "eventId": headers.get("X-Wafleet-Event-Id"),
                "type": headers.get("X-Wafleet-Event-Type"),
                "timestamp": headers.get("X-Wafleet-Timestamp"),
                "signature": headers.get("X-Wafleet-Signature"),
                "signatureOk": expected is not None
                and hmac.compare_digest(expected, headers.get("X-Wafleet-Signature") or ""),
                "body": json.loads(raw),
                "receivedAt": time.time(),
                "answered": None,
            }
            self.requests.append(record)
            hold = self.hold_from is not None and index >= self.hold_from
            gate = self.gates.get(index)
        if hold and not self.release.is_set():
            self.held.set()
            self.release.wait(60)
        if gate is not None:
            gate.wait(60)
        try:
            payload = b'{"ok":true}' if status < 300 else b'{"error":"try later"}'
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
            record["answered"] = status
        except OSError:
            pass  # the node went away while we held its request

    def snapshot(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.requests)

    def accepted(self) -> list[dict[str, Any]]:
        """Requests answered with a 2xx, in arrival order."""
        return [r for r in self.snapshot() if r["answered"] is not None and r["answered"] < 300]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
