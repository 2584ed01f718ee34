"""Create or upgrade the schema. Each migration runs once, in order, in a transaction."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime

import peewee
from playhouse.migrate import SchemaMigrator
from playhouse.migrate import migrate as run_migrations

from wafleet.storage.database import Database
from wafleet.storage.models import (
    AssistantConfig,
    AssistantTurn,
    BlockedNumber,
    Booking,
    Company,
    Conversation,
    Delivery,
    Endpoint,
    Event,
    Message,
    MetricMinute,
    Outbox,
    PairingCode,
    PendingStatus,
    SchemaVersion,
    Session,
    WebhookInbox,
    WebhookUnrouted,
)
from wafleet.storage.page_sessions import PageSession

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


def _outbox_lanes(db: Database) -> None:
    """Fair, ordered sending: a company's pending rows in order, each customer's earliest pending
    row, the companies due. The one-column indexes go: they made SQLite walk a company's whole
    history (every sent row) to find its few pending ones."""
    table = Outbox._meta.table_name
    for column in ("company", "state"):
        db.db.execute_sql(f'DROP INDEX IF EXISTS "{table}_{column}"')
    db.db.execute_sql(
        f'CREATE INDEX IF NOT EXISTS "{table}_head_of_line" ON "{table}" (company, peer, state, id)'
    )
    db.db.execute_sql(f'CREATE INDEX IF NOT EXISTS "{table}_due" ON "{table}" (state, next_at, company)')
    db.db.execute_sql(f'CREATE INDEX IF NOT EXISTS "{table}_pending" ON "{table}" (company, state, id)')


def _company_id_nocase(db: Database) -> None:
    """Company ids are unique regardless of case (``SALON-ROSA`` beside ``salon-rosa``). A database
    that already holds such a pair keeps it (the node refuses new clashes) and says so."""
    table = Company._meta.table_name
    clashes = db.db.execute_sql(
        f'SELECT LOWER(id) FROM "{table}" GROUP BY LOWER(id) HAVING COUNT(*) > 1 LIMIT 10'
    ).fetchall()
    if clashes:
        log.warning(
            "company ids differ only in case (%s): no unique index on lower(id) until one of each is deleted",
            ", ".join(repr(c[0]) for c in clashes),
        )
        return
    db.db.execute_sql(f'CREATE UNIQUE INDEX IF NOT EXISTS "{table}_id_nocase" ON "{table}" (LOWER(id))')


def _outbound(db: Database) -> None:
    """Outbound deliveries: webhook, email and alert endpoints, and their durable queue."""
    db.db.create_tables([Endpoint, Delivery])  # safe: skips tables that exist
    if "horizon" not in {c.name for c in db.db.get_columns(Delivery._meta.table_name)}:
        migrator = SchemaMigrator.from_database(db.db)
        run_migrations(
            migrator.add_column(Delivery._meta.table_name, "horizon", peewee.BigIntegerField(null=True))
        )


def _assistant(db: Database) -> None:
    """The assistant: configs, bookings, conversations, turns. On PostgreSQL, confirmed bookings
    of one resource may not overlap (exclusion constraint over the booking's time range)."""
    db.db.create_tables([AssistantConfig, Booking, Conversation, AssistantTurn])
    if db.kind != "postgresql":
        return
    table = Booking._meta.table_name
    exists = db.db.execute_sql(
        "SELECT 1 FROM pg_constraint WHERE conname = %s", ("booking_no_overlap",)
    ).fetchone()
    if exists:
        return
    db.db.execute_sql("CREATE EXTENSION IF NOT EXISTS btree_gist")
    db.db.execute_sql(
        f'ALTER TABLE "{table}" ADD CONSTRAINT booking_no_overlap EXCLUDE USING gist '
        "(company WITH =, resource WITH =, "
        "tstzrange(to_timestamp(start_ms / 1000.0), to_timestamp(end_ms / 1000.0), '[)') WITH &&) "
        "WHERE (status = 'confirmed')"
    )


def _webhook_tenants(db: Database) -> None:
    """Webhooks bound to tenants: an inbox row knows its source URL and its company, kept numbers
    are indexed, and statuses that overtake their message wait in their own table."""
    table = WebhookInbox._meta.table_name
    columns = {c.name for c in db.db.get_columns(table)}
    migrator = SchemaMigrator.from_database(db.db)
    ops = [
        migrator.add_column(table, name, field)
        for name, field in (
            ("source", peewee.CharField(max_length=64, null=True)),
            ("company", peewee.CharField(max_length=64, null=True)),
            ("routed", peewee.TextField(null=True)),
            ("rejected", peewee.TextField(null=True)),
        )
        if name not in columns
    ]
    if ops:
        run_migrations(*ops)
    indexes = {i.name for i in db.db.get_indexes(table)}
    if "webhook_inbox_company" not in indexes:
        run_migrations(migrator.add_index(table, ("company",), False))
    backfill = not db.db.table_exists(WebhookUnrouted._meta.table_name)
    db.db.create_tables([WebhookUnrouted, PendingStatus])
    if backfill:
        kept = WebhookInbox.select(WebhookInbox.id, WebhookInbox.unrouted).where(
            WebhookInbox.unrouted.is_null(False)
        )
        rows = [
            {"inbox": r.id, "phone_number_id": pid}
            for r in kept
            for pid in dict.fromkeys(json.loads(r.unrouted))
        ]
        for start in range(0, len(rows), 500):
            WebhookUnrouted.insert_many(rows[start : start + 500]).execute()


def _metric_minutes(db: Database) -> None:
    """The per-minute timeseries of the metrics routes (kept 24 hours)."""
    db.db.create_tables([MetricMinute], safe=True)


def _blocked_numbers(db: Database) -> None:
    """Each company's own blocklist: numbers it does not message and does not answer."""
    db.db.create_tables([BlockedNumber], safe=True)


def _page_sessions(db: Database) -> None:
    """Page logins hold a server-side session (only its hash stored), not the raw token."""
    db.db.create_tables([PageSession], safe=True)


def _session_last_error_until(db: Database) -> None:
    """A failed session's error keeps its end time (a ban's) across restarts."""
    table = Session._meta.table_name
    if "last_error_until" not in {c.name for c in db.db.get_columns(table)}:
        migrator = SchemaMigrator.from_database(db.db)
        run_migrations(
            migrator.add_column(table, "last_error_until", peewee.CharField(max_length=40, null=True))
        )


def _ban_end_in_blocked_until(db: Database) -> None:
    """A ban's end lives in ``blocked_until`` alone (epoch ms, as a cool-down's): its ISO copy
    ``last_error_until`` goes. A failed, banned session whose end only the copy held gets it in
    ``blocked_until`` first; a past ban's end stays in the event history."""
    table = Session._meta.table_name
    if "last_error_until" not in {c.name for c in db.db.get_columns(table)}:
        return
    param = db.db.param
    rows = db.db.execute_sql(
        f'SELECT company_id, last_error_until FROM "{table}" WHERE status = {param} '
        f"AND last_error_reason = {param} AND blocked_until IS NULL AND last_error_until IS NOT NULL",
        ("failed", "banned"),
    ).fetchall()
    for company_id, text in rows:
        try:
            until = int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
        except ValueError:
            log.warning(
                "company %s: a ban's end %r is not a time: the ban is kept without an end", company_id, text
            )
            continue
        db.db.execute_sql(
            f'UPDATE "{table}" SET blocked_until = {param} WHERE company_id = {param}', (until, company_id)
        )
    run_migrations(SchemaMigrator.from_database(db.db).drop_column(table, "last_error_until"))


def _message_wa_id_per_company(db: Database) -> None:
    """A WhatsApp message id is unique per company, not across companies: two companies may be
    handed the same id. The per-company index first (it holds wherever the global one did)."""
    table = Message._meta.table_name
    db.db.execute_sql(
        f'CREATE UNIQUE INDEX IF NOT EXISTS "{table}_company_wa_id" ON "{table}" (company, wa_id)'
    )
    db.db.execute_sql(f'DROP INDEX IF EXISTS "{table}_wa_id"')


MIGRATIONS: list[Callable[[Database], None]] = [
    _v1,
    _v2,
    _v3,
    _outbox_lanes,
    _company_id_nocase,
    _outbound,
    _assistant,
    _webhook_tenants,
    _metric_minutes,
    _blocked_numbers,
    _page_sessions,
    _session_last_error_until,
    _ban_end_in_blocked_until,
    _message_wa_id_per_company,
]


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
