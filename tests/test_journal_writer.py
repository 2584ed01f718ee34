"""The journal's batched writer: many sessions' transitions share commits, each caller is answered
only after its own rows are committed, in order, and a failed commit fails every caller in it."""

from __future__ import annotations

import gevent
import pytest

from wafleet.storage import companies, events
from wafleet.storage.database import Database
from wafleet.storage.journal_writer import EventWrite, JournalWriter, SessionWrite
from wafleet.storage.models import Session
from wafleet.storage.schema import migrate


@pytest.fixture
def db(database_url: str):
    database = Database(database_url)
    migrate(database)
    yield database
    database.close()


def test_concurrent_transitions_share_commits_and_each_caller_sees_its_own_rows(db: Database) -> None:
    ids = [f"c{i}" for i in range(60)]
    for cid in ids:
        companies.create(db, id=cid, name=cid, phone=None, link="sandbox", token_hash=f"h-{cid}")
    writer = JournalWriter(db, max_batch=1000)
    answers: dict[str, list[int]] = {}

    def transition(cid: str) -> None:
        writes = [
            EventWrite(cid, "status", "starting", "qr", None, 1),
            SessionWrite(cid, {"status": "starting", "since": 1}),
            EventWrite(cid, "status", "connected", "linked", {"phone": cid}, 2),
            SessionWrite(cid, {"status": "connected", "since": 2, "phone": cid}),
        ]
        answers[cid] = writer.write(writes)
        # Answered only once committed: what this caller was told is already in the database.
        assert [e.id for e in events.recent(db, cid, "status", 5)] == answers[cid]

    gevent.joinall([gevent.spawn(transition, cid) for cid in ids], raise_error=True)
    assert writer.batches < len(ids)  # callers shared transactions
    assert writer.writes == 4 * len(ids)
    history = events.recent_for(db, min(ids), max(ids), "status", 20)
    for cid in ids:
        assert [(e.state, e.data) for e in history[cid]] == [("starting", {}), ("connected", {"phone": cid})]
        with db.work():
            row = Session.get(Session.company == cid)
        assert (row.status, row.since, row.phone) == ("connected", 2, cid)  # the last write won
    writer.close()


def test_a_failed_commit_fails_every_caller_in_it_and_keeps_nothing(db: Database) -> None:
    companies.create(db, id="a", name="a", phone=None, link="sandbox", token_hash="h-a")
    writer = JournalWriter(db)
    too_long = "x" * 100  # the column holds 16 characters: PostgreSQL refuses the batch
    bad = [EventWrite("a", "status", "connected", None, None, 1), SessionWrite("a", {"status": too_long})]
    if db.kind == "sqlite":  # SQLite does not enforce lengths: make the batch fail another way
        bad = [EventWrite("a", "status", "connected", None, None, 1), SessionWrite("a", {"nope": 1})]
    good = [EventWrite("a", "status", "qr", None, None, 1)]
    results = [writer.submit(bad), writer.submit(good)]  # queued together: one batch
    for result in results:
        with pytest.raises(Exception):  # noqa: B017  (the driver's error, whatever it is)
            result.get(timeout=10)
    assert events.recent(db, "a", "status", 5) == []
    assert writer.write([EventWrite("a", "status", "stopped", None, None, 3)])  # the writer lives on
    writer.close()
