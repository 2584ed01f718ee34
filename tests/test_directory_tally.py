"""The directory's counts by status and its restart total follow every change of a record."""

from __future__ import annotations

import random
from collections import Counter

from wafleet.actors.directory import STATES, Directory, SessionRecord


def record(company_id: str, status: str = "stopped", restarts: int = 0) -> SessionRecord:
    return SessionRecord(
        company_id=company_id,
        name=company_id,
        link="sandbox",
        company_phone=None,
        token_hash=f"hash-{company_id}",
        created_at=0,
        status=status,
        restarts=restarts,
    )


def walked(directory: Directory) -> tuple[dict[str, int], int]:
    counts = Counter(r.status for r in directory.records.values())
    return {s: counts.get(s, 0) for s in STATES}, sum(r.restarts for r in directory.records.values())


def test_counts_follow_adds_transitions_restarts_removals_and_replacements() -> None:
    rng = random.Random(7)
    directory = Directory()
    removed: list[SessionRecord] = []
    for step in range(3000):
        ids = list(directory.records)
        action = rng.random()
        if action < 0.3 or not ids:
            directory.add(record(f"c{rng.randrange(200)}", rng.choice(STATES), rng.randrange(3)))
        elif action < 0.7:
            directory.records[rng.choice(ids)].status = rng.choice(STATES)
        elif action < 0.85:
            directory.records[rng.choice(ids)].restarts += 1
        else:
            gone = directory.records[rng.choice(ids)]
            directory.remove(gone.company_id)
            removed.append(gone)
        if removed and step % 7 == 0:  # a record an actor still holds after its company went
            removed[-1].status = rng.choice(STATES)
            removed[-1].restarts += 1
        assert (directory.counts(), directory.restarts()) == walked(directory), step


def test_a_new_boot_starts_counting_afresh() -> None:
    directory = Directory()
    old = record("a", "connected", 2)
    directory.add(old)
    directory.begin_boot(directory.boot)
    old.status = "failed"  # a stale record from before the reload changes nothing
    directory.add(record("a", "stopped"))
    assert directory.counts()["connected"] == 0
    assert directory.counts()["failed"] == 0
    assert directory.counts()["stopped"] == 1
    assert directory.restarts() == 0
