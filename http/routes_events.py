"""Server-sent events: a company's live stream, and the admin's fleet stream.

Each stream subscribes first and then replays what the client missed (Last-Event-ID) from the
events table, so nothing falls between the two; duplicates are skipped by id. A heartbeat
comment keeps proxies from closing an idle stream.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import bottle
import gevent.queue
import gevent.socket

from wafleet.actors.broadcast import Broadcaster, Listener
from wafleet.http.api import ApiError
from wafleet.http.context import Context
from wafleet.http.routes_sessions import company_routes
from wafleet.storage import events
from wafleet.storage.clock import iso
from wafleet.storage.events import EventRow

SSE_NAMES = {
    "status": "status",
    "qr": "qr",
    "pairing_code": "pairing-code",
    "message": "message",
    "alert": "alert",
    "booking.created": "booking.created",
    "booking.cancelled": "booking.cancelled",
    "booking.rescheduled": "booking.rescheduled",
}
REPLAY_LIMIT = 1000


def format_event(row: EventRow) -> str | None:
    name = SSE_NAMES.get(row.kind)
    if name is None:
        return None
    data = {
        **row.data,
        "companyId": row.company_id,
        "state": row.state,
        "reason": row.reason,
        "at": iso(row.at),
    }
    return f"id: {row.id}\nevent: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def _watch_hangup(sock: socket.socket, listener: Listener) -> None:
    """Park until the client's socket turns readable; EOF means it hung up: end its stream now
    (a parked greenlet costs nothing; the heartbeat alone would notice only on its next write)."""
    try:
        gevent.socket.wait_read(sock.fileno())
        if sock.recv(1, socket.MSG_PEEK) != b"":
            return  # the client sent something (unexpected on a stream): stop watching
    except OSError:
        pass
    listener.queue.queue.clear()
    listener.queue.put_nowait(None)


def _last_event_id() -> int | None:
    raw = bottle.request.get_header("Last-Event-ID") or bottle.request.query.get("lastEventId")
    if raw is None or raw == "":
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise ApiError(400, "invalid_last_event_id", "Last-Event-ID must be an event id (a whole number)")
    return int(raw)


def install(app: bottle.Bottle, ctx: Context, broadcaster: Broadcaster, heartbeat: float) -> None:
    def stream(company_id: str | None, last_id: int | None, sock: socket.socket | None) -> Iterator[str]:
        listener = broadcaster.subscribe(company_id)
        watcher = gevent.spawn(_watch_hangup, sock, listener) if sock is not None else None
        try:
            yield "retry: 2000\n\n"
            seen = last_id or 0
            if last_id is not None:
                for row in events.after(ctx.db, company_id, last_id, REPLAY_LIMIT):
                    seen = row.id
                    text = format_event(row)
                    if text:
                        yield text
            while True:
                try:
                    row = listener.queue.get(timeout=heartbeat)
                except gevent.queue.Empty:
                    yield ": keep-alive\n\n"
                    continue
                if row is None:  # we fell behind: end; the client resumes from its last id
                    return
                if row.id <= seen:
                    continue
                seen = row.id
                text = format_event(row)
                if text:
                    yield text
        finally:
            if watcher is not None:
                watcher.kill(block=False)
            broadcaster.unsubscribe(listener)

    def respond_stream(company_id: str | None) -> Any:
        last_id = _last_event_id()
        bottle.response.content_type = "text/event-stream"
        bottle.response.set_header("Cache-Control", "no-cache")
        bottle.response.set_header("X-Accel-Buffering", "no")
        return stream(company_id, last_id, bottle.request.environ.get("wafleet.socket"))

    def company_events(company_id: str) -> Any:
        ctx.authorised_record(company_id)
        return respond_stream(company_id)

    company_routes(app, ctx, "/api/whatsapp/sessions", "events", "GET", company_events)

    @app.get("/api/whatsapp/events")
    def fleet_events() -> Any:
        ctx.auth.admin()
        return respond_stream(None)
