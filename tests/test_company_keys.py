"""A unique-key clash names the key that clashed, on SQLite and PostgreSQL.

The HTTP layer checks a phoneNumberId before it writes, but two nodes (or two requests) can pass
that check together; the database's unique index is what decides, and its refusal must say which
key it was, not "the company exists" nor a 500.
"""

from __future__ import annotations

import pytest

from wafleet.storage import companies
from wafleet.storage.database import Database
from wafleet.storage.schema import migrate

PNID = "106540352242922"


@pytest.fixture
def db(database_url: str):
    database = Database(database_url)
    migrate(database)
    yield database
    database.close()


def _create(db: Database, company_id: str, token: str, number: str | None = None) -> None:
    cloud = {"cloud_phone_number_id": number} if number else None
    companies.create(
        db, id=company_id, name=company_id, phone=None, link="cloud", token_hash=token, cloud=cloud
    )


def test_a_clashing_phone_number_id_on_create_names_that_key(db: Database) -> None:
    _create(db, "first", "a" * 64, PNID)
    with pytest.raises(companies.CompanyExists) as clash:
        _create(db, "second", "b" * 64, PNID)
    assert (clash.value.key, clash.value.value) == ("cloud_phone_number_id", PNID)
    assert [c.id for c, _ in companies.load_all(db)] == ["first"]  # nothing half-written


def test_a_clashing_id_on_create_names_the_id(db: Database) -> None:
    _create(db, "first", "a" * 64)
    with pytest.raises(companies.CompanyExists) as clash:
        _create(db, "first", "b" * 64)
    assert (clash.value.key, clash.value.value) == ("id", "first")


def test_a_clashing_phone_number_id_on_update_names_that_key(db: Database) -> None:
    _create(db, "first", "a" * 64, PNID)
    _create(db, "second", "b" * 64, "200000000000001")
    with pytest.raises(companies.CompanyExists) as clash:
        companies.update(db, "second", cloud_phone_number_id=PNID)
    assert (clash.value.key, clash.value.value) == ("cloud_phone_number_id", PNID)
    rows = {c.id: c.cloud_phone_number_id for c, _ in companies.load_all(db)}
    assert rows == {"first": PNID, "second": "200000000000001"}
