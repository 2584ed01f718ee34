"""The per-minute timeseries: added to by one actor (the metrics recorder), read by the routes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wafleet.storage.database import Database
from wafleet.storage.models import MetricMinute

COUNTS = ("messages_in", "messages_out", "restarts", "errors")
KEEP_MINUTES = 24 * 60


def add(db: Database, minute: int, counts: Mapping[str, int], connected: int | None) -> None:
    """Add ``counts`` to the row of ``minute`` (created if missing); set ``connected`` if given.

    An upsert, so a row written before a kill -9 goes on adding up after the restart."""
    values: dict[str, Any] = {name: int(counts.get(name, 0)) for name in COUNTS}
    update: dict[Any, Any] = {
        getattr(MetricMinute, name): getattr(MetricMinute, name) + values[name] for name in COUNTS
    }
    if connected is not None:
        values["connected"] = connected
        update[MetricMinute.connected] = connected
    with db.work():
        MetricMinute.insert(minute=minute, **values).on_conflict(
            conflict_target=[MetricMinute.minute], update=update
        ).execute()


def prune(db: Database, now_minute: int) -> int:
    """Forget minutes older than 24 hours; returns how many rows went."""
    with db.work():
        return MetricMinute.delete().where(MetricMinute.minute <= now_minute - KEEP_MINUTES).execute()


def since(db: Database, first_minute: int) -> list[dict[str, int]]:
    """Rows from ``first_minute`` on, oldest first."""
    with db.work():
        rows = (
            MetricMinute.select()
            .where(MetricMinute.minute >= first_minute)
            .order_by(MetricMinute.minute)
            .dicts()
        )
        return [dict(row) for row in rows]
