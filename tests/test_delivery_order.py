"""Per-endpoint order on PostgreSQL when two transactions queue deliveries at once: a delivery
committed first but numbered after one still in flight waits for it (storage level, real server)."""

from __future__ import annotations

import threading

import pytest

from wafleet.storage import deliveries, endpoints, events
from wafleet.storage.companies import create
from wafleet.storage.database import Database
from wafleet.storage.schema import migrate


@pytest.mark.postgres
def test_a_later_delivery_waits_for_an_earlier_one_still_uncommitted(postgres) -> None:
    db = Database(postgres.create_database())
    migrate(db)
    create(db, id="acme", name="Acme", phone=None, link="sandbox", token_hash="h" * 64)
    endpoints.replace_webhooks(
        db, "acme", [{"url": "https://93.184.216.34/h", "events": ["message"], "secret": "x"}]
    )
    inserted, commit = threading.Event(), threading.Event()

    def slow_writer() -> None:  # takes its number first, commits last
        with db.work(), db.atomic():
            events.append("acme", "message", state=None, reason="in", data={"text": "first"}, at=1)
            inserted.set()
            commit.wait(10)
        db.close()

    writer = threading.Thread(target=slow_writer)
    writer.start()
    assert inserted.wait(10)
    with db.work(), db.atomic():
        events.append("acme", "message", state=None, reason="in", data={"text": "second"}, at=2)
    ep = deliveries.due_endpoints(db, 10**15, 10)
    assert len(ep) == 1
    # "second" is committed, "first" is not: nothing may be sent yet, or the order would break.
    try:
        assert deliveries.queue(db, ep[0], 100) == ([], True)
    finally:
        commit.set()
    writer.join(10)
    texts = [r.body.split('"text":"')[1].split('"')[0] for r in deliveries.queue(db, ep[0], 100)[0]]
    assert texts == ["first", "second"]
    db.close()
