"""The fleet's read model: one record per company, written only by actors, read by anyone.

Status requests read a record instead of asking an actor, so they are answered even while a
session is between restarts (no actor exists then) and cost no message round trip.
"""

from __future__ import annotations

import unicodedata
from collections import Counter, deque
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from wafleet.actors.exit_policy import BAN_KEPT_IN
from wafleet.actors.status import ExitReason, Status
from wafleet.storage.clock import iso

STATES = tuple(Status)
HISTORY_LENGTH = 20


class Tally:
    """Sessions by status and restarts in all, kept up to date as records change: the metrics
    routes and gauges read them often, and walking 100,000 records for each read took 40 % of
    the node's CPU while a restarted node was restoring its sessions."""

    def __init__(self) -> None:
        self.by_status: Counter[str] = Counter()
        self.restarts = 0

    def add(self, record: SessionRecord) -> None:
        self.by_status[record.status] += 1
        self.restarts += record.restarts

    def discard(self, record: SessionRecord) -> None:
        self.by_status[record.status] -= 1
        self.restarts -= record.restarts


@dataclass
class SessionRecord:
    company_id: str
    name: str
    link: str
    company_phone: str | None
    token_hash: str
    created_at: int
    desired: str = "stopped"
    status: str = "stopped"
    since: int = 0
    phone: str | None = None
    restarts: int = 0
    last_error: dict[str, Any] | None = None
    history: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=HISTORY_LENGTH))
    qr: dict[str, Any] | None = None
    pairing: dict[str, Any] | None = None
    pairing_phone: str | None = None  # set by initialize{usePairingCode}: how the next start connects
    # ms: the end of the pairing-code cool-down (blocked) or of a ban (failed, reason banned)
    blocked_until: int | None = None
    cloud_number: str | None = None  # the Cloud API phone_number_id (secrets are never kept here)
    # The directory's tally while the record is published: it follows status and restarts.
    tally: Tally | None = field(default=None, repr=False, compare=False)

    def __setattr__(self, name: str, value: Any) -> None:
        tally = self.__dict__.get("tally")
        if tally is not None:
            if name == "status":
                tally.by_status[self.__dict__["status"]] -= 1
                tally.by_status[value] += 1
            elif name == "restarts":
                tally.restarts += value - self.__dict__["restarts"]
        object.__setattr__(self, name, value)

    def company_json(self) -> dict[str, Any]:
        return {
            "id": self.company_id,
            "name": self.name,
            "phone": self.company_phone,
            "link": self.link,
            "createdAt": iso(self.created_at),
            "status": self.status,
            "cloud": {"phoneNumberId": self.cloud_number} if self.cloud_number else None,
        }

    def status_json(self) -> dict[str, Any]:
        last_error = None
        if self.last_error:
            last_error = dict(self.last_error, at=iso(self.last_error.get("at")))
            if self.status in BAN_KEPT_IN and self.last_error.get("reason") == ExitReason.BANNED:
                last_error["until"] = iso(self.blocked_until)  # None: a ban without an end
        return {
            "companyId": self.company_id,
            "status": self.status,
            "connected": self.status == Status.CONNECTED,
            "phoneNumber": self.phone,
            "qr": _expiring(self.qr),
            "pairingCode": _expiring(self.pairing),
            "restarts": self.restarts,
            "lastError": last_error,
            "since": iso(self.since),
            "blockedUntil": iso(self.blocked_until) if self.status == Status.BLOCKED else None,
            "history": [dict(h, at=iso(h["at"])) for h in self.history],
        }


def _expiring(item: dict[str, Any] | None) -> dict[str, Any] | None:
    if item is None:
        return None
    return {"code": item["code"], "expiresAt": iso(item["expiresAt"])}


@dataclass
class BootProgress:
    """How far the Fleet's boot is: ``loading`` records (the node cannot serve companies yet),
    ``restoring`` sessions at the boot rate, ``done``."""

    state: str = "loading"
    loaded: int = 0  # companies read from the database
    to_restore: int = 0  # sessions that were running and come back by themselves
    restored: int = 0  # of those, asked to start so far

    def json(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "loaded": self.loaded,
            "toRestore": self.to_restore,
            "restored": self.restored,
        }


class Directory:
    def __init__(self) -> None:
        self.records: dict[str, SessionRecord] = {}
        self.by_token: dict[str, str] = {}
        self.boot = BootProgress()
        self.tally = Tally()

    @property
    def loaded(self) -> bool:
        """Every company's record is here (until then an unknown id may just not be loaded)."""
        return self.boot.state != "loading"

    def begin_boot(self, progress: BootProgress) -> None:
        """A (re)started Fleet loads every record afresh; the old ones are stale."""
        for record in self.records.values():
            record.tally = None
        self.records = {}
        self.by_token = {}
        self.boot = progress
        self.tally = Tally()

    def add(self, record: SessionRecord) -> None:
        self.remove(record.company_id)
        self.records[record.company_id] = record
        self.by_token[record.token_hash] = record.company_id
        self.tally.add(record)
        record.tally = self.tally

    def remove(self, company_id: str) -> None:
        record = self.records.pop(company_id, None)
        if record is not None:
            self.by_token.pop(record.token_hash, None)
            record.tally = None
            self.tally.discard(record)

    def rekey(self, company_id: str, token_hash: str) -> None:
        """The company's token changed: the old hash opens nothing from now on."""
        record = self.records[company_id]
        self.by_token.pop(record.token_hash, None)
        record.token_hash = token_hash
        self.by_token[token_hash] = company_id

    def get(self, company_id: str) -> SessionRecord | None:
        return self.records.get(company_id)

    def company_for_token(self, token_hash: str) -> str | None:
        return self.by_token.get(token_hash)

    def counts(self) -> dict[str, int]:
        by_status = self.tally.by_status
        return {state: by_status.get(state, 0) for state in STATES}

    def restarts(self) -> int:
        return self.tally.restarts


@lru_cache(maxsize=65536)
def folded(text: str) -> str:
    """Text as a search compares it: case-folded, accents dropped ("Salão" matches "salao")."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def search(
    records: dict[str, SessionRecord],
    status: str | None = None,
    q: str = "",
    after: str = "",
    limit: int | None = None,
) -> tuple[list[SessionRecord], int, str | None]:
    """One page of sessions sorted by id: those in ``status`` whose id, name or phone holds ``q``,
    with ids after ``after``. Returns (page, how many match in all, the cursor of the next page)."""
    needle = folded(q.strip())
    matching = []
    for record in records.values():
        if status is not None and record.status != status:
            continue
        if needle and not any(
            needle in folded(text)
            for text in (record.company_id, record.name, record.phone or "", record.company_phone or "")
        ):
            continue
        matching.append(record)
    matching.sort(key=lambda r: r.company_id)
    total = len(matching)
    if after:
        matching = [r for r in matching if r.company_id > after]
    if limit is None:
        return matching, total, None
    page = matching[:limit]
    return page, total, page[-1].company_id if len(matching) > limit else None
