"""Keyset paging of a company's rows, newest first: the cursor is the id of the last row given."""

from __future__ import annotations

from typing import Any, TypeVar

import peewee

from wafleet.storage.database import Database

M = TypeVar("M", bound=peewee.Model)


def newest_first(
    db: Database, model: type[M], company_id: str, limit: int, before: int | None
) -> tuple[list[M], int | None]:
    """``limit`` of the company's rows with ids below ``before`` (all when None), newest first,
    and the cursor for the next page (None when nothing older is left). One query: it reads one
    row more than it gives to know whether there is a next page."""
    table: Any = model
    with db.work():
        query = model.select().where(table.company == company_id)
        if before is not None:
            query = query.where(table.id < before)
        rows = list(query.order_by(table.id.desc()).limit(limit + 1))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1].id if more and rows else None)
