"""A ban's end is kept in one column (``blocked_until``), on SQLite and PostgreSQL, across the
upgrade that dropped its copy (``last_error_until``)."""

from __future__ import annotations

from wafleet.storage import companies
from wafleet.storage.database import Database
from wafleet.storage.models import SchemaVersion, Session
from wafleet.storage.schema import MIGRATIONS, migrate

UNTIL_MS = 1_900_000_000_000  # 2030-03-17T17:46:40Z
UNTIL_ISO = "2030-03-17T17:46:40.000Z"


def _columns(db: Database) -> set[str]:
    return {c.name for c in db.db.get_columns(Session._meta.table_name)}


def test_a_ban_written_by_the_previous_version_keeps_its_end(database_url: str) -> None:
    db = Database(database_url)
    migrate(db)
    companies.create(db, id="banned", name="Banned", phone=None, link="sandbox", token_hash="b" * 64)
    companies.create(db, id="healed", name="Healed", phone=None, link="sandbox", token_hash="h" * 64)
    table = Session._meta.table_name
    with db.work():  # as the previous version left it: the ban's end in the error's own column
        if "last_error_until" not in _columns(db):
            db.db.execute_sql(f'ALTER TABLE "{table}" ADD COLUMN last_error_until VARCHAR(40)')
        # failed by a ban whose end only the error's column held
        db.db.execute_sql(
            f"UPDATE \"{table}\" SET status = 'failed', last_error_reason = 'banned', "
            f"last_error_at = 1, last_error_until = '{UNTIL_ISO}', blocked_until = NULL "
            "WHERE company_id = 'banned'"
        )
        # connected again after a ban: its end is history (the event log keeps it), not a block
        db.db.execute_sql(
            f"UPDATE \"{table}\" SET status = 'connected', last_error_reason = 'banned', "
            f"last_error_at = 1, last_error_until = '{UNTIL_ISO}', blocked_until = NULL "
            "WHERE company_id = 'healed'"
        )
        SchemaVersion.delete().where(SchemaVersion.version >= len(MIGRATIONS)).execute()
    migrate(db)
    with db.work():
        assert "last_error_until" not in _columns(db)  # one column holds a ban's end
    sessions = {s.company_id: s for _, s in companies.load_all(db)}
    assert sessions["banned"].status == "failed" and sessions["banned"].blocked_until == UNTIL_MS
    assert sessions["banned"].last_error is not None and sessions["banned"].last_error["reason"] == "banned"
    assert sessions["healed"].blocked_until is None
    assert migrate(db) == (len(MIGRATIONS), len(MIGRATIONS))  # idempotent: nothing left to do
    db.close()
