"""Create or upgrade the schema. Each migration runs once, in order, in a transaction."""

from __future__ import annotations

import logging
from collections.abc import Callable

import peewee
from playhouse.migrate import SchemaMigrator
from playhouse.migrate import migrate as run_migrations

from wafleet.storage.database import Database
from wafleet.storage.models import Company, Event, PairingCode, SchemaVersion, Session

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


MIGRATIONS: list[Callable[[Database], None]] = [_v1, _v2]


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
