"""A company's assistant configuration: parsed and validated once, then plain frozen data.

Every error names the field the way the JSON spells it (``services[1].durationMin``), so the
company can fix its document without guessing.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from wafleet.actors.assistant.understanding import ResourceInfo, ServiceInfo

LANGUAGES = ("ru", "pt", "en")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # date.weekday() order
ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
HHMM_RE = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")
MAX_SERVICES = 100
MAX_RESOURCES = 100
MAX_FAQ = 100
MAX_ALIASES = 20
MAX_CLOSED = 400
TOP_FIELDS = {
    "enabled", "languages", "timezone", "businessName", "services", "resources", "hours",
    "slotStepMin", "horizonDays", "faq", "ai",
}  # fmt: skip


class ConfigInvalid(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class Service:
    id: str
    name: str
    aliases: tuple[str, ...]
    duration_min: int
    price: float | None

    def info(self) -> ServiceInfo:
        return ServiceInfo(self.id, self.name, self.aliases, self.duration_min)


@dataclass(frozen=True)
class Resource:
    id: str
    name: str
    services: tuple[str, ...]


@dataclass(frozen=True)
class CompanyConfig:
    company_id: str
    enabled: bool
    languages: tuple[str, ...]
    timezone: str
    business_name: str
    services: tuple[Service, ...]
    resources: tuple[Resource, ...]
    hours: dict[int, tuple[dt.time, dt.time]]  # weekday -> (open, close); absent: closed
    closed: frozenset[dt.date]
    slot_step_min: int
    horizon_days: int
    faq: tuple[tuple[str, str], ...]
    ai_enabled: bool
    ai_model: str | None
    document: dict[str, Any]  # the normalised JSON, as GET returns it

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def service(self, service_id: str) -> Service | None:
        return next((s for s in self.services if s.id == service_id), None)

    def resources_for(self, service_id: str) -> list[str]:
        return [r.id for r in self.resources if service_id in r.services]

    def service_infos(self) -> tuple[ServiceInfo, ...]:
        return tuple(s.info() for s in self.services)

    def resource_infos(self) -> tuple[ResourceInfo, ...]:
        return tuple(ResourceInfo(r.id, r.name, r.services) for r in self.resources)

    def hours_text(self) -> str:
        parts = []
        for index, day in enumerate(WEEKDAYS):
            span = self.hours.get(index)
            parts.append(f"{day} {span[0]:%H:%M}-{span[1]:%H:%M}" if span else f"{day} closed")
        if self.closed:
            parts.append("closed on " + ", ".join(sorted(d.isoformat() for d in self.closed)))
        return "; ".join(parts)


def _str(value: Any, field: str, *, max_len: int, required: bool = True) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigInvalid(field, "must be a non-empty string")
    if len(value) > max_len:
        raise ConfigInvalid(field, f"must be at most {max_len} characters")
    if any(ord(c) < 32 or 0xD800 <= ord(c) <= 0xDFFF for c in value):
        raise ConfigInvalid(field, "must not contain control characters")
    return value.strip()


def _int(value: Any, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigInvalid(field, f"must be a whole number from {low} to {high}")
    return value


def _list(value: Any, field: str, high: int, low: int = 0) -> list[Any]:
    if not isinstance(value, list):
        raise ConfigInvalid(field, "must be a list")
    if not low <= len(value) <= high:
        raise ConfigInvalid(field, f"must hold {low} to {high} items")
    return value


def _obj(value: Any, field: str, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigInvalid(field, "must be an object")
    unknown = sorted(set(value) - allowed)
    if unknown:
        prefix = f"{field}." if field else ""
        raise ConfigInvalid(f"{prefix}{unknown[0]}", f"unknown field; allowed: {', '.join(sorted(allowed))}")
    return value


def _time(value: Any, field: str) -> dt.time:
    match = HHMM_RE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ConfigInvalid(field, 'must be a time "HH:MM" (24-hour)')
    return dt.time(int(match.group(1)), int(match.group(2)))


def parse(data: Any, company_id: str) -> CompanyConfig:
    """Validate a PUT body; raises :class:`ConfigInvalid` naming the first bad field."""
    data = _obj(data, "", TOP_FIELDS)
    enabled = data.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigInvalid("enabled", "must be true or false")

    languages = _list(data.get("languages", ["en"]), "languages", len(LANGUAGES), 1)
    for i, lang in enumerate(languages):
        if lang not in LANGUAGES:
            raise ConfigInvalid(f"languages[{i}]", f"must be one of {', '.join(LANGUAGES)}")
    if len(set(languages)) != len(languages):
        raise ConfigInvalid("languages", "must not repeat a language")

    timezone = _str(data.get("timezone"), "timezone", max_len=64)
    try:
        ZoneInfo(timezone or "")
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigInvalid("timezone", "must be an IANA time zone such as Europe/Lisbon") from None

    business = _str(data.get("businessName"), "businessName", max_len=200)

    services: list[Service] = []
    for i, raw in enumerate(_list(data.get("services"), "services", MAX_SERVICES, 1)):
        f = f"services[{i}]"
        raw = _obj(raw, f, {"id", "name", "aliases", "durationMin", "price"})
        sid = raw.get("id")
        if not isinstance(sid, str) or not ID_RE.fullmatch(sid):
            raise ConfigInvalid(f"{f}.id", "must be 1-64 letters, digits, _ or -")
        if any(s.id == sid for s in services):
            raise ConfigInvalid(f"{f}.id", f"repeats the id {sid!r}")
        aliases = tuple(
            _str(a, f"{f}.aliases[{j}]", max_len=100) or ""
            for j, a in enumerate(_list(raw.get("aliases", []), f"{f}.aliases", MAX_ALIASES))
        )
        price = raw.get("price")
        if price is not None and (isinstance(price, bool) or not isinstance(price, int | float) or price < 0):
            raise ConfigInvalid(f"{f}.price", "must be a number >= 0")
        services.append(
            Service(
                id=sid,
                name=_str(raw.get("name"), f"{f}.name", max_len=100) or "",
                aliases=aliases,
                duration_min=_int(raw.get("durationMin"), f"{f}.durationMin", 5, 720),
                price=float(price) if price is not None else None,
            )
        )
    service_ids = {s.id for s in services}

    resources: list[Resource] = []
    for i, raw in enumerate(_list(data.get("resources"), "resources", MAX_RESOURCES, 1)):
        f = f"resources[{i}]"
        raw = _obj(raw, f, {"id", "name", "services"})
        rid = raw.get("id")
        if not isinstance(rid, str) or not ID_RE.fullmatch(rid):
            raise ConfigInvalid(f"{f}.id", "must be 1-64 letters, digits, _ or -")
        if any(r.id == rid for r in resources):
            raise ConfigInvalid(f"{f}.id", f"repeats the id {rid!r}")
        does = _list(raw.get("services"), f"{f}.services", MAX_SERVICES, 1)
        for j, sid in enumerate(does):
            if sid not in service_ids:
                raise ConfigInvalid(f"{f}.services[{j}]", f"names no service: {sid!r}")
        resources.append(Resource(rid, _str(raw.get("name"), f"{f}.name", max_len=100) or "", tuple(does)))
    for s in services:
        if not any(s.id in r.services for r in resources):
            raise ConfigInvalid("resources", f"no resource does the service {s.id!r}")

    hours_raw = _obj(data.get("hours"), "hours", {*WEEKDAYS, "closed"})
    hours: dict[int, tuple[dt.time, dt.time]] = {}
    for index, day in enumerate(WEEKDAYS):
        if hours_raw.get(day) is None:
            continue
        span = _obj(hours_raw[day], f"hours.{day}", {"open", "close"})
        opens = _time(span.get("open"), f"hours.{day}.open")
        closes = _time(span.get("close"), f"hours.{day}.close")
        if closes <= opens:
            raise ConfigInvalid(f"hours.{day}.close", "must be later than open")
        hours[index] = (opens, closes)
    closed: set[dt.date] = set()
    for i, raw in enumerate(_list(hours_raw.get("closed", []), "hours.closed", MAX_CLOSED)):
        try:
            if not isinstance(raw, str) or len(raw) != 10:
                raise ValueError(raw)
            closed.add(dt.date.fromisoformat(raw))
        except ValueError:
            raise ConfigInvalid(f"hours.closed[{i}]", 'must be a date "YYYY-MM-DD"') from None

    step = _int(data.get("slotStepMin", 15), "slotStepMin", 5, 240)
    horizon = _int(data.get("horizonDays", 60), "horizonDays", 1, 365)

    faq: list[tuple[str, str]] = []
    for i, raw in enumerate(_list(data.get("faq", []), "faq", MAX_FAQ)):
        raw = _obj(raw, f"faq[{i}]", {"question", "answer"})
        faq.append(
            (
                _str(raw.get("question"), f"faq[{i}].question", max_len=500) or "",
                _str(raw.get("answer"), f"faq[{i}].answer", max_len=2000) or "",
            )
        )

    ai_raw = _obj(data.get("ai", {}), "ai", {"enabled", "model"})
    ai_enabled = ai_raw.get("enabled", True)
    if not isinstance(ai_enabled, bool):
        raise ConfigInvalid("ai.enabled", "must be true or false")
    ai_model = _str(ai_raw.get("model"), "ai.model", max_len=100, required=False)

    document = {
        "enabled": enabled,
        "languages": list(languages),
        "timezone": timezone,
        "businessName": business,
        "services": [
            {"id": s.id, "name": s.name, "aliases": list(s.aliases), "durationMin": s.duration_min}
            | ({"price": s.price} if s.price is not None else {})
            for s in services
        ],
        "resources": [{"id": r.id, "name": r.name, "services": list(r.services)} for r in resources],
        "hours": {
            **{
                WEEKDAYS[i]: {"open": f"{o:%H:%M}", "close": f"{c:%H:%M}"}
                for i, (o, c) in sorted(hours.items())
            },
            "closed": sorted(d.isoformat() for d in closed),
        },
        "slotStepMin": step,
        "horizonDays": horizon,
        "faq": [{"question": q, "answer": a} for q, a in faq],
        "ai": {"enabled": ai_enabled, "model": ai_model},
    }
    return CompanyConfig(
        company_id=company_id,
        enabled=enabled,
        languages=tuple(languages),
        timezone=timezone or "UTC",
        business_name=business or "",
        services=tuple(services),
        resources=tuple(resources),
        hours=hours,
        closed=frozenset(closed),
        slot_step_min=step,
        horizon_days=horizon,
        faq=tuple(faq),
        ai_enabled=ai_enabled,
        ai_model=ai_model,
        document=document,
    )


DEMO = {
    "enabled": True,
    "languages": ["ru", "pt", "en"],
    "timezone": "Europe/Lisbon",
    "businessName": "Salon Demo",
    "services": [
        {"id": "haircut", "name": "Стрижка", "aliases": ["haircut", "corte", "стрижку", "corte de cabelo"], "durationMin": 60, "price": 30},
        {"id": "manicure", "name": "Manicure completa", "aliases": ["маникюр", "manicure", "unhas"], "durationMin": 45, "price": 20},
        {"id": "coloring", "name": "Hair coloring", "aliases": ["окрашивание", "coloração", "pintar o cabelo", "coloring"], "durationMin": 90, "price": 55},
    ],
    "resources": [
        {"id": "anna", "name": "Anna", "services": ["haircut", "coloring"]},
        {"id": "maria", "name": "Maria", "services": ["manicure"]},
    ],
    "hours": {
        "mon": {"open": "09:00", "close": "19:00"},
        "tue": {"open": "09:00", "close": "19:00"},
        "wed": {"open": "09:00", "close": "19:00"},
        "thu": {"open": "09:00", "close": "19:00"},
        "fri": {"open": "09:00", "close": "19:00"},
        "sat": {"open": "10:00", "close": "16:00"},
        "closed": [],
    },
    "slotStepMin": 15,
    "horizonDays": 60,
    "faq": [
        {"question": "Where are you? Где вы находитесь? Onde fica?", "answer": "Rua Augusta 100, Lisboa."},
        {"question": "Do you accept cards? Можно картой? Aceitam cartão?", "answer": "Yes: cards and cash / Да / Sim."},
    ],
    "ai": {"enabled": True, "model": None},
}  # fmt: skip
