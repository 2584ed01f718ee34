"""Live fan-out of journal events to listeners (server-sent event streams).

A listener is a bounded gevent queue that its stream's greenlet blocks on: thousands of idle
streams cost a parked greenlet each and no CPU. A listener that falls behind is cut off (it gets
``None``) rather than growing without bound; its client reconnects with Last-Event-ID and
replays the gap from the events table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gevent.queue

from wafleet.storage.events import EventRow


@dataclass(eq=False)
class Listener:
    company_id: str | None  # None: every company (the admin's fleet stream)
    owner: Any = None  # whoever opened it (opaque here): lets a revocation find its streams
    queue: gevent.queue.Queue = field(default_factory=lambda: gevent.queue.Queue(maxsize=1000))


class Broadcaster:
    def __init__(self) -> None:
        self._by_company: dict[str | None, set[Listener]] = {}

    def subscribe(self, company_id: str | None, owner: Any = None) -> Listener:
        listener = Listener(company_id, owner)
        self._by_company.setdefault(company_id, set()).add(listener)
        return listener

    def unsubscribe(self, listener: Listener) -> None:
        listeners = self._by_company.get(listener.company_id)
        if listeners is not None:
            listeners.discard(listener)
            if not listeners:
                del self._by_company[listener.company_id]

    def publish(self, event: EventRow) -> None:
        for key in (event.company_id, None) if event.company_id is not None else (None,):
            for listener in list(self._by_company.get(key, ())):
                try:
                    listener.queue.put_nowait(event)
                except gevent.queue.Full:
                    self.unsubscribe(listener)
                    listener.queue.queue.clear()
                    listener.queue.put_nowait(None)

    def close_all(self) -> None:
        """End every stream (node shutdown): clients reconnect elsewhere with Last-Event-ID."""
        for listeners in list(self._by_company.values()):
            for listener in list(listeners):
                self.unsubscribe(listener)
                listener.queue.put_nowait(None)

    def end(self, which: Callable[[Listener], bool]) -> int:
        """End the streams ``which`` selects (their right to exist ended); returns how many."""
        ended = 0
        for listeners in list(self._by_company.values()):
            for listener in list(listeners):
                if which(listener):
                    self.unsubscribe(listener)
                    listener.queue.queue.clear()
                    listener.queue.put_nowait(None)
                    ended += 1
        return ended

    def count(self) -> int:
        return sum(len(v) for v in self._by_company.values())

    def count_for(self, company_id: str | None) -> int:
        """Open streams of one company (None: the fleet streams)."""
        return len(self._by_company.get(company_id, ()))
