"""Customer messages in ru, pt and en, each with the intent and slots a person would read in it.

Evaluated against a fixed now (Tuesday 2026-12-01 10:00 in each language's company timezone) and
one salon: haircut, manicure and coloring, staff Anna and Maria. Fields of an entry: text, intent,
service, resource, date (YYYY-MM-DD), time (HH:MM), code, choice ("YYYY-MM-DD HH:MM", one of
offered); context: pending (the slot asked last), offered, conversation_intent.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from wafleet.actors.assistant.understanding import (
    Intent,
    ResourceInfo,
    ServiceInfo,
    Slot,
    TurnContext,
    Understanding,
)

HERE = Path(__file__).resolve().parent
LANGUAGES = ("ru", "pt", "en")
TIMEZONES = {"ru": "Europe/Moscow", "pt": "America/Sao_Paulo", "en": "Europe/London"}

SERVICES = (
    ServiceInfo(
        "haircut",
        "Haircut",
        (
            "стрижка",
            "подстричься",
            "постричься",
            "corte",
            "cortar o cabelo",
            "corte de cabelo",
            "hair cut",
            "trim",
        ),
        45,
    ),
    ServiceInfo("manicure", "Manicure", ("маникюр", "ногти", "unhas", "manicure", "nails", "mani"), 60),
    ServiceInfo(
        "coloring",
        "Coloring",
        (
            "окрашивание",
            "покраска",
            "покрасить",
            "coloração",
            "pintar o cabelo",
            "tintura",
            "colour",
            "color",
            "hair dye",
        ),
        90,
    ),
)
RESOURCES = (
    ResourceInfo("anna", "Anna", ("haircut", "coloring")),
    ResourceInfo("maria", "Maria", ("haircut", "manicure", "coloring"), ("Мария", "Маша", "Mari", "Mary")),
)


def now_in(lang: str) -> dt.datetime:
    return dt.datetime(2026, 12, 1, 10, 0, tzinfo=ZoneInfo(TIMEZONES[lang]))


def _local(lang: str, text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=ZoneInfo(TIMEZONES[lang]))


def context(lang: str, entry: dict | None = None) -> TurnContext:
    """The salon's context for one message of the corpus (a company speaking all three languages)."""
    entry = entry or {}
    return TurnContext(
        now=now_in(lang),
        timezone=TIMEZONES[lang],
        languages=(lang, *(other for other in LANGUAGES if other != lang)),
        business_name="Salon Demo",
        services=SERVICES,
        resources=RESOURCES,
        pending=Slot(entry["pending"]) if entry.get("pending") else None,
        offered=tuple(_local(lang, o) for o in entry.get("offered", ())),
        intent=Intent(entry["conversation_intent"]) if entry.get("conversation_intent") else None,
    )


@dataclass(frozen=True)
class Case:
    lang: str
    entry: dict

    def expected(self) -> dict:
        e = self.entry
        choice = e.get("choice")
        return {
            "intent": e["intent"],
            "language": self.lang,
            "service": e.get("service"),
            "resource": e.get("resource"),
            "date": choice[:10] if choice else e.get("date"),
            "time": choice[11:] if choice else e.get("time"),
            "code": e.get("code"),
            "choice": choice,
        }


def got(lang: str, u: Understanding) -> dict:
    choice = u.choice.astimezone(ZoneInfo(TIMEZONES[lang])).strftime("%Y-%m-%d %H:%M") if u.choice else None
    return {
        "intent": str(u.intent),
        "language": u.language,
        "service": u.service,
        "resource": u.resource,
        "date": u.date.isoformat() if u.date else None,
        "time": u.time.strftime("%H:%M") if u.time else None,
        "code": u.code,
        "choice": choice,
    }


def cases(lang: str) -> list[Case]:
    """Every message of a language: {lang}.json, written before the rules; {lang}_2.json to
    {lang}_6.json, batches written later and scored unseen on their first run (the commits that
    added them give those first-run figures) before the rules learned from them."""
    return [
        Case(lang, entry)
        for path in sorted(HERE.glob(f"{lang}*.json"))
        for entry in json.loads(path.read_text())
    ]
