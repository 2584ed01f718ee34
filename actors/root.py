"""Root: one_for_one supervisor of the node's singletons (today the Fleet).

A child that dies is restarted with the same full-jitter backoff as sessions. When the Root's
own intensity trips it gives up: ``on_give_up`` makes the node exit non-zero after a jittered
delay, and supervisord starts a fresh process (never a hot crash loop: supervisord restarts a
RUNNING program at once, forever).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gevent
import pykka

from wafleet.actors.gevent_actor import Exit, SupervisedActor
from wafleet.actors.messages import ChildExited, Shutdown, StartChild
from wafleet.actors.restart import RestartPolicy, RestartTracker

log = logging.getLogger(__name__)

StartFn = Callable[[Callable[[Exit], None]], pykka.ActorRef[Any]]


@dataclass(frozen=True)
class ChildSpec:
    name: str
    start: StartFn  # builds the child, given the callback that reports its exit


@dataclass(frozen=True)
class GetChild:
    name: str


@dataclass
class _Slot:
    spec: ChildSpec
    tracker: RestartTracker
    generation: int = 0
    ref: pykka.ActorRef[Any] | None = None


class Root(SupervisedActor):
    def __init__(
        self,
        specs: list[ChildSpec],
        policy: RestartPolicy,
        on_give_up: Callable[[str], None],
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(None)
        rng = rng or random.Random()
        self.slots = {s.name: _Slot(s, RestartTracker(policy, rng)) for s in specs}
        self.order = [s.name for s in specs]
        self.on_give_up = on_give_up
        self.stopping = False

    def on_start(self) -> None:
        for name in self.order:
            self._start(name)

    def _start(self, name: str) -> None:
        slot = self.slots[name]
        slot.generation += 1
        generation = slot.generation
        me = self.actor_ref

        def on_exit(exit_: Exit) -> None:
            try:
                me.tell(ChildExited(name, generation, exit_))
            except pykka.ActorDeadError:
                pass

        slot.ref = slot.spec.start(on_exit)
        slot.tracker.started(time.monotonic())

    def on_receive(self, message: Any) -> Any:
        match message:
            case GetChild(name=name):
                slot = self.slots.get(name)
                return slot.ref if slot is not None else None
            case ChildExited(id=name, generation=generation, exit=exit_):
                return self._exited(name, generation, exit_)
            case StartChild(id=name, generation=generation):
                slot = self.slots[name]
                if slot.generation == generation and slot.ref is None and not self.stopping:
                    self._start(name)
                return None
            case Shutdown():
                return self._shutdown()
        return super().on_receive(message)

    def _exited(self, name: str, generation: int, exit_: Exit) -> None:
        slot = self.slots[name]
        if slot.generation != generation or self.stopping:
            return
        slot.ref = None
        decision = slot.tracker.exited(time.monotonic())
        if decision.give_up:
            reason = f"{name} failed {len(slot.tracker.times)} times ({exit_.reason}: {exit_.message})"
            log.critical("root gives up: %s", reason)
            self.stopping = True
            self.on_give_up(reason)
            return
        log.error(
            "%s exited (%s: %s); restarting in %.2fs", name, exit_.reason, exit_.message, decision.delay
        )
        gevent.spawn_later(decision.delay, self._tell_start, name, generation)

    def _tell_start(self, name: str, generation: int) -> None:
        try:
            self.actor_ref.tell(StartChild(name, generation))
        except pykka.ActorDeadError:
            pass

    def _shutdown(self) -> None:
        """Top-down: children in reverse start order, each finishing its own shutdown."""
        self.stopping = True
        for name in reversed(self.order):
            ref = self.slots[name].ref
            if ref is None:
                continue
            try:
                ref.ask(Shutdown(), timeout=20)
            except (pykka.ActorDeadError, pykka.Timeout):
                ref.stop(block=False)
        self.exit("normal", "shutdown")
