"""Open the database named by DATABASE_URL: a SQLite file (WAL) or pooled PostgreSQL.

SQLite: one shared connection. Its calls never yield to gevent, so greenlets cannot interleave
inside a statement or a transaction that does no I/O of its own; that beats one connection per
greenlet (10,000 session actors would mean 10,000 open files).
PostgreSQL: a pool; every unit of work borrows a connection with :meth:`Database.work` and gives
it back, so idle actors pin no connection (psycopg2 is made cooperative by the entry point).

The SQLite file holds message text and secrets' ciphertexts: its folder is created 0700 and the
file 0600 (SQLite gives its -wal and -shm files the database file's mode). At debug level peewee
logs every statement with its parameters; the parameters are dropped from those records.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import unquote, urlparse

import peewee
from playhouse.pool import PooledPostgresqlDatabase

from wafleet.storage.crypto import PLAIN, TextSeal
from wafleet.storage.models import ALL_MODELS, database_proxy


class DatabaseUrlError(ValueError):
    pass


def _without_parameters(record: logging.LogRecord) -> bool:
    """peewee logs ``(sql, params)``: keep the statement, never the values (text, hashes)."""
    if isinstance(record.msg, tuple) and len(record.msg) == 2 and isinstance(record.msg[0], str):
        record.msg, record.args = "%s", (record.msg[0],)
    return True


logging.getLogger("peewee").addFilter(_without_parameters)


def _private_file(path: str) -> None:
    """Create the folder 0700 and the file 0600 before SQLite opens it (it keeps what it finds)."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        os.makedirs(folder, mode=0o700, exist_ok=True)
        os.chmod(folder, 0o700)  # makedirs' mode is filtered by the umask
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        pass


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.kind, self.db = _open(url)
        database_proxy.initialize(self.db)
        # How message texts are stored (WHATSAPP_ENCRYPT_MESSAGES); set by the composition root.
        self.text_seal: TextSeal = PLAIN

    @contextmanager
    def work(self) -> Iterator[peewee.Database]:
        """Hold a connection for one unit of work (re-entrant); returns it to the pool after."""
        if self.kind == "sqlite" or not self.db.is_closed():
            yield self.db
            return
        self.db.connect()
        try:
            yield self.db
        finally:
            if not self.db.in_transaction():
                self.db.close()

    def atomic(self) -> peewee._atomic:  # type: ignore[name-defined]
        return self.db.atomic()

    def ping(self) -> None:
        with self.work():
            self.db.execute_sql("SELECT 1").fetchone()

    def close(self) -> None:
        if isinstance(self.db, PooledPostgresqlDatabase):
            self.db.close_all()
        elif not self.db.is_closed():
            self.db.close()

    @property
    def description(self) -> str:
        """The URL without its password, for logs."""
        parsed = urlparse(self.url)
        if parsed.password:
            return self.url.replace(f":{parsed.password}@", ":***@")
        return self.url


def _open(url: str) -> tuple[str, peewee.Database]:
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        path = unquote(parsed.path)
        if url.startswith("sqlite:///") and path.startswith("/") and not url.startswith("sqlite:////"):
            path = path[1:]  # sqlite:///relative/path.db
        if not path:
            raise DatabaseUrlError("sqlite URL needs a file path, e.g. sqlite:///data/wafleet.db")
        if path != ":memory:":
            _private_file(path)
        db = peewee.SqliteDatabase(
            path,
            thread_safe=False,
            check_same_thread=False,
            pragmas={
                "journal_mode": "wal",
                "synchronous": "normal",
                "foreign_keys": 1,
                "busy_timeout": 5000,
            },
        )
        return "sqlite", db
    if parsed.scheme in ("postgres", "postgresql"):
        if not parsed.path.strip("/"):
            raise DatabaseUrlError("postgresql URL needs a database name")
        db = PooledPostgresqlDatabase(
            unquote(parsed.path.lstrip("/")),
            user=unquote(parsed.username) if parsed.username else None,
            password=unquote(parsed.password) if parsed.password else None,
            host=parsed.hostname or None,
            port=parsed.port or None,
            max_connections=int(os.environ.get("WAFLEET_DB_POOL_SIZE", "20")),
            stale_timeout=300,
            timeout=10,
            autoconnect=False,
        )
        return "postgresql", db
    raise DatabaseUrlError("expected sqlite:///path/to/file.db or postgresql://user:pass@host:port/db")


__all__ = ["ALL_MODELS", "Database", "DatabaseUrlError"]
