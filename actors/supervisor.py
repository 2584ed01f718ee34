"""The one supervision mechanism: child specs, generations, restart timers, budgeted stops.

Root, the link-host pool and the Fleet each hold a :class:`Children` inside their actor and
differ only in what they decide after an exit (Root and the pool: restart with backoff, give up
when the intensity trips; the Fleet: ``wafleet.actors.exit_policy``).

* A child is started from its :class:`ChildSpec` with a callback that tells the supervisor
  ``ChildExited(id, generation, exit)``. Generations come from one process-wide counter, so
  the late exit of a child that was replaced (a burst of reconnects) never matches its successor.
* A restart timer tells the supervisor ``StartChild(id, generation)``; a timer that outlived
  its child's generation does nothing.
* Stopping is budgeted: each spec says how long its child may take to stop (its own children's
  stops included); a supervisor's budget covers its children's, and the Root's fits inside
  supervisord's ``stopwaitsecs``. A child that does not stop in its budget is stopped hard.
"""

from __future__ import annotations

import itertools
import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import gevent
import pykka

from wafleet.actors.gevent_actor import Exit
from wafleet.actors.messages import ChildExited, Shutdown, StartChild
from wafleet.actors.restart import RestartPolicy, RestartTracker

log = logging.getLogger(__name__)

StartFn = Callable[[Callable[[Exit], None]], pykka.ActorRef[Any]]

_generations = itertools.count(1)


class RestartType(Enum):
    PERMANENT = "permanent"  # restarted whatever the exit (singletons, link hosts)
    TRANSIENT = "transient"  # the supervisor's policy decides (sessions: exit_policy.RULES)
    TEMPORARY = "temporary"  # never restarted


@dataclass(frozen=True)
class ChildSpec:
    id: str
    start: StartFn  # builds the child, given the callback that reports its exit
    restart: RestartType = RestartType.PERMANENT
    shutdown: float = 5.0  # seconds the child has to stop, its own children included
    stop_message: Any = field(default_factory=Shutdown)  # what asks it to stop


@dataclass
class Slot:
    spec: ChildSpec
    tracker: RestartTracker
    generation: int = 0
    ref: pykka.ActorRef[Any] | None = None
    timer: gevent.Greenlet | None = None
    closing: bool = False  # the supervisor itself asked it to stop: its exit is expected


class Children:
    """The children of one supervising actor. Call it only from inside that actor."""

    def __init__(
        self,
        owner: Callable[[], pykka.ActorRef[Any]],
        policy: RestartPolicy,
        rng: random.Random | None = None,
    ) -> None:
        self._owner = owner
        self.policy = policy
        self.rng = rng or random.Random()
        self.slots: dict[str, Slot] = {}
        self.stopping = False

    def __contains__(self, child_id: str) -> bool:
        return child_id in self.slots

    def __len__(self) -> int:
        return len(self.slots)

    def get(self, child_id: str) -> Slot | None:
        return self.slots.get(child_id)

    def ref(self, child_id: str) -> pykka.ActorRef[Any] | None:
        slot = self.slots.get(child_id)
        return slot.ref if slot is not None else None

    def live(self) -> int:
        return sum(1 for s in self.slots.values() if s.ref is not None)

    # -- starting ------------------------------------------------------------------------------
    def add(self, spec: ChildSpec) -> Slot:
        """The slot for ``spec.id`` (kept with its restart history if it already exists)."""
        slot = self.slots.get(spec.id)
        if slot is None:
            slot = Slot(spec, RestartTracker(self.policy, self.rng))
            self.slots[spec.id] = slot
        else:
            slot.spec = spec
        return slot

    def start(self, child_id: str) -> Slot:
        """Start a new generation of the child. ``spec.start``'s exceptions propagate."""
        slot = self.slots[child_id]
        self.cancel_timer(slot)
        if slot.ref is not None:  # never two live children for one id
            log.warning("%s: starting over a live child; stopping it first", child_id)
            self._await_stops([self._ask_stop(slot, None)])
        slot.generation = next(_generations)
        slot.closing = False
        slot.ref = None
        generation, owner = slot.generation, self._owner()

        def on_exit(exit_: Exit) -> None:
            try:
                owner.tell(ChildExited(child_id, generation, exit_))
            except pykka.ActorDeadError:
                pass  # the supervisor is gone (node stopping)

        slot.ref = slot.spec.start(on_exit)
        slot.tracker.started(time.monotonic())
        return slot

    # -- exits and restarts --------------------------------------------------------------------
    def exited(self, msg: ChildExited) -> Slot | None:
        """The slot whose current child this exit is, or None for a stale or expected exit."""
        slot = self.slots.get(msg.id)
        if slot is None or slot.generation != msg.generation or slot.closing or self.stopping:
            return None
        slot.ref = None
        return slot

    def restart_later(self, slot: Slot, delay: float) -> None:
        self.cancel_timer(slot)
        slot.timer = gevent.spawn_later(delay, self._tell, StartChild(slot.spec.id, slot.generation))

    def due(self, msg: StartChild) -> Slot | None:
        """The slot a restart timer fired for, if that restart is still wanted."""
        slot = self.slots.get(msg.id)
        if slot is None or slot.generation != msg.generation or slot.ref is not None or self.stopping:
            return None
        slot.timer = None
        return slot

    def _tell(self, message: Any) -> None:
        try:
            self._owner().tell(message)
        except pykka.ActorDeadError:
            pass

    @staticmethod
    def cancel_timer(slot: Slot) -> None:
        if slot.timer is not None:
            slot.timer.kill(block=False)
            slot.timer = None

    def remove(self, child_id: str) -> Slot | None:
        slot = self.slots.pop(child_id, None)
        if slot is not None:
            self.cancel_timer(slot)
        return slot

    # -- stopping ------------------------------------------------------------------------------
    def stop(self, child_id: str, message: Any = None) -> None:
        """Stop one child and wait (within its budget): its last words are persisted first."""
        slot = self.remove(child_id)
        if slot is not None:
            self._await_stops([self._ask_stop(slot, message)])

    def stop_all(self, *, sequential: bool = False, message: Any = None) -> None:
        """Stop every child, each within its own budget: concurrently (10,000 sessions), or one
        by one in reverse start order (the Root: top-down). Nothing is restarted afterwards."""
        self.stopping = True
        slots = list(self.slots.values())
        self.slots.clear()
        for slot in slots:
            self.cancel_timer(slot)
        if sequential:
            for slot in reversed(slots):
                self._await_stops([self._ask_stop(slot, message)])
        else:
            self._await_stops([self._ask_stop(slot, message) for slot in slots])

    def _ask_stop(self, slot: Slot, message: Any) -> _Stopping | None:
        ref, slot.ref = slot.ref, None
        slot.closing = True
        if ref is None:
            return None
        deadline = time.monotonic() + slot.spec.shutdown
        try:
            stop = message if message is not None else slot.spec.stop_message
            return _Stopping(ref, ref.ask(stop, block=False), deadline, slot.spec.shutdown)
        except pykka.ActorDeadError:
            return None

    @staticmethod
    def _await_stops(pending: Iterable[_Stopping | None]) -> None:
        for item in pending:
            if item is None:
                continue
            try:
                item.future.get(timeout=max(0.0, item.deadline - time.monotonic()))
            except (pykka.ActorDeadError, pykka.Timeout):
                log.warning("%s did not stop within %.1fs: stopping it hard", item.ref, item.budget)
                item.ref.stop(block=False)
            except Exception:
                log.exception("%s failed while stopping", item.ref)


@dataclass(frozen=True)
class _Stopping:
    ref: pykka.ActorRef[Any]
    future: Any
    deadline: float  # monotonic: when its budget runs out
    budget: float


__all__ = ["ChildSpec", "Children", "RestartType", "Slot", "StartFn"]
