"""The deliverer actor leaves no greenlet behind, however it ends (in-process)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gevent
import pytest

from wafleet.actors import messages as m
from wafleet.actors.gevent_actor import Exit
from wafleet.actors.metrics import Metrics
from wafleet.actors.webhook_deliverer import WebhookConfig, WebhookDeliverer, _Failed
from wafleet.storage import deliveries
from wafleet.storage.database import Database
from wafleet.storage.schema import migrate


@pytest.mark.parametrize("ending", ["shutdown", "stop", "crash"])
def test_scheduler_and_workers_end_with_the_actor(tmp_path: Path, ending: str) -> None:
    db = Database(f"sqlite:///{tmp_path}/w.db")
    migrate(db)
    exits: list[Exit] = []
    # What WebhookDeliverer.start does, keeping the instance to look at its greenlets.
    actor: Any = WebhookDeliverer(
        db=db, metrics=Metrics(None), cipher=None, config=WebhookConfig(poll=0.05), on_exit=exits.append
    )
    actor._start_actor_loop()
    ref = actor.actor_ref
    gevent.sleep(0.1)
    assert actor.scheduler is not None and not actor.scheduler.dead
    worker = actor.pool.spawn(gevent.sleep, 60)  # stands for an attempt in flight
    listeners = len(deliveries._listeners)
    if ending == "shutdown":
        ref.ask(m.Shutdown())
    elif ending == "stop":
        ref.stop()
    else:
        ref.tell(_Failed(RuntimeError("database went away")))
    gevent.sleep(0.1)
    assert actor.scheduler.dead and worker.dead and len(actor.pool) == 0
    assert len(deliveries._listeners) == listeners - 1
    assert [e.reason for e in exits] == (["crash"] if ending == "crash" else ["normal"])
    db.close()
