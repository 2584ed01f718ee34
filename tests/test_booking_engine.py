"""The booking engine against a real database (SQLite and PostgreSQL): no double booking,
refusals with the nearest free starts, cancel by the right customer, atomic reschedule."""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path

import gevent
import pytest

from wafleet.actors.assistant.config import DEMO, ConfigInvalid, parse
from wafleet.actors.assistant.engine import Booked, Engine, Refusal, Refused
from wafleet.storage import bookings
from wafleet.storage.database import Database
from wafleet.storage.models import Booking
from wafleet.storage.phone_vault import PhoneVault, vault_for
from wafleet.storage.schema import migrate

LISBON = dt.timezone(dt.timedelta(0))  # Europe/Lisbon is UTC+0 in winter
NOW = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)  # a Tuesday, before opening
ALICE, BOB = "351910000001", "351910000002"


@pytest.fixture
def engine(database_url: str, tmp_path: Path):
    db = Database(database_url)
    migrate(db)
    events: list[tuple[str, str, dict]] = []
    eng = Engine(db, vault_for(None, str(tmp_path)), lambda c, k, d: events.append((c, k, d)), lambda: NOW)
    eng.events_seen = events  # type: ignore[attr-defined]
    yield eng
    db.close()


def cfg(**changes):
    doc = copy.deepcopy(DEMO)
    doc.update(changes)
    return parse(doc, "salon")


def at(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 12, day, hour, minute, tzinfo=LISBON)


def test_book_then_the_same_slot_is_refused_with_the_nearest_free_starts(engine: Engine) -> None:
    one_chair = cfg(
        resources=[{"id": "anna", "name": "Anna", "services": ["haircut", "manicure", "coloring"]}]
    )
    first = engine.book(one_chair, service_id="haircut", start=at(2, 14), phone=ALICE, name="Alice")
    assert isinstance(first, Booked)
    assert len(first.booking.code) == 6 and set(first.booking.code) <= set(bookings.CODE_ALPHABET)
    assert first.booking.customer_phone == ALICE and first.booking.end == at(2, 15)
    second = engine.book(one_chair, service_id="haircut", start=at(2, 14), phone=BOB)
    assert isinstance(second, Refused) and second.reason is Refusal.TAKEN
    # nearest on the same day: 13:00 ends as 14:00 begins, 15:00 starts as it ends, then 12:45
    assert second.alternatives == [at(2, 12, 45), at(2, 13), at(2, 15)]
    overlapping = engine.book(one_chair, service_id="haircut", start=at(2, 14, 30), phone=BOB)
    assert isinstance(overlapping, Refused) and overlapping.alternatives == [
        at(2, 15),
        at(2, 15, 15),
        at(2, 15, 30),
    ]
    assert engine.events_seen[0][1] == "booking.created"  # type: ignore[attr-defined]
    assert "customerPhone" not in engine.events_seen[0][2]  # type: ignore[attr-defined]


def test_the_phone_is_encrypted_at_rest_and_found_by_its_keyed_hash(engine: Engine) -> None:
    c = cfg()
    booked = engine.book(c, service_id="manicure", start=at(2, 10), phone=ALICE)
    assert isinstance(booked, Booked)
    with engine.db.work():
        row = Booking.get(Booking.code == booked.booking.code)
    assert ALICE not in row.customer_phone and ALICE not in row.customer_hash
    assert [r.code for r in engine.upcoming(c, ALICE)] == [booked.booking.code]
    assert engine.upcoming(c, BOB) == []


def test_refusals_name_the_reason_and_offer_alternatives(engine: Engine) -> None:
    c = cfg()
    past = engine.book(c, service_id="haircut", start=at(1, 7), phone=ALICE)
    assert isinstance(past, Refused) and past.reason is Refusal.PAST
    assert past.alternatives and all(a > NOW for a in past.alternatives)
    sunday = engine.book(c, service_id="haircut", start=at(6, 12), phone=ALICE)  # no "sun" hours
    assert isinstance(sunday, Refused) and sunday.reason is Refusal.CLOSED
    assert [a.date() for a in sunday.alternatives] == [dt.date(2026, 12, 7)] * 3  # Monday 09:00...
    late = engine.book(c, service_id="coloring", start=at(2, 18), phone=ALICE)  # 90 min past 19:00
    assert isinstance(late, Refused) and late.reason is Refusal.OUTSIDE_HOURS
    far = engine.book(c, service_id="haircut", start=NOW + dt.timedelta(days=90), phone=ALICE)
    assert isinstance(far, Refused) and far.reason is Refusal.BEYOND_HORIZON
    holiday = cfg(hours=dict(DEMO["hours"], closed=["2026-12-02"]))
    closed = engine.book(holiday, service_id="haircut", start=at(2, 12), phone=ALICE)
    assert isinstance(closed, Refused) and closed.reason is Refusal.CLOSED


def test_a_resource_is_chosen_among_those_doing_the_service(engine: Engine) -> None:
    c = cfg(
        resources=[
            {"id": "anna", "name": "Anna", "services": ["haircut", "coloring"]},
            {"id": "maria", "name": "Maria", "services": ["manicure", "haircut"]},
        ]
    )
    codes = [engine.book(c, service_id="haircut", start=at(2, 11), phone=p) for p in (ALICE, BOB)]
    assert all(isinstance(b, Booked) for b in codes)
    assert {b.booking.resource for b in codes} == {"anna", "maria"}  # type: ignore[union-attr]
    third = engine.book(c, service_id="haircut", start=at(2, 11), phone="351910000003")
    assert isinstance(third, Refused) and third.reason is Refusal.TAKEN


def test_only_the_customer_who_booked_cancels_by_code(engine: Engine) -> None:
    c = cfg()
    booked = engine.book(c, service_id="haircut", start=at(2, 16), phone=ALICE)
    assert isinstance(booked, Booked)
    code = booked.booking.code
    assert engine.cancel(c, code, BOB) is None
    assert engine.cancel(c, code.lower(), ALICE) is not None
    assert engine.cancel(c, code, ALICE) is None  # already cancelled
    assert isinstance(
        engine.book(c, service_id="coloring", start=at(2, 16), phone=BOB, resource="anna"), Booked
    )


def test_reschedule_is_atomic(engine: Engine) -> None:
    c = cfg(resources=[{"id": "anna", "name": "Anna", "services": ["haircut", "manicure", "coloring"]}])
    mine = engine.book(c, service_id="haircut", start=at(2, 10), phone=ALICE)
    other = engine.book(c, service_id="haircut", start=at(2, 12), phone=BOB)
    assert isinstance(mine, Booked) and isinstance(other, Booked)
    row = engine.find(c, mine.booking.code, ALICE)
    assert row is not None
    taken = engine.reschedule(c, row, at(2, 12, 30))
    assert isinstance(taken, Refused) and taken.reason is Refusal.TAKEN
    still = engine.find(c, mine.booking.code)
    assert still is not None and (still.start_ms, still.status) == (row.start_ms, "confirmed")
    overlapping_itself = engine.reschedule(c, row, at(2, 10, 30))  # overlaps only its old self
    assert isinstance(overlapping_itself, Booked) and overlapping_itself.booking.start == at(2, 10, 30)
    assert overlapping_itself.booking.code == mine.booking.code
    assert bookings.double_bookings(engine.db) == 0


def test_concurrent_bookings_of_one_slot_make_exactly_one(engine: Engine) -> None:
    c = cfg(resources=[{"id": "anna", "name": "Anna", "services": ["haircut", "manicure", "coloring"]}])
    jobs = [
        gevent.spawn(engine.book, c, service_id="haircut", start=at(3, 14), phone=f"3519100001{i:02d}")
        for i in range(20)
    ]
    gevent.joinall(jobs, raise_error=True)
    outcomes = [j.value for j in jobs]
    assert sum(isinstance(o, Booked) for o in outcomes) == 1
    assert bookings.double_bookings(engine.db) == 0


def test_the_database_itself_refuses_an_overlap(engine: Engine) -> None:
    """Not only the engine's check: a second writer that skips it is refused too."""
    c = cfg()
    assert isinstance(
        engine.book(c, service_id="haircut", start=at(2, 14), phone=ALICE, resource="anna"), Booked
    )
    start = int(at(2, 14, 30).timestamp() * 1000)
    if engine.db.kind == "postgresql":
        import peewee

        with pytest.raises(peewee.IntegrityError), engine.db.work():
            Booking.insert(
                company="salon", code="ZZZZZZ", customer_phone="x", customer_hash="h", service="haircut",
                resource="anna", start_ms=start, end_ms=start + 3600_000, status="confirmed",
                source="api", created_at=0, updated_at=0,
            ).execute()  # fmt: skip
    else:  # SQLite: the engine's insert is the only writer path; it checks inside the write lock
        row = bookings.insert(
            engine.db, company_id="salon", resources=["anna"], service="haircut", start_ms=start,
            end_ms=start + 3600_000, sealed_phone="x", customer_hash="h", customer_name=None, source="api",
        )  # fmt: skip
        assert row is None


def test_config_errors_name_the_field() -> None:
    doc = copy.deepcopy(DEMO)
    doc["services"][1]["durationMin"] = 0
    with pytest.raises(ConfigInvalid) as err:
        parse(doc, "c")
    assert err.value.field == "services[1].durationMin"
    doc = copy.deepcopy(DEMO)
    doc["resources"][0]["services"] = ["nails"]
    with pytest.raises(ConfigInvalid) as err:
        parse(doc, "c")
    assert err.value.field == "resources[0].services[0]"
    for field, value, name in (
        ("timezone", "Mars/Base", "timezone"),
        ("languages", ["ru", "de"], "languages[1]"),
        ("hours", {"mon": {"open": "19:00", "close": "09:00"}}, "hours.mon.close"),
        ("hours", {"closed": ["31-12-2026"]}, "hours.closed[0]"),
        ("resources", [], "resources"),
        ("colour", "red", "colour"),
    ):
        doc = copy.deepcopy(DEMO)
        doc[field] = value
        with pytest.raises(ConfigInvalid) as err:
            parse(doc, "c")
        assert err.value.field == name, (field, str(err.value))


def test_without_a_key_the_node_makes_its_own(tmp_path: Path) -> None:
    first = vault_for(None, str(tmp_path))
    sealed = first.seal("c", ALICE)
    again = vault_for(None, str(tmp_path))
    assert again.open("c", sealed) == ALICE and again.lookup("c", ALICE) == first.lookup("c", ALICE)
    assert (tmp_path / "phone.key").stat().st_mode & 0o777 == 0o600
    assert first.lookup("c", ALICE) != first.lookup("d", ALICE)
    assert isinstance(PhoneVault(open(tmp_path / "phone.key").read()), PhoneVault)


def test_a_phone_sealed_under_another_key_lists_as_unknown_not_an_error(
    engine: Engine, tmp_path: Path
) -> None:
    c = cfg()
    booked = engine.book(c, service_id="haircut", start=at(2, 10), phone=ALICE)
    assert isinstance(booked, Booked)
    other = Engine(engine.db, vault_for(None, str(tmp_path / "elsewhere")), clock=lambda: NOW)
    row = other.find(c, booked.booking.code)
    assert row is not None and other.view(c, row).customer_phone is None
