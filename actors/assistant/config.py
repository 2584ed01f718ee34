"""A company's assistant configuration: parsed and validated once, then plain frozen data.

Every error names the field the way the JSON spells it (``services[1].durationMin``), so the
company can fix its document without guessing.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from wafleet.actors.assistant.understanding import ResourceInfo, ServiceInfo

LANGUAGES = ("ru", "pt", "en")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # date.weekday() order
ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
HHMM_RE = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")
DATE_RE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
MAX_SERVICES = 100
MAX_RESOURCES = 100
MAX_FAQ = 100
MAX_ALIASES = 20
MAX_CLOSED = 400
# Text without control characters (Unicode Cc), and with something visible in it.
_TEXT = r"^(?=[\s\S]*\S)[^\x00-\x1f\x7f-\x9f]*$"
PATTERN_WORDS = {
    _TEXT: "must be a non-empty string without control characters",
    ID_RE.pattern: "must be 1-64 letters, digits, _ or -",
    HHMM_RE.pattern: 'must be a time "HH:MM" (24-hour)',
    DATE_RE: 'must be a date "YYYY-MM-DD"',
}


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


def _text(max_length: int) -> Any:
    return Annotated[str, StringConstraints(max_length=max_length, pattern=_TEXT)]


class _Shape(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, regex_engine="python-re")


class ServiceDoc(_Shape):
    id: Annotated[str, StringConstraints(pattern=ID_RE.pattern)]
    name: _text(100)
    aliases: Annotated[list[_text(100)], Field(max_length=MAX_ALIASES)] = []
    durationMin: Annotated[int, Field(ge=5, le=720)]  # noqa: N815
    price: Annotated[float, Field(ge=0)] | None = None


class ResourceDoc(_Shape):
    id: Annotated[str, StringConstraints(pattern=ID_RE.pattern)]
    name: _text(100)
    services: Annotated[
        list[Annotated[str, StringConstraints(max_length=64)]], Field(min_length=1, max_length=MAX_SERVICES)
    ]


class Span(_Shape):
    open: Annotated[str, StringConstraints(pattern=HHMM_RE.pattern)]
    close: Annotated[str, StringConstraints(pattern=HHMM_RE.pattern)]


class HoursDoc(_Shape):
    """Opening hours per weekday (absent or null: closed that day) and closed dates."""

    mon: Span | None = None
    tue: Span | None = None
    wed: Span | None = None
    thu: Span | None = None
    fri: Span | None = None
    sat: Span | None = None
    sun: Span | None = None
    closed: Annotated[
        list[Annotated[str, StringConstraints(pattern=DATE_RE)]], Field(max_length=MAX_CLOSED)
    ] = []


class FaqDoc(_Shape):
    question: _text(500)
    answer: _text(2000)


class AiDoc(_Shape):
    enabled: bool = True
    model: _text(100) | None = None


class ConfigDocument(_Shape):
    """A company's assistant configuration as the API takes and returns it."""

    enabled: bool = True
    languages: Annotated[list[Literal[LANGUAGES]], Field(min_length=1, max_length=len(LANGUAGES))] = ["en"]  # type: ignore[valid-type]
    timezone: _text(64)
    businessName: _text(200)  # noqa: N815
    services: Annotated[list[ServiceDoc], Field(min_length=1, max_length=MAX_SERVICES)]
    resources: Annotated[list[ResourceDoc], Field(min_length=1, max_length=MAX_RESOURCES)]
    hours: HoursDoc
    slotStepMin: Annotated[int, Field(ge=5, le=240)] = 15  # noqa: N815
    horizonDays: Annotated[int, Field(ge=1, le=365)] = 60  # noqa: N815
    faq: Annotated[list[FaqDoc], Field(max_length=MAX_FAQ)] = []
    ai: AiDoc = AiDoc()


def field_path(loc: tuple[int | str, ...]) -> str:
    """("services", 2, "durationMin") -> "services[2].durationMin"."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def shape(data: Any) -> ConfigDocument:
    """The document's shape, or :class:`ConfigInvalid` naming the first bad field."""
    if isinstance(data, ConfigDocument):
        return data
    try:
        return ConfigDocument.model_validate(data)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        path = field_path(tuple(error["loc"])) or "document"
        if error["type"] == "extra_forbidden":
            raise ConfigInvalid(path, "unknown field") from None
        if error["type"] in ("model_type", "dict_type", "model_attributes_type"):
            raise ConfigInvalid(path, "must be an object") from None
        if error["type"] == "string_unicode":
            raise ConfigInvalid(path, "must not contain control characters or lone surrogates") from None
        if error["type"] == "string_pattern_mismatch":
            words = PATTERN_WORDS.get(error.get("ctx", {}).get("pattern"), "has the wrong form")
            raise ConfigInvalid(path, words) from None
        raise ConfigInvalid(path, error["msg"][:1].lower() + error["msg"][1:]) from None


def _time(value: str) -> dt.time:
    hours, minutes = value.split(":")
    return dt.time(int(hours), int(minutes))


def parse(data: Any, company_id: str) -> CompanyConfig:
    """Validate a PUT body (its shape, then what the shape cannot say: a real time zone, ids
    not repeated and referred to, real dates); raises :class:`ConfigInvalid` naming the first
    bad field."""
    doc = shape(data)
    languages = list(doc.languages)
    if len(set(languages)) != len(languages):
        raise ConfigInvalid("languages", "must not repeat a language")
    timezone = doc.timezone
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigInvalid("timezone", "must be an IANA time zone such as Europe/Lisbon") from None
    business = doc.businessName.strip()

    services: list[Service] = []
    for i, raw in enumerate(doc.services):
        if any(s.id == raw.id for s in services):
            raise ConfigInvalid(f"services[{i}].id", f"repeats the id {raw.id!r}")
        services.append(
            Service(
                id=raw.id,
                name=raw.name.strip(),
                aliases=tuple(a.strip() for a in raw.aliases),
                duration_min=raw.durationMin,
                price=float(raw.price) if raw.price is not None else None,
            )
        )
    service_ids = {s.id for s in services}

    resources: list[Resource] = []
    for i, raw_resource in enumerate(doc.resources):
        f = f"resources[{i}]"
        if any(r.id == raw_resource.id for r in resources):
            raise ConfigInvalid(f"{f}.id", f"repeats the id {raw_resource.id!r}")
        for j, sid in enumerate(raw_resource.services):
            if sid not in service_ids:
                raise ConfigInvalid(f"{f}.services[{j}]", f"names no service: {sid!r}")
        resources.append(Resource(raw_resource.id, raw_resource.name.strip(), tuple(raw_resource.services)))
    for s in services:
        if not any(s.id in r.services for r in resources):
            raise ConfigInvalid("resources", f"no resource does the service {s.id!r}")

    hours: dict[int, tuple[dt.time, dt.time]] = {}
    for index, day in enumerate(WEEKDAYS):
        span = getattr(doc.hours, day)
        if span is None:
            continue
        opens, closes = _time(span.open), _time(span.close)
        if closes <= opens:
            raise ConfigInvalid(f"hours.{day}.close", "must be later than open")
        hours[index] = (opens, closes)
    closed: set[dt.date] = set()
    for i, raw_date in enumerate(doc.hours.closed):
        try:
            closed.add(dt.date.fromisoformat(raw_date))
        except ValueError:
            raise ConfigInvalid(f"hours.closed[{i}]", 'must be a date "YYYY-MM-DD"') from None

    faq = [(q.question.strip(), q.answer.strip()) for q in doc.faq]
    ai_model = doc.ai.model.strip() if doc.ai.model is not None else None

    document = {
        "enabled": doc.enabled,
        "languages": languages,
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
        "slotStepMin": doc.slotStepMin,
        "horizonDays": doc.horizonDays,
        "faq": [{"question": q, "answer": a} for q, a in faq],
        "ai": {"enabled": doc.ai.enabled, "model": ai_model},
    }
    return CompanyConfig(
        company_id=company_id,
        enabled=doc.enabled,
        languages=tuple(languages),
        timezone=timezone,
        business_name=business,
        services=tuple(services),
        resources=tuple(resources),
        hours=hours,
        closed=frozenset(closed),
        slot_step_min=doc.slotStepMin,
        horizon_days=doc.horizonDays,
        faq=tuple(faq),
        ai_enabled=doc.ai.enabled,
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
