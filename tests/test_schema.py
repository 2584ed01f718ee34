"""Schema upgrades run once, in order, on SQLite and PostgreSQL, and keep the data."""

from __future__ import annotations

from wafleet.storage import companies
from wafleet.storage.database import Database
from wafleet.storage.models import Company, Message, Outbox, PairingCode, SchemaVersion, Session, WebhookInbox
from wafleet.storage.schema import MIGRATIONS, migrate


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
