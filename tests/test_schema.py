"""Schema upgrades run once, in order, on SQLite and PostgreSQL, and keep the data."""

from __future__ import annotations

from wafleet.storage import companies, messages
from wafleet.storage.database import Database
from wafleet.storage.models import Company, Message, Outbox, PairingCode, SchemaVersion, Session, WebhookInbox
from wafleet.storage.schema import MIGRATIONS, _message_wa_id_per_company, migrate


def test_a_version_1_database_is_upgraded_in_place(database_url: str) -> None:
    db = Database(database_url)
    migrate(db)
    companies.create(db, id="kept", name="Kept", phone=None, link="sandbox", token_hash="h" * 64)
    with db.work():  # make it look like a database written by version 1
        db.db.execute_sql(f'ALTER TABLE "{Session._meta.table_name}" DROP COLUMN blocked_until')
        for column in ("cloud_phone_number_id", "cloud_token", "cloud_app_secret", "cloud_verify_token"):
            if column == "cloud_phone_number_id" and db.kind == "sqlite":
                db.db.execute_sql('DROP INDEX IF EXISTS "company_cloud_phone_number_id"')
            db.db.execute_sql(f'ALTER TABLE "{Company._meta.table_name}" DROP COLUMN {column}')
        db.db.drop_tables([PairingCode, Message, WebhookInbox, Outbox])
        SchemaVersion.delete().where(SchemaVersion.version > 1).execute()
    assert migrate(db) == (1, len(MIGRATIONS))
    with db.work():
        columns = {c.name for c in db.db.get_columns(Session._meta.table_name)}
        assert "blocked_until" in columns and db.db.table_exists(PairingCode._meta.table_name)
        assert "cloud_token" in {c.name for c in db.db.get_columns(Company._meta.table_name)}
        assert db.db.table_exists(Message._meta.table_name)
    assert [c.id for c, _ in companies.load_all(db)] == ["kept"]
    assert migrate(db) == (len(MIGRATIONS), len(MIGRATIONS))
    db.close()


def test_a_database_with_globally_unique_message_ids_is_upgraded_and_keeps_its_messages(
    database_url: str,
) -> None:
    db = Database(database_url)
    migrate(db)
    table = Message._meta.table_name
    with db.work():  # as written before message ids were unique per company
        db.db.execute_sql(f'DROP INDEX "{table}_company_wa_id"')
        db.db.execute_sql(f'CREATE UNIQUE INDEX "{table}_wa_id" ON "{table}" (wa_id)')
    before = messages.store_inbound(db, "a", "1555", "text", "kept", None, "W1", 1).id
    for _ in range(2):  # idempotent: a second run changes nothing
        with db.work(), db.atomic():
            _message_wa_id_per_company(db)
    assert messages.store_inbound(db, "b", "1555", "text", "b's own", None, "W1", 2).created is True
    again = messages.store_inbound(db, "a", "1555", "text", "again", None, "W1", 3)
    assert (again.id, again.created) == (before, False)
    assert messages.get(db, "a", "W1")["text"] == "kept"
    db.close()
