"""Server-sent events: a company's live stream, and the admin's fleet stream.

Each stream subscribes first and then replays what the client missed (Last-Event-ID) from the
events table, so nothing falls between the two; duplicates are skipped by id. A heartbeat
comment keeps proxies from closing an idle stream.

A stream lives only as long as the right that opened it: deleting the company, rotating its token
and logging out end it at once (Broadcaster.end); it also checks its right when it starts and at
every heartbeat, and that its company is still the one it opened (an id can be reused). Streams
are capped per company (429) and per node (503): each holds a server slot for its whole life.
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
from wafleet.actors.directory import SessionRecord
from wafleet.http.api import ApiError
from wafleet.http.auth import Principal
from wafleet.http.context import Context
from wafleet.http.contract import Access, Content, declare
from wafleet.http.fields import DIGITS, Query, text
from wafleet.storage import events
from wafleet.storage.clock import iso
from wafleet.storage.events import EventRow

SSE_NAMES = {
    "status": "status",
    "qr": "qr",
    "pairing_code": "pairing-code",
    "message": "message",
    "alert": "alert",
    "zombie": "zombie",
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


class Resume(Query):
    """Where to resume: the id of the last event seen (the Last-Event-ID header wins)."""

    lastEventId: text(18, pattern=DIGITS) | None = None  # noqa: N815


STREAM = Content(
    media="text/event-stream",
    schema={"type": "string"},
    headers=("Cache-Control",),
    description="Server-sent events (status, qr, pairing-code, message, alert, zombie, booking.*): "
    "each with an id, an event name and JSON data; a comment line every heartbeat",
)
LAST_EVENT_ID = {"Last-Event-ID": {"type": "string", "pattern": DIGITS}}


def _last_event_id(query: Resume) -> int | None:
    raw = bottle.request.get_header("Last-Event-ID") or query.lastEventId
    if raw is None or raw == "":
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise ApiError(400, "invalid_last_event_id", "Last-Event-ID must be an event id (a whole number)")
    return int(raw)


class Stream:
    """The response body of one stream. Subscribed when created (so the caps count it at once);
    ``close`` (called by the server whether or not the body was ever iterated) unsubscribes."""

    def __init__(
        self,
        ctx: Context,
        principal: Principal,
        record: SessionRecord | None,
        last_id: int | None,
        heartbeat: float,
    ) -> None:
        self.ctx = ctx
        self.principal = principal
        self.record = record
        self.company_id = record.company_id if record is not None else None
        self.last_id = last_id
        self.heartbeat = heartbeat
        self.listener = ctx.broadcaster.subscribe(self.company_id, principal)
        sock = bottle.request.environ.get("wafleet.socket")
        self.watcher = gevent.spawn(_watch_hangup, sock, self.listener) if sock is not None else None

    def allowed(self) -> bool:
        """The right that opened the stream still stands, for the same company."""
        if self.record is not None:
            now = self.ctx.directory.get(self.record.company_id)
            if now is None or now.created_at != self.record.created_at:  # gone, or a new tenant
                return False
        return self.ctx.auth.still_valid(self.principal)

    def __iter__(self) -> Iterator[str]:
        yield "retry: 2000\n\n"
        if not self.allowed():
            return
        seen = self.last_id or 0
        if self.last_id is not None:
            for row in events.after(self.ctx.db, self.company_id, self.last_id, REPLAY_LIMIT):
                seen = row.id
                text = format_event(row)
                if text:
                    yield text
        queue = self.listener.queue
        while True:
            try:
                row = queue.get(timeout=self.heartbeat)
            except gevent.queue.Empty:
                if not self.allowed():
                    return
                yield ": keep-alive\n\n"
                continue
            if row is None:  # ended, or we fell behind: the client resumes from its last id
                return
            if row.id <= seen:
                continue
            seen = row.id
            text = format_event(row)
            if text:
                yield text

    def close(self) -> None:
        if self.watcher is not None:
            self.watcher.kill(block=False)
        self.ctx.broadcaster.unsubscribe(self.listener)


def install(app: bottle.Bottle, ctx: Context, broadcaster: Broadcaster, heartbeat: float) -> None:
    settings = ctx.settings

    def respond_stream(principal: Principal, record: SessionRecord | None, query: Resume) -> Any:
        last_id = _last_event_id(query)
        company_id = record.company_id if record is not None else None
        if company_id is not None and broadcaster.count_for(company_id) >= settings.sse_max_per_company:
            raise ApiError(
                429,
                "too_many_streams",
                f"this company already has {settings.sse_max_per_company} open event streams",
                {"Retry-After": "5"},
            )
        if broadcaster.count() >= settings.sse_max_streams:
            raise ApiError(
                503,
                "too_many_streams",
                "this node has no room for another event stream",
                {"Retry-After": "5"},
            )
        bottle.response.content_type = "text/event-stream"
        bottle.response.set_header("Cache-Control", "no-cache")
        bottle.response.set_header("X-Accel-Buffering", "no")
        return Stream(ctx, principal, record, last_id, heartbeat)

    def company_events(company_id: str, query: Resume) -> Any:
        principal, record = ctx.authorised_record(company_id)
        return respond_stream(principal, record, query)

    def fleet_events(query: Resume) -> Any:
        return respond_stream(ctx.auth.admin(), None, query)

    declare(
        app, "GET", "/api/whatsapp/sessions/<company_id>/events", company_events,
        summary="The company's live events (server-sent events)", tag="sessions", access=Access.COMPANY,
        query=Resume, headers=LAST_EVENT_ID, ok={200: STREAM}, errors=(429,), twin=True,
    )  # fmt: skip
    declare(
        app, "GET", "/api/whatsapp/events", fleet_events, summary="Every company's live events (SSE)",
        tag="sessions", access=Access.ADMIN, query=Resume, headers=LAST_EVENT_ID, ok={200: STREAM},
    )  # fmt: skip
