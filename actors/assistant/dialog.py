"""One turn of a conversation: what the customer meant (an Understanding) + what the engine says
= the reply and the conversation's next state.

Missing slots are asked for one at a time and remembered; a refusal offers the nearest free
starts, and a bare answer ("15:30", "the second") picks one. Every fact in a reply (a code, a
time, a refusal) comes from the booking engine, never from the model.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from wafleet.actors.assistant import replies
from wafleet.actors.assistant.config import LANGUAGES, CompanyConfig
from wafleet.actors.assistant.engine import Booked, BookingView, Engine, Refused
from wafleet.actors.assistant.understanding import Intent, Slot, Turn, Understanding

RECENT_TURNS = 10
FLOWS = {
    Intent.BOOKING: "book",
    Intent.AVAILABILITY: "book",
    Intent.CANCEL: "cancel",
    Intent.RESCHEDULE: "reschedule",
}
FLOW_INTENTS = {"book": Intent.BOOKING, "cancel": Intent.CANCEL, "reschedule": Intent.RESCHEDULE}
TIMES_LISTED = 8


@dataclass
class DialogState:
    """Everything a conversation remembers between turns (persisted as JSON)."""

    language: str | None = None
    flow: str | None = None  # book | cancel | reschedule
    service: str | None = None
    date: str | None = None  # ISO date
    time: str | None = None  # HH:MM
    resource: str | None = None
    code: str | None = None
    pending: str | None = None  # a Slot value
    offered: list[str] = field(default_factory=list)  # ISO datetimes with offset
    recent: list[list[str]] = field(default_factory=list)  # [role, text], oldest first

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DialogState:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def json(self) -> dict[str, Any]:
        return asdict(self)

    def remember(self, role: str, text: str) -> None:
        self.recent.append([role, text[:1000]])
        del self.recent[:-RECENT_TURNS]

    def turns(self) -> tuple[Turn, ...]:
        return tuple(Turn(role, text) for role, text in self.recent)

    def offered_times(self) -> tuple[dt.datetime, ...]:
        return tuple(dt.datetime.fromisoformat(s) for s in self.offered)

    def reset(self) -> None:
        self.flow = self.service = self.date = self.time = self.resource = self.code = None
        self.pending = None
        self.offered = []


@dataclass(frozen=True)
class TurnResult:
    reply: str
    outcome: str | None = None  # booked, refused, cancelled, rescheduled, asked, answered


class Dialog:
    def __init__(self, cfg: CompanyConfig, engine: Engine, phone: str, name: str | None = None) -> None:
        self.cfg = cfg
        self.engine = engine
        self.phone = phone
        self.name = name

    # -- helpers ----------------------------------------------------------------------------------
    def _services(self) -> str:
        return ", ".join(s.name for s in self.cfg.services)

    def _service_name(self, service_id: str | None) -> str:
        service = self.cfg.service(service_id or "")
        return service.name if service else (service_id or "")

    def _resource_name(self, resource_id: str) -> str:
        return next((r.name for r in self.cfg.resources if r.id == resource_id), resource_id)

    def _start(self, s: DialogState) -> dt.datetime:
        assert s.date and s.time
        return dt.datetime.combine(dt.date.fromisoformat(s.date), dt.time.fromisoformat(s.time), self.cfg.tz)

    def _list_bookings(self, lang: str) -> str:
        rows = self.engine.upcoming(self.cfg, self.phone)
        if not rows:
            return ""
        views = [self.engine.view(self.cfg, r) for r in rows[:5]]
        items = ", ".join(
            f"{v.code} ({self._service_name(v.service)}, {replies.when(lang, v.start)})" for v in views
        )
        return " " + replies.say(lang, "your_bookings", list=items)

    # -- the turn ---------------------------------------------------------------------------------
    def turn(self, s: DialogState, u: Understanding, text: str = "") -> TurnResult:
        lang = u.language if u.language in LANGUAGES else (s.language or self.cfg.languages[0])
        s.language = lang
        has_slots = any(v is not None for v in (u.service, u.date, u.time, u.code, u.choice))

        if s.pending == Slot.CHOICE and s.flow in ("book", "reschedule"):
            picked = self._picked(s, u)
            if picked is not None:
                s.date, s.time = picked.date().isoformat(), f"{picked:%H:%M}"
                return self._advance(s, lang, availability=False)

        intent = u.intent
        flow = FLOWS.get(intent)
        if flow is not None:
            if s.flow != flow:  # a new request; the same one goes on with what it has
                s.reset()
                s.flow = flow
        elif intent == Intent.FAQ:
            return TurnResult(u.reply or self._faq(text) or replies.say(lang, "faq_unknown"), "answered")
        elif intent == Intent.GREETING and not has_slots:
            s.reset()
            greeting = u.reply or replies.say(
                lang, "greeting", business=self.cfg.business_name, services=self._services()
            )
            return TurnResult(greeting, "greeted")
        elif s.flow is None:
            if has_slots and (u.service or u.date or u.time):
                s.flow = "book"
            else:
                example = self.cfg.services[0].name
                text = u.reply or replies.say(lang, "help", example=example, services=self._services())
                return TurnResult(text, "help")

        if u.service is not None and self.cfg.service(u.service) is not None:
            s.service = u.service
        if u.resource is not None and any(r.id == u.resource for r in self.cfg.resources):
            s.resource = u.resource
        if u.date is not None:
            s.date = u.date.isoformat()
        if u.time is not None:
            s.time = f"{u.time:%H:%M}"
        if u.code is not None:
            s.code = u.code.upper()
        elif s.flow in ("cancel", "reschedule") and s.code is None:
            s.code = self._own_code(text)
        return self._advance(s, lang, availability=intent == Intent.AVAILABILITY)

    def _own_code(self, text: str) -> str | None:
        """A code typed in any case ("mnyjws"): understanding takes an all-letter word as a code
        only in capitals (else "please" would be one); one of this customer's own codes is sure."""
        words = {w.upper() for w in re.findall(r"(?<!\w)[A-Za-z0-9]{6}(?!\w)", text)}
        if not words:
            return None
        mine = {row.code for row in self.engine.upcoming(self.cfg, self.phone)}
        return next(iter(sorted(words & mine)), None)

    def _picked(self, s: DialogState, u: Understanding) -> dt.datetime | None:
        offered = s.offered_times()
        if u.choice is not None:
            return u.choice
        if u.time is not None:
            matches = [o for o in offered if (o.hour, o.minute) == (u.time.hour, u.time.minute)]
            if u.date is not None:
                matches = [o for o in matches if o.date() == u.date]
            if matches:
                return matches[0]
        return None

    def _faq(self, text: str) -> str | None:
        """The FAQ answer whose question shares the most words with the message (the model,
        when there is one, answers FAQ itself)."""
        words = {w for w in re.findall(r"\w{3,}", text.lower())}
        best, score = None, 0
        for question, answer in self.cfg.faq:
            overlap = len(words & set(re.findall(r"\w{3,}", question.lower())))
            if overlap > score:
                best, score = answer, overlap
        return best

    def _advance(self, s: DialogState, lang: str, availability: bool) -> TurnResult:
        if s.flow == "cancel":
            return self._cancel(s, lang)
        if s.flow == "reschedule":
            return self._reschedule(s, lang)
        return self._book(s, lang, availability)

    def _ask(self, s: DialogState, slot: Slot, text: str) -> TurnResult:
        s.pending = slot.value
        s.offered = []
        return TurnResult(text, "asked")

    def _ask_time(self, s: DialogState, lang: str, service: str) -> TurnResult:
        day = dt.date.fromisoformat(s.date or "")
        free = self.engine.free_starts(self.cfg, service, day)
        if free:
            return self._ask(
                s,
                Slot.TIME,
                replies.say(
                    lang,
                    "ask_time",
                    day=replies.capitalise(replies.day(lang, day)),
                    times=replies.times(lang, free[:TIMES_LISTED]),
                ),
            )
        wanted = dt.datetime.combine(day, dt.time(12, 0), self.cfg.tz)
        return self._offer(
            s,
            lang,
            replies.say(lang, "day_full", day=replies.capitalise(replies.day(lang, day))),
            service,
            wanted,
        )

    def _offer(
        self,
        s: DialogState,
        lang: str,
        reason: str,
        service: str,
        wanted: dt.datetime,
        alternatives: list[dt.datetime] | None = None,
    ) -> TurnResult:
        if alternatives is None:
            alternatives = self.engine.alternatives(self.cfg, service, wanted)
        if not alternatives:
            s.date = s.time = None
            s.pending = Slot.DATE.value
            s.offered = []
            return TurnResult(f"{reason} {replies.say(lang, 'no_offer')}", "refused")
        s.pending = Slot.CHOICE.value
        s.offered = [a.isoformat() for a in alternatives]
        s.time = None
        return TurnResult(
            f"{reason} {replies.say(lang, 'offer', times=replies.times(lang, alternatives))}", "refused"
        )

    def _refusal_text(self, lang: str, refused: Refused, start: dt.datetime) -> str:
        when = replies.capitalise(replies.when(lang, start))
        day = replies.day(lang, start.date())
        return replies.say(lang, refused.reason.value, when=when, day=day)

    def _book(self, s: DialogState, lang: str, availability: bool) -> TurnResult:
        if s.service is None and len(self.cfg.services) == 1:
            s.service = self.cfg.services[0].id
        if s.service is None:
            return self._ask(s, Slot.SERVICE, replies.say(lang, "ask_service", services=self._services()))
        if s.date is None:
            return self._ask(
                s, Slot.DATE, replies.say(lang, "ask_date", service=self._service_name(s.service))
            )
        if s.time is None or availability:
            if s.time is not None:
                s.time = None
            return self._ask_time(s, lang, s.service)
        start = self._start(s)
        outcome = self.engine.book(
            self.cfg, service_id=s.service, start=start, phone=self.phone, name=self.name, resource=s.resource
        )
        if isinstance(outcome, Booked):
            s.reset()
            return TurnResult(self._booked_text(lang, "booked", outcome.booking), "booked")
        return self._offer(
            s, lang, self._refusal_text(lang, outcome, start), s.service, start, outcome.alternatives
        )

    def _booked_text(self, lang: str, key: str, b: BookingView) -> str:
        return replies.say(
            lang,
            key,
            service=self._service_name(b.service),
            when=replies.when(lang, b.start),
            resource=self._resource_name(b.resource),
            code=b.code,
        )

    def _cancel(self, s: DialogState, lang: str) -> TurnResult:
        if s.code is None:
            return self._ask(s, Slot.CODE, replies.say(lang, "ask_code") + self._list_bookings(lang))
        code = s.code
        view = self.engine.cancel(self.cfg, code, self.phone)
        s.reset()
        if view is None:
            return TurnResult(
                replies.say(lang, "not_found", code=code) + self._list_bookings(lang), "not_found"
            )
        return TurnResult(self._booked_text(lang, "cancelled", view), "cancelled")

    def _reschedule(self, s: DialogState, lang: str) -> TurnResult:
        if s.code is None:
            return self._ask(s, Slot.CODE, replies.say(lang, "ask_code") + self._list_bookings(lang))
        row = self.engine.find(self.cfg, s.code, self.phone)
        if row is None or row.status != "confirmed":
            code = s.code
            s.reset()
            return TurnResult(
                replies.say(lang, "not_found", code=code) + self._list_bookings(lang), "not_found"
            )
        s.service = row.service
        if s.date is None:
            return self._ask(s, Slot.DATE, replies.say(lang, "ask_new_date", code=s.code))
        if s.time is None:
            return self._ask_time(s, lang, row.service)
        start = self._start(s)
        outcome = self.engine.reschedule(self.cfg, row, start, s.resource)
        if isinstance(outcome, Booked):
            s.reset()
            return TurnResult(self._booked_text(lang, "rescheduled", outcome.booking), "rescheduled")
        return self._offer(
            s, lang, self._refusal_text(lang, outcome, start), row.service, start, outcome.alternatives
        )
