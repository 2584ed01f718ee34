"""Booking codes: every new one is drawn from the issue's alphabet (no 0/O or 1/I look-alikes) and
holds a digit and a letter (a code like a word collides with what customers write); codes issued
before that rule (all letters) are still found when a customer types them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from tests.assistant_helpers import at, salon, tomorrow
from wafleet.actors.assistant.config import parse
from wafleet.actors.assistant.dialog import Dialog, DialogState
from wafleet.actors.assistant.engine import Booked, Engine
from wafleet.actors.assistant.rules import find_code
from wafleet.actors.assistant.understanding import Intent, Understanding
from wafleet.storage import bookings
from wafleet.storage.database import Database
from wafleet.storage.phone_vault import vault_for
from wafleet.storage.schema import migrate

OLGA = "79160000001"
LOOK_ALIKES = set("0O1I")


def well_formed(code: str) -> bool:
    return (
        len(code) == 6
        and any(c.isdigit() for c in code)
        and any(c.isalpha() for c in code)
        and code == code.upper()
        and not LOOK_ALIKES & set(code)
    )


def test_every_code_the_engine_issues_has_a_digit_and_a_letter_and_no_look_alikes(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path}/c.db")
    migrate(db)
    engine = Engine(db, vault_for(None, str(tmp_path)))
    cfg = parse(salon(), "salon")
    codes = []
    for day in range(3):
        for hour in range(9, 19):
            booked = engine.book(
                cfg, service_id="haircut", start=at(tomorrow() + dt.timedelta(days=day), hour), phone=OLGA
            )
            assert isinstance(booked, Booked)
            codes.append(booked.booking.code)
    db.close()
    codes += [bookings.new_code() for _ in range(3000)]  # an all-letter draw comes 1 in 6 otherwise
    assert [c for c in codes if not well_formed(c)] == []
    assert len(set(codes)) > 3000  # still drawn at random


@pytest.mark.parametrize("old", ["MNYJWS", "LMNPQR", "KL7MN2"])
def test_a_code_issued_before_the_rule_still_cancels_its_booking(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, old: str
) -> None:
    db = Database(f"sqlite:///{tmp_path}/d.db")
    migrate(db)
    engine = Engine(db, vault_for(None, str(tmp_path)))
    cfg = parse(salon(), "salon")
    monkeypatch.setattr(bookings, "new_code", lambda: old)
    assert isinstance(engine.book(cfg, service_id="haircut", start=at(tomorrow(), 14), phone=OLGA), Booked)
    assert find_code(f"cancel {old}", sure=True) == old  # typed in capitals, talking of a booking
    mine = Dialog(cfg, engine, OLGA).turn(
        DialogState(), Understanding(Intent.CANCEL, "ru"), f"отменить {old.lower()}"
    )
    assert mine.outcome == "cancelled" and old in mine.reply
    assert engine.find(cfg, old).status == "cancelled"  # type: ignore[union-attr]
    db.close()
