"""The booking engine: the only place that decides availability, conflicts and codes.

Understanding (rules or a model) only extracts what the customer asked for; this module checks it
against the company's hours and horizon, books through the database's no-overlap guarantee, and
when it must refuse, finds the nearest free starts for that service (same day first).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from wafleet.actors.assistant.config import CompanyConfig
from wafleet.storage import bookings
from wafleet.storage.bookings import BookingRow
from wafleet.storage.crypto import DecryptionError
from wafleet.storage.database import Database
from wafleet.storage.phone_vault import PhoneVault

log = logging.getLogger(__name__)

ALTERNATIVES = 3
MAX_SCAN_DAYS = 31  # how far past the asked day the alternatives look


class Refusal(StrEnum):
    TAKEN = "slot_taken"
    PAST = "past"
    CLOSED = "closed_day"
    OUTSIDE_HOURS = "outside_hours"
    BEYOND_HORIZON = "beyond_horizon"


class EngineError(ValueError):
    """The request names something the company does not have (an API 400/404)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class BookingView:
    code: str
    service: str
    resource: str
    start: dt.datetime  # aware, in the company's timezone
    end: dt.datetime
    status: str
    customer_phone: str | None
    customer_name: str | None

    def json(self, with_phone: bool = True) -> dict[str, Any]:
        body = {
            "code": self.code,
            "service": self.service,
            "resource": self.resource,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "status": self.status,
            "customerName": self.customer_name,
        }
        if with_phone:
            body["customerPhone"] = self.customer_phone
        return body


@dataclass(frozen=True)
class Booked:
    booking: BookingView


@dataclass(frozen=True)
class Refused:
    reason: Refusal
    alternatives: list[dt.datetime] = field(default_factory=list)


Outcome = Booked | Refused
EventSink = Callable[[str, str, dict[str, Any]], None]  # (company, kind, data)


def _ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


class Engine:
    def __init__(
        self,
        db: Database,
        vault: PhoneVault,
        events: EventSink = lambda company, kind, data: None,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.db = db
        self.vault = vault
        self.events = events
        self.clock = clock

    # -- reading ----------------------------------------------------------------------------------
    def now(self, cfg: CompanyConfig) -> dt.datetime:
        return self.clock().astimezone(cfg.tz)

    def view(self, cfg: CompanyConfig, row: BookingRow) -> BookingView:
        tz = cfg.tz
        return BookingView(
            code=row.code,
            service=row.service,
            resource=row.resource,
            start=dt.datetime.fromtimestamp(row.start_ms / 1000, tz),
            end=dt.datetime.fromtimestamp(row.end_ms / 1000, tz),
            status=row.status,
            customer_phone=self._phone(row),
            customer_name=row.customer_name,
        )

    def _phone(self, row: BookingRow) -> str | None:
        """The customer's phone; None when it cannot be decrypted (another key), never a 500."""
        try:
            return self.vault.open(row.company_id, row.sealed_phone)
        except DecryptionError:
            log.warning(
                "booking %s of %s: the customer's phone does not decrypt with this key",
                row.code,
                row.company_id,
            )
            return None

    def _service(self, cfg: CompanyConfig, service_id: str) -> Any:
        service = cfg.service(service_id)
        if service is None:
            raise EngineError(
                "unknown_service",
                f"no service {service_id!r}; known: {', '.join(s.id for s in cfg.services)}",
            )
        return service

    def _day_span(self, cfg: CompanyConfig, day: dt.date) -> tuple[dt.datetime, dt.datetime] | None:
        if day in cfg.closed or day.weekday() not in cfg.hours:
            return None
        opens, closes = cfg.hours[day.weekday()]
        tz = cfg.tz
        return dt.datetime.combine(day, opens, tz), dt.datetime.combine(day, closes, tz)

    def _last_day(self, cfg: CompanyConfig, now: dt.datetime) -> dt.date:
        return now.date() + dt.timedelta(days=cfg.horizon_days)

    def free_starts(self, cfg: CompanyConfig, service_id: str, day: dt.date) -> list[dt.datetime]:
        """Every start on ``day`` where some resource doing the service is free, in order."""
        service = self._service(cfg, service_id)
        now = self.now(cfg)
        span = self._day_span(cfg, day)
        if span is None or day < now.date() or day > self._last_day(cfg, now):
            return []
        opens, closes = span
        duration = dt.timedelta(minutes=service.duration_min)
        step = dt.timedelta(minutes=cfg.slot_step_min)
        resources = cfg.resources_for(service_id)
        busy: dict[str, list[tuple[int, int]]] = {r: [] for r in resources}
        for resource, start, end in bookings.busy(
            self.db, cfg.company_id, resources, _ms(opens), _ms(closes)
        ):
            busy[resource].append((start, end))
        free = []
        start = opens
        while start + duration <= closes:
            if start > now:
                s, e = _ms(start), _ms(start + duration)
                if any(all(not (bs < e and be > s) for bs, be in busy[r]) for r in resources):
                    free.append(start)
            start += step
        return free

    def check(self, cfg: CompanyConfig, service_id: str, start: dt.datetime) -> Refusal | None:
        """Why this start cannot be booked whatever the other bookings, or None."""
        service = self._service(cfg, service_id)
        now = self.now(cfg)
        start = start.astimezone(cfg.tz)
        if start <= now:
            return Refusal.PAST
        if start.date() > self._last_day(cfg, now):
            return Refusal.BEYOND_HORIZON
        span = self._day_span(cfg, start.date())
        if span is None:
            return Refusal.CLOSED
        if start < span[0] or start + dt.timedelta(minutes=service.duration_min) > span[1]:
            return Refusal.OUTSIDE_HOURS
        return None

    def alternatives(self, cfg: CompanyConfig, service_id: str, wanted: dt.datetime) -> list[dt.datetime]:
        """The nearest free starts: on the asked day by distance, then the following days."""
        now = self.now(cfg)
        wanted = wanted.astimezone(cfg.tz)
        day = wanted.date()
        if day < now.date() or day > self._last_day(cfg, now):
            day, wanted = now.date(), now
        same_day = sorted(self.free_starts(cfg, service_id, day), key=lambda s: (abs(s - wanted), s))
        chosen = sorted(same_day[:ALTERNATIVES])
        last = min(self._last_day(cfg, now), day + dt.timedelta(days=MAX_SCAN_DAYS))
        while len(chosen) < ALTERNATIVES and day < last:
            day += dt.timedelta(days=1)
            chosen.extend(self.free_starts(cfg, service_id, day)[: ALTERNATIVES - len(chosen)])
        return chosen

    # -- writing ----------------------------------------------------------------------------------
    def book(
        self,
        cfg: CompanyConfig,
        *,
        service_id: str,
        start: dt.datetime,
        phone: str,
        name: str | None = None,
        resource: str | None = None,
        source: str = "assistant",
    ) -> Outcome:
        service = self._service(cfg, service_id)
        candidates = cfg.resources_for(service_id)
        if resource is not None:
            if resource not in candidates:
                raise EngineError("unknown_resource", f"resource {resource!r} does not do {service_id!r}")
            candidates = [resource]
        refusal = self.check(cfg, service_id, start)
        if refusal is not None:
            return Refused(refusal, self.alternatives(cfg, service_id, start))
        company = cfg.company_id
        start = start.astimezone(cfg.tz)
        row = bookings.insert(
            self.db,
            company_id=company,
            resources=candidates,
            service=service_id,
            start_ms=_ms(start),
            end_ms=_ms(start + dt.timedelta(minutes=service.duration_min)),
            sealed_phone=self.vault.seal(company, phone),
            customer_hash=self.vault.lookup(company, phone),
            customer_name=name,
            source=source,
        )
        if row is None:
            return Refused(Refusal.TAKEN, self.alternatives(cfg, service_id, start))
        view = self.view(cfg, row)
        self.events(company, "booking.created", view.json(with_phone=False))
        return Booked(view)

    def find(self, cfg: CompanyConfig, code: str, phone: str | None = None) -> BookingRow | None:
        """The booking with this code; with ``phone``, only if that customer made it."""
        company = cfg.company_id
        row = bookings.get_by_code(self.db, company, code.upper())
        if row is None or (phone is not None and row.customer_hash != self.vault.lookup(company, phone)):
            return None
        return row

    def upcoming(self, cfg: CompanyConfig, phone: str) -> list[BookingRow]:
        company = cfg.company_id
        return bookings.upcoming_for(self.db, company, self.vault.lookup(company, phone), _ms(self.now(cfg)))

    def cancel(self, cfg: CompanyConfig, code: str, phone: str | None = None) -> BookingView | None:
        """Cancel a confirmed booking: by its customer (``phone``) or by the company (None)."""
        row = self.find(cfg, code, phone)
        if row is None or row.status != "confirmed" or not bookings.set_status(self.db, row.id, "cancelled"):
            return None
        view = self.view(cfg, bookings.get_by_id(self.db, row.id) or row)
        self.events(cfg.company_id, "booking.cancelled", view.json(with_phone=False))
        return view

    def reschedule(
        self, cfg: CompanyConfig, row: BookingRow, start: dt.datetime, resource: str | None = None
    ) -> Outcome:
        """Move a booking; if the new time cannot be had, the booking stays as it was."""
        service = self._service(cfg, row.service)
        refusal = self.check(cfg, row.service, start)
        if refusal is not None:
            return Refused(refusal, self.alternatives(cfg, row.service, start))
        candidates = cfg.resources_for(row.service)
        if resource is not None and resource in candidates:
            candidates = [resource]
        elif row.resource in candidates:  # the customer's own staff first
            candidates = [row.resource] + [r for r in candidates if r != row.resource]
        start = start.astimezone(cfg.tz)
        moved = bookings.move(
            self.db, row, candidates, _ms(start), _ms(start + dt.timedelta(minutes=service.duration_min))
        )
        if moved is None:
            return Refused(Refusal.TAKEN, self.alternatives(cfg, row.service, start))
        view = self.view(cfg, moved)
        previous = self.view(cfg, row)
        self.events(
            cfg.company_id,
            "booking.rescheduled",
            dict(view.json(with_phone=False), previousStart=previous.start.isoformat()),
        )
        return Booked(view)
