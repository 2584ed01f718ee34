"""A node's shutdown stops the sessions before the link hosts they run on (reverse start order).

In-process: the real Tree, Fleet, session and web link, on a scripted link-host worker that
records every command it receives and when its stdin closes (the host being stopped).
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import sys
from pathlib import Path
from typing import Any

import gevent
import pytest

from wafleet.actors import messages as m
from wafleet.actors.directory import Directory
from wafleet.actors.fleet import FleetConfig
from wafleet.actors.journal import Journal
from wafleet.actors.linkhost import LinkHostPool
from wafleet.actors.links.factory import LinkFactory
from wafleet.actors.links.sandbox import SandboxTiming
from wafleet.actors.metrics import Metrics
from wafleet.actors.restart import RestartPolicy
from wafleet.actors.session import SessionDeps
from wafleet.actors.supervisor import ChildSpec
from wafleet.actors.tree import Tree
from wafleet.storage.authstate import AuthStore
from wafleet.storage.database import Database
from wafleet.storage.schema import migrate

SCRIPTED = [sys.executable, str(Path(__file__).with_name("scripted_linkhost.py"))]
CONNECTED = [{"event": "connected", "phone": "15550001", "creds": {"phone": "15550001", "jid": "j"}}]


def _wait(predicate: Any, what: str, timeout: float = 10) -> None:
    with gevent.Timeout(timeout, AssertionError(f"timed out waiting for {what}")):
        while not predicate():
            gevent.sleep(0.01)


@pytest.mark.skipif(importlib.util.find_spec("neonize") is None, reason="the web link needs neonize")
def test_sessions_stop_while_their_link_host_still_answers(tmp_path: Path) -> None:
    seen = tmp_path / "host.log"
    env = dict(
        os.environ, WAFLEET_SCRIPT=json.dumps({"company_web": CONNECTED}), WAFLEET_SCRIPT_LOG=str(seen)
    )
    db = Database(f"sqlite:///{tmp_path}/tree.db")
    migrate(db)
    directory = Directory()
    links = LinkFactory(
        sandbox=False, sandbox_timing=SandboxTiming(), web_store_dir=str(tmp_path / "sessions")
    )
    deps = SessionDeps(
        journal=Journal(db, Metrics(None)),
        auth=AuthStore(str(tmp_path / "auth")),
        links=links,
        metrics=Metrics(None),
    )
    policy = RestartPolicy(base=0.05, max_delay=0.2)
    hosts = ChildSpec(
        "linkhosts",
        lambda on_exit: LinkHostPool.start(
            10, on_exit=on_exit, policy=policy, command=SCRIPTED, env=env, stop_timeout=3.0
        ),
        shutdown=LinkHostPool.budget(3.0),
    )
    tree = Tree(
        db=db,
        directory=directory,
        deps=deps,
        fleet_config=FleetConfig(policy=policy, boot_rate=10_000),
        root_policy=RestartPolicy(base=0.01, max_delay=0.05),
        on_give_up=lambda reason: None,
        hosts=[hosts],
        rng=random.Random(3),
    )
    links.web_pool = lambda: tree.child("linkhosts")
    _wait(tree.running, "the fleet to boot")
    tree.call(m.CreateCompany("web", "Web", None, "web"))
    tree.call(m.Initialize("web"))
    _wait(lambda: directory.get("web").status == "connected", "the web session to connect")

    tree.shutdown()
    db.close()
    lines = seen.read_text().splitlines()
    # The session's stop reached its host while the host ran; only then was the host stopped.
    assert lines[0] == "start company_web" and lines[-1] == "eof", lines
    assert "stop company_web" in lines, lines
