"""Create or upgrade the schema. Each migration runs once, in order, in a transaction."""

from __future__ import annotations

import logging
from collections.abc import Callable

import peewee
from playhouse.migrate import SchemaMigrator
from playhouse.migrate import migrate as run_migrations

from wafleet.storage.database import Database
from wafleet.storage.models import (
    Company,
    Event,
    Message,
    Outbox,
    PairingCode,
    SchemaVersion,
    Session,
    WebhookInbox,
)

log = logging.getLogger(__name__)


def _v1(db: Database) -> None:
    db.db.create_tables([Company, Session, Event])


def _v2(db: Database) -> None:
    """Pairing-code limits: the cooldown on the session row, and the history of codes."""
    columns = {c.name for c in db.db.get_columns(Session._meta.table_name)}
    if "blocked_until" not in columns:
        migrator = SchemaMigrator.from_database(db.db)
        run_migrations(
            migrator.add_column(Session._meta.table_name, "blocked_until", peewee.BigIntegerField(null=True))
        )
    db.db.create_tables([PairingCode])


def _v3(db: Database) -> None:
    """Real links: Cloud API credentials on the company; messages, webhook inbox, outbox."""
    table = Company._meta.table_name
    columns = {c.name for c in db.db.get_columns(table)}
    migrator = SchemaMigrator.from_database(db.db)
    ops = [
        migrator.add_column(table, name, field)
        for name, field in (
            ("cloud_phone_number_id", peewee.CharField(max_length=64, null=True)),
            ("cloud_token", peewee.TextField(null=True)),
            ("cloud_app_secret", peewee.TextField(null=True)),
            ("cloud_verify_token", peewee.TextField(null=True)),
        )
        if name not in columns
    ]
    if ops:
        run_migrations(*ops)
        run_migrations(migrator.add_index(table, ("cloud_phone_number_id",), True))
    db.db.create_tables([Message, WebhookInbox, Outbox])


def _session_last_error_until(db: Database) -> None:
    """A failed session's error keeps its end time (a ban's) across restarts."""
    table = Session._meta.table_name
    if "last_error_until" not in {c.name for c in db.db.get_columns(table)}:
        migrator = SchemaMigrator.from_database(db.db)
        run_migrations(
            migrator.add_column(table, "last_error_until", peewee.CharField(max_length=40, null=True))
        )


MIGRATIONS: list[Callable[[Database], None]] = [_v1, _v2, _v3, _session_last_error_until]


def current_version(db: Database) -> int:
    if not db.db.table_exists(SchemaVersion._meta.table_name):
        return 0
    row = SchemaVersion.select().order_by(SchemaVersion.version.desc()).first()
    return row.version if row else 0


def migrate(db: Database) -> tuple[int, int]:
    """Bring the schema to the newest version; returns (before, after)."""
    with db.work():
        db.db.create_tables([SchemaVersion])
        before = current_version(db)
        for number, step in enumerate(MIGRATIONS, start=1):
            if number <= before:
                continue
            with db.atomic():
                step(db)
                SchemaVersion.create(version=number)
            log.info("schema migrated to version %d", number)
        return before, len(MIGRATIONS)
