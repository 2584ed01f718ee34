"""A ban is WhatsApp's, not ours: an operator's stop or cleanup cannot shorten it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.harness import Node, holds, wait_for
from wafleet.actors import cooldown
from wafleet.actors.directory import SessionRecord
from wafleet.actors.journal import Journal
from wafleet.actors.metrics import Metrics
from wafleet.storage import companies
from wafleet.storage.clock import now_ms
from wafleet.storage.database import Database
from wafleet.storage.schema import migrate


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _ban(node: Node, company_id: str, seconds: float) -> str:
    until = _iso(datetime.now(UTC) + timedelta(seconds=seconds))
    r = node.post(f"/api/sandbox/{company_id}/disconnect", {"reason": "banned", "until": until})
    assert r.status_code == 202, r.text
    node.wait_status(company_id, "failed")
    return until


def _refused_until(node: Node, company_id: str, command: str, until: str) -> None:
    r = node.post(f"/api/whatsapp/sessions/{company_id}/{command}")
    assert r.status_code == 409, (command, r.text)
    error = r.json()["error"]
    assert error["code"] == "banned" and until in error["message"], (command, error)


def test_stop_and_cleanup_during_a_ban_do_not_lift_it(node_factory, database_url) -> None:
    node: Node = node_factory(database_url).start()
    node.create_company("banned")
    node.connect("banned")
    until = _ban(node, "banned", 3600)

    r = node.post("/api/whatsapp/sessions/banned/stop")
    assert r.status_code == 200, r.text  # stopping is fine ...
    stopped = node.status("banned")
    assert stopped["status"] == "stopped"
    assert stopped["lastError"]["reason"] == "banned" and stopped["lastError"]["until"] == until
    _refused_until(node, "banned", "reconnect", until)  # ... starting again before the end is not
    _refused_until(node, "banned", "initialize", until)

    assert node.post("/api/whatsapp/sessions/banned/cleanup").status_code == 200
    _refused_until(node, "banned", "reconnect", until)
    _refused_until(node, "banned", "initialize", until)
    assert node.status("banned")["status"] == "stopped"

    node.kill()  # the ban's end is on the session's row, not only in memory
    node.start()
    _refused_until(node, "banned", "reconnect", until)
    assert node.status("banned")["status"] == "stopped"


@pytest.mark.slow  # waits for the ban's end
def test_after_a_stopped_ban_ends_the_operator_may_start_again(node_factory) -> None:
    node: Node = node_factory(WHATSAPP_RECONNECT_DELAY="50").start()
    node.create_company("paused")
    node.connect("paused")
    until = _ban(node, "paused", 3)
    assert node.post("/api/whatsapp/sessions/paused/stop").status_code == 200
    _refused_until(node, "paused", "reconnect", until)

    end = datetime.fromisoformat(until.replace("Z", "+00:00"))
    wait_for(lambda: datetime.now(UTC) > end, timeout=10, what="the ban's end")
    # The ban's end wakes a banned session that should run; this one the operator stopped, so
    # over the second after the end (its timer fires at the end) it stays stopped.
    holds(lambda: node.status("paused")["status"] == "stopped", 1.0, what="paused stays stopped")
    r = node.post("/api/whatsapp/sessions/paused/reconnect")
    assert r.status_code == 200, r.text
    node.wait_status("paused", "connected")  # a stop keeps the login: it resumes without a QR


# -- the entry rule, in-process: what entering a state does to a ban's end ---------------------
def _banned_record(db: Database, until: int) -> SessionRecord:
    companies.create(db, id="c", name="C", phone=None, link="sandbox", token_hash="c" * 64)
    record = SessionRecord("c", "C", "sandbox", None, "c" * 64, 0, status="connected")
    journal = Journal(db, Metrics(None), strict=True)
    assert journal.transition(record, "failed", reason="banned", message="banned", error=True, until=until)
    return record


def test_entering_stopped_keeps_a_ban_that_has_not_ended(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path}/entry.db")
    migrate(db)
    until = now_ms() + 3_600_000
    record = _banned_record(db, until)
    assert Journal(db, Metrics(None), strict=True).transition(record, "stopped", reason="stopped by request")
    assert record.blocked_until == until and cooldown.ban_pending(record)
    assert companies.load_all(db)[0][1].blocked_until == until  # on the row too
    db.close()


def test_entering_stopped_after_the_ban_ended_forgets_it(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path}/entry.db")
    migrate(db)
    record = _banned_record(db, now_ms() - 1)
    assert Journal(db, Metrics(None), strict=True).transition(record, "stopped", reason="stopped by request")
    assert record.blocked_until is None and not cooldown.ban_pending(record)
    db.close()
