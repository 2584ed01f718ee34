"""A config written on one node is used by another node sharing the database within a second."""

from __future__ import annotations

import time
from pathlib import Path

from tests.assistant_helpers import salon
from tests.harness import wait_for
from wafleet.actors.assistant.service import CONFIG_RECHECK, Assistant, AssistantSettings
from wafleet.actors.journal import Journal
from wafleet.actors.metrics import Metrics
from wafleet.storage.database import Database
from wafleet.storage.phone_vault import vault_for
from wafleet.storage.schema import migrate


def _assistant(db: Database, tmp_path: Path) -> Assistant:
    return Assistant(Journal(db, Metrics(None)), vault_for(None, str(tmp_path)), AssistantSettings())


def test_a_config_put_on_another_node_is_used_within_the_recheck(database_url: str, tmp_path: Path) -> None:
    """Two assistants (each node has one, with its own parsed-config cache) on one database."""
    db = Database(database_url)
    migrate(db)
    a, b = _assistant(db, tmp_path), _assistant(db, tmp_path)
    assert b.config("rosa") is None
    a.put_config("rosa", salon())
    wait_for(lambda: b.config("rosa") is not None, timeout=CONFIG_RECHECK + 2, what="b to see the config")
    a.put_config("rosa", salon(businessName="Salon Azul"))
    started = time.monotonic()
    wait_for(
        lambda: b.config("rosa").business_name == "Salon Azul",  # type: ignore[union-attr]
        timeout=CONFIG_RECHECK + 2,
        what="b to see the new config",
    )
    assert time.monotonic() - started <= CONFIG_RECHECK + 0.5
    assert a.config("rosa").business_name == "Salon Azul"  # type: ignore[union-attr]
    db.close()
