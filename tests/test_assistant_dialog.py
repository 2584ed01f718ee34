"""The dialog with the real engine and database: a code typed in lower case with no digit (which
understanding does not take as a code, lest "please" be one) still cancels the customer's own
booking, and nobody else's."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.assistant_helpers import at, salon, tomorrow
from wafleet.actors.assistant.config import parse
from wafleet.actors.assistant.dialog import Dialog, DialogState
from wafleet.actors.assistant.engine import Booked, Engine
from wafleet.actors.assistant.understanding import Intent, Understanding
from wafleet.storage import bookings
from wafleet.storage.database import Database
from wafleet.storage.phone_vault import vault_for
from wafleet.storage.schema import migrate

OLGA, IVAN = "79160000001", "79160000002"


def test_a_lower_case_all_letter_code_cancels_only_its_own_booking(tmp_path: Path, monkeypatch) -> None:
    db = Database(f"sqlite:///{tmp_path}/d.db")
    migrate(db)
    engine = Engine(db, vault_for(None, str(tmp_path)))
    cfg = parse(salon(), "salon")
    monkeypatch.setattr(bookings, "new_code", lambda: "MNYJWS")  # a code with no digit
    assert isinstance(engine.book(cfg, service_id="haircut", start=at(tomorrow(), 14), phone=OLGA), Booked)
    cancel = Understanding(Intent.CANCEL, "ru")  # what the rules give: no code found
    other = Dialog(cfg, engine, IVAN).turn(DialogState(), cancel, "отменить mnyjws")
    assert other.outcome == "asked" and "MNYJWS" not in other.reply
    mine = Dialog(cfg, engine, OLGA).turn(DialogState(), cancel, "отменить mnyjws")
    assert mine.outcome == "cancelled" and "MNYJWS" in mine.reply
    assert engine.find(cfg, "MNYJWS").status == "cancelled"  # type: ignore[union-attr]
    db.close()


@pytest.mark.parametrize("text", ["please cancel", "cancelar amanha"])
def test_ordinary_words_are_not_taken_for_codes(tmp_path: Path, text: str) -> None:
    db = Database(f"sqlite:///{tmp_path}/d.db")
    migrate(db)
    engine = Engine(db, vault_for(None, str(tmp_path)))
    cfg = parse(salon(), "salon")
    result = Dialog(cfg, engine, OLGA).turn(DialogState(), Understanding(Intent.CANCEL, "en"), text)
    assert result.outcome == "asked"
    db.close()
