"""Key rotation: re-encrypt everything stored encrypted under the newest key.

What is encrypted where is one registry, :data:`REGISTRY`: a table, its column, the column whose
value binds each ciphertext to its row (the associated data, usually the company id) and that
binding's prefix. A new encrypted column is one more :class:`Sealed` line.

The work is online and resumable: rows are read in key order, a batch at a time, each batch in a
short transaction, and every value is written back only if it is still the one that was read (a
node that wrote meanwhile wins). A value already under the newest key is left alone, so a run
that was stopped just runs again; what it did is counted per column.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from wafleet.storage.crypto import SEALED_PREFIX, Cipher, DecryptionError
from wafleet.storage.database import Database


@dataclass(frozen=True)
class Sealed:
    table: str
    column: str
    binding: str | None  # the column whose value is the associated data (None: none)
    binding_prefix: str = ""  # prepended to the binding's value ("webhook:" + company id)
    text: bool = False  # a message text: sealed ones carry SEALED_PREFIX, older ones may be plain
    key: str = "id"  # the primary key, to read in batches

    @property
    def name(self) -> str:
        return f"{self.table}.{self.column}"


REGISTRY: list[Sealed] = [
    Sealed("company", "cloud_token", "id"),
    Sealed("company", "cloud_app_secret", "id"),
    Sealed("company", "cloud_verify_token", "id"),
    Sealed("message", "text", "company", text=True),
    Sealed("outbox", "text", "company", text=True),
    # The assistant's conversations: their state holds the last turns, the log every turn.
    Sealed("conversation", "state", "company", text=True),
    Sealed("assistant_turn", "text", "company", text=True),
    Sealed("assistant_turn", "reply", "company", text=True),
    # Columns of features that may not be in every database yet; a missing one is skipped.
    Sealed("endpoint", "secret", "company", binding_prefix="webhook:"),  # company webhook secrets
    Sealed("booking", "customer_phone", "company"),  # customers' phones in bookings
]


@dataclass
class Counts:
    scanned: int = 0
    rotated: int = 0  # re-encrypted from an older key
    sealed: int = 0  # plain message texts sealed for the first time
    current: int = 0  # already under the newest key
    changed: int = 0  # written by someone else between our read and our write: left to them
    failed: int = 0  # no listed key opens it (a key is missing, or the value was altered)
    missing: bool = False  # the table or column does not exist in this database

    def add(self, other: Counts) -> None:
        for name in ("scanned", "rotated", "sealed", "current", "changed", "failed"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def line(self, name: str) -> str:
        if self.missing:
            return f"{name}: not in this database, skipped"
        return (
            f"{name}: {self.scanned} scanned, {self.rotated} re-encrypted, {self.sealed} sealed, "
            f"{self.current} already current, {self.changed} changed meanwhile, {self.failed} failed"
        )


@dataclass
class Report:
    columns: dict[str, Counts] = field(default_factory=dict)
    interrupted: bool = False

    @property
    def failed(self) -> int:
        return sum(c.failed for c in self.columns.values())


def rotate(
    db: Database,
    cipher: Cipher,
    *,
    seal_texts: bool,
    registry: list[Sealed] | None = None,
    batch: int = 500,
    pause: float = 0.0,
    progress: Callable[[str, Counts], None] | None = None,
) -> Report:
    """Re-encrypt every registered column under ``cipher``'s newest key; with ``seal_texts``, seal
    plain message texts too. ``pause`` seconds between batches keeps the load of a live node low."""
    report = Report()
    try:
        for entry in REGISTRY if registry is None else registry:
            counts = report.columns.setdefault(entry.name, Counts())
            if not _exists(db, entry):
                counts.missing = True
                continue
            last: Any = None
            while True:
                done = Counts()  # counted only once its transaction has committed
                with db.work(), db.atomic():
                    rows = _read(db, entry, last, batch)
                    for key, binding, value in rows:
                        _one(db, entry, cipher, seal_texts, done, key, binding, value)
                counts.add(done)
                if progress is not None:
                    progress(entry.name, counts)
                if len(rows) < batch:
                    break
                last = rows[-1][0]
                if pause:
                    time.sleep(pause)
    except KeyboardInterrupt:  # the batch under way was rolled back; a new run goes on from there
        report.interrupted = True
    return report


def _one(
    db: Database,
    entry: Sealed,
    cipher: Cipher,
    seal_texts: bool,
    counts: Counts,
    key: Any,
    binding: Any,
    value: str,
) -> None:
    counts.scanned += 1
    aad = None if entry.binding is None else f"{entry.binding_prefix}{binding}"
    if entry.text and not value.startswith(SEALED_PREFIX):
        if not seal_texts:
            return  # plain, and texts are not sealed on this node: nothing to rotate
        new = SEALED_PREFIX + cipher.encrypt(value, aad=aad)
        outcome = "sealed"
    else:
        token = value[len(SEALED_PREFIX) :] if entry.text else value
        try:
            plain, index = cipher.decrypt_with_index(token, aad=aad)
        except DecryptionError:
            counts.failed += 1
            return
        if index == 0:
            counts.current += 1
            return
        new = (SEALED_PREFIX if entry.text else "") + cipher.encrypt(plain, aad=aad)
        outcome = "rotated"
    if _swap(db, entry, key, value, new):
        setattr(counts, outcome, getattr(counts, outcome) + 1)
    else:
        counts.changed += 1


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _exists(db: Database, entry: Sealed) -> bool:
    with db.work():
        if not db.db.table_exists(entry.table):
            return False
        return entry.column in {c.name for c in db.db.get_columns(entry.table)}


def _read(db: Database, entry: Sealed, after: Any, limit: int) -> list[tuple[Any, Any, str]]:
    p = db.db.param
    binding = _q(entry.binding) if entry.binding else "NULL"
    where = f"{_q(entry.column)} IS NOT NULL"
    params: list[Any] = []
    if after is not None:
        where += f" AND {_q(entry.key)} > {p}"
        params.append(after)
    sql = (
        f"SELECT {_q(entry.key)}, {binding}, {_q(entry.column)} FROM {_q(entry.table)} "
        f"WHERE {where} ORDER BY {_q(entry.key)} LIMIT {int(limit)}"
    )
    return [tuple(r) for r in db.db.execute_sql(sql, params).fetchall()]  # type: ignore[misc]


def _swap(db: Database, entry: Sealed, key: Any, old: str, new: str) -> bool:
    """Write ``new`` only where the value is still ``old``."""
    p = db.db.param
    sql = (
        f"UPDATE {_q(entry.table)} SET {_q(entry.column)} = {p} "
        f"WHERE {_q(entry.key)} = {p} AND {_q(entry.column)} = {p}"
    )
    return db.db.execute_sql(sql, [new, key, old]).rowcount == 1
