"""Pre-built SQL for the statements every assistant turn runs.

Building a statement with peewee's query builder costs about as much CPU as SQLite takes to run
it (measured: query building was half of the node's CPU per turn). The hot statements are written
once here as text with ``?`` placeholders, turned into the driver's style (``%s`` for psycopg2)
on first use, and run with plain parameters. Everything else keeps using peewee.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import peewee

from wafleet.storage.database import Database

Target = Database | peewee.Database | peewee.DatabaseProxy  # ours, or a model's database


def _peewee(db: Target) -> Any:
    return db.db if isinstance(db, Database) else db


class Statement:
    """One SQL text, valid on SQLite and PostgreSQL; ``?`` marks a parameter."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._pg = text.replace("?", "%s")

    def run(self, db: Target, params: Sequence[Any] = ()) -> Any:
        """Execute inside the caller's unit of work; returns the driver's cursor."""
        raw = _peewee(db)
        return raw.execute_sql(self._pg if raw.param == "%s" else self.text, params)

    def one(self, db: Target, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        return self.run(db, params).fetchone()

    def all(self, db: Target, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.run(db, params).fetchall()


class Insert:
    """``INSERT`` of a fixed column list; :meth:`run` returns the new row's id."""

    def __init__(self, model: type[peewee.Model], fields: Sequence[str]) -> None:
        table = model._meta.table_name
        names = ", ".join(f'"{c}"' for c in fields)
        marks = ", ".join("?" for _ in fields)
        self.columns = tuple(fields)
        self._sqlite = Statement(f'INSERT INTO "{table}" ({names}) VALUES ({marks})')
        self._pg = Statement(f'INSERT INTO "{table}" ({names}) VALUES ({marks}) RETURNING "id"')

    def run(self, db: Target, params: Sequence[Any]) -> int:
        if _peewee(db).param == "%s":  # PostgreSQL: no lastrowid
            return self._pg.one(db, params)[0]  # type: ignore[index]
        return self._sqlite.run(db, params).lastrowid


def table(model: type[peewee.Model]) -> str:
    """The model's table name, quoted for SQL text."""
    return f'"{model._meta.table_name}"'


def columns(names: Sequence[str]) -> str:
    """A quoted column list for SQL text."""
    return ", ".join(f'"{name}"' for name in names)
