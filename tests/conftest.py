from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import Node, Postgres

# Every node the tests start refuses an illegal state edge loudly (production logs and refuses).
os.environ.setdefault("WAFLEET_STRICT_TRANSITIONS", "true")


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    server = Postgres()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every test that takes this runs twice: on SQLite and on a real PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/wafleet.db"
    return request.getfixturevalue("postgres").create_database()


@pytest.fixture
def node_factory(tmp_path: Path) -> Iterator:
    nodes: list[Node] = []

    def make(database_url: str | None = None, **env: str) -> Node:
        node = Node(tmp_path, database_url, **env)
        nodes.append(node)
        return node

    yield make
    for node in nodes:
        node.close()
    for node in nodes:  # an illegal state edge raised inside an actor must not pass unseen
        assert "is not a legal transition" not in node.log(), node.log()


@pytest.fixture
def node(node_factory) -> Node:
    return node_factory().start()
