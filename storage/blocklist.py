"""Blocked numbers: the node's list (WHATSAPP_BLOCKED_NUMBERS) and each company's own.

A blocked number gets nothing from the company: ``send`` refuses it, and what it writes in is
stored but neither answered (the assistant asks :meth:`Blocklist.is_blocked`) nor announced to
listeners and company webhooks.
"""

from __future__ import annotations

from collections.abc import Iterable

from wafleet.storage.clock import now_ms
from wafleet.storage.database import Database
from wafleet.storage.models import BlockedNumber


class TooMany(ValueError):
    """The company's list would grow past its cap."""


def normalise(peer: str) -> str:
    """A link's peer as a bare number: ``+5511...``, ``5511...@s.whatsapp.net`` and
    ``5511...:12@s.whatsapp.net`` (a device) are all ``5511...``."""
    return peer.strip().removeprefix("+").split("@", 1)[0].split(":", 1)[0]


class Blocklist:
    def __init__(self, db: Database, node_numbers: Iterable[str] = (), max_per_company: int = 10_000) -> None:
        self.db = db
        self.node_numbers = tuple(dict.fromkeys(normalise(n) for n in node_numbers))
        self._node_set = frozenset(self.node_numbers)
        self.max_per_company = max_per_company

    def is_blocked(self, company_id: str, peer: str) -> bool:
        """Does ``company_id`` refuse ``peer`` (a number or a WhatsApp id)?"""
        number = normalise(peer)
        if number in self._node_set:
            return True
        with self.db.work():
            return (
                BlockedNumber.select(BlockedNumber.id)
                .where((BlockedNumber.company == company_id) & (BlockedNumber.phone == number))
                .exists()
            )

    def numbers(self, company_id: str) -> list[str]:
        """The company's own list, in the order the numbers were added."""
        with self.db.work():
            query = BlockedNumber.select(BlockedNumber.phone).where(BlockedNumber.company == company_id)
            return [r.phone for r in query.order_by(BlockedNumber.id)]

    def replace(self, company_id: str, numbers: list[str]) -> list[str]:
        wanted = list(dict.fromkeys(normalise(n) for n in numbers))
        if len(wanted) > self.max_per_company:
            raise TooMany(f"at most {self.max_per_company} blocked numbers per company")
        with self.db.work(), self.db.atomic():
            BlockedNumber.delete().where(BlockedNumber.company == company_id).execute()
            self._insert(company_id, wanted)
        return self.numbers(company_id)

    def add(self, company_id: str, numbers: list[str]) -> list[str]:
        with self.db.work(), self.db.atomic():
            have = set(self.numbers(company_id))
            new = [n for n in dict.fromkeys(normalise(n) for n in numbers) if n not in have]
            if len(have) + len(new) > self.max_per_company:
                raise TooMany(f"at most {self.max_per_company} blocked numbers per company")
            self._insert(company_id, new)
        return self.numbers(company_id)

    def remove(self, company_id: str, number: str) -> bool:
        with self.db.work():
            gone = (
                BlockedNumber.delete()
                .where((BlockedNumber.company == company_id) & (BlockedNumber.phone == normalise(number)))
                .execute()
            )
        return gone > 0

    def forget_company(self, company_id: str) -> None:
        with self.db.work():
            BlockedNumber.delete().where(BlockedNumber.company == company_id).execute()

    def _insert(self, company_id: str, numbers: list[str]) -> None:
        now = now_ms()
        rows = [{"company": company_id, "phone": n, "created_at": now} for n in numbers]
        for start in range(0, len(rows), 500):
            BlockedNumber.insert_many(rows[start : start + 500]).on_conflict_ignore().execute()
