"""Root: one_for_one supervisor of the node's singletons (Fleet, deliverer, inbox, link hosts).

A child that dies is restarted with the same full-jitter backoff as sessions. When one child
fails more often than the Root's policy allows, the Root gives up: ``on_give_up`` makes the node
exit non-zero after a jittered delay, and supervisord starts a fresh process (never a hot crash
loop: supervisord restarts a RUNNING program at once, forever).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from wafleet.actors.gevent_actor import SupervisedActor
from wafleet.actors.messages import ChildExited, Shutdown, StartChild
from wafleet.actors.restart import RestartPolicy
from wafleet.actors.supervisor import Children, ChildSpec, RestartType

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GetChild:
    name: str


class Root(SupervisedActor):
    def __init__(
        self,
        specs: list[ChildSpec],
        policy: RestartPolicy,
        on_give_up: Callable[[str], None],
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(None)
        self.children = Children(lambda: self.actor_ref, policy, rng)
        for spec in specs:
            self.children.add(spec)
        self.on_give_up = on_give_up

    @staticmethod
    def budget(specs: list[ChildSpec]) -> float:
        """The Root stops its children one by one: its budget is the sum of theirs."""
        return sum(s.shutdown for s in specs)

    def on_start(self) -> None:
        for child_id in list(self.children.slots):
            self.children.start(child_id)

    def on_receive(self, message: Any) -> Any:
        match message:
            case GetChild(name=name):
                return self.children.ref(name)
            case ChildExited():
                return self._exited(message)
            case StartChild():
                slot = self.children.due(message)
                if slot is not None:
                    self.children.start(slot.spec.id)
                return None
            case Shutdown():
                self.children.stop_all(sequential=True)  # top-down, reverse start order
                self.exit("normal", "shutdown")
                return None
        return super().on_receive(message)

    def _exited(self, msg: ChildExited) -> None:
        slot = self.children.exited(msg)
        if slot is None:
            return
        name, exit_ = slot.spec.id, msg.exit
        if slot.spec.restart is RestartType.TEMPORARY or (
            slot.spec.restart is RestartType.TRANSIENT and exit_.normal
        ):
            self.children.remove(name)
            return
        decision = slot.tracker.exited(time.monotonic())
        if decision.give_up:
            reason = f"{name} failed {len(slot.tracker.times)} times ({exit_.reason}: {exit_.message})"
            log.critical("root gives up: %s", reason)
            self.children.stopping = True
            self.on_give_up(reason)
            return
        log.error(
            "%s exited (%s: %s); restarting in %.2fs", name, exit_.reason, exit_.message, decision.delay
        )
        self.children.restart_later(slot, decision.delay)
