"""Which node sends an endpoint's queue: one at a time across every node sharing the database.

On PostgreSQL each endpoint being sent holds a session-level advisory lock on one connection
kept for that purpose: another node's sender skips the endpoint while it is held, and a node
that dies (kill -9) loses its connection and so its locks at once -- the next node resumes the
queue without waiting out a lease. SQLite means one node: every lock is granted.
"""

from __future__ import annotations

import gevent.lock
import psycopg2

from wafleet.storage.database import Database

NAMESPACE = 0x57464C54 << 32  # "WFLT": keeps these keys apart from any other advisory lock


class EndpointLocks:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._conn: psycopg2.extensions.connection | None = None
        self._mutex = gevent.lock.Semaphore()  # one statement at a time on the connection

    def _cursor(self) -> psycopg2.extensions.cursor:
        if self._conn is None or self._conn.closed:
            params = dict(self.db.db.connect_params)
            self._conn = psycopg2.connect(dbname=self.db.db.database, **params)
            self._conn.autocommit = True
        return self._conn.cursor()

    def acquire(self, endpoint_id: int) -> bool:
        """True when this node may send the endpoint's queue now (until :meth:`release`)."""
        if self.db.kind != "postgresql":
            return True
        with self._mutex, self._cursor() as cur:
            cur.execute("SELECT pg_try_advisory_lock(%s)", (NAMESPACE + endpoint_id,))
            return bool(cur.fetchone()[0])

    def release(self, endpoint_id: int) -> None:
        if self.db.kind != "postgresql" or self._conn is None or self._conn.closed:
            return
        with self._mutex, self._cursor() as cur:
            cur.execute("SELECT pg_advisory_unlock(%s)", (NAMESPACE + endpoint_id,))

    def close(self) -> None:
        """Drops every lock this node holds."""
        if self._conn is not None and not self._conn.closed:
            self._conn.close()
        self._conn = None
