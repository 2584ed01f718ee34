"""The supervision tree as the HTTP layer sees it: a way to reach the current Fleet.

Nobody outside a supervisor keeps a child's ref (a restarted child is a new actor), so every
call looks the Fleet up at the Root first; while the Fleet is being restarted, calls fail with
:class:`Unavailable` (HTTP 503 with Retry-After).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import gevent
import gevent.event
import pykka

from wafleet.actors.directory import Directory
from wafleet.actors.fleet import Fleet, FleetConfig
from wafleet.actors.messages import Ping, Shutdown
from wafleet.actors.outbox import Deliverer, DelivererConfig, Wake
from wafleet.actors.restart import RestartPolicy
from wafleet.actors.root import ChildSpec, GetChild, Root
from wafleet.actors.session import SessionDeps
from wafleet.storage.database import Database
from wafleet.storage.outbox import OutboxRow


class Unavailable(Exception):
    pass


class Tree:
    def __init__(
        self,
        *,
        db: Database,
        directory: Directory,
        deps: SessionDeps,
        fleet_config: FleetConfig,
        root_policy: RestartPolicy,
        on_give_up: Callable[[str], None],
        on_sent: Callable[[OutboxRow, str], None] = lambda row, wa_id: None,
        deliverer_config: DelivererConfig | None = None,
        extra_children: list[ChildSpec] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.directory = directory

        def start_fleet(on_exit: Any) -> pykka.ActorRef[Any]:
            return Fleet.start(
                db=db, directory=directory, deps=deps, config=fleet_config, on_exit=on_exit, rng=rng
            )

        def start_deliverer(on_exit: Any) -> pykka.ActorRef[Any]:
            return Deliverer.start(
                db=db,
                metrics=deps.metrics,
                fleet=self.fleet,
                on_sent=on_sent,
                on_exit=on_exit,
                config=deliverer_config,
                rng=rng,
            )

        self.root = Root.start(
            [
                ChildSpec("fleet", start_fleet),
                ChildSpec("deliverer", start_deliverer),
                *(extra_children or []),
            ],
            root_policy,
            on_give_up,
            rng,
        )

    def fleet(self) -> pykka.ActorRef[Any]:
        try:
            ref = self.root.ask(GetChild("fleet"), timeout=5)
        except (pykka.ActorDeadError, pykka.Timeout) as exc:
            raise Unavailable("the supervision tree is not running") from exc
        if ref is None or not ref.is_alive():
            raise Unavailable("the fleet is restarting")
        return ref

    def child(self, name: str) -> pykka.ActorRef[Any] | None:
        """The current ref of one of the Root's children (looked up each time, never kept)."""
        try:
            return self.root.ask(GetChild(name), timeout=5)
        except (pykka.ActorDeadError, pykka.Timeout):
            return None

    def wake_deliverer(self, company_id: str | None = None) -> None:
        """New outbox rows are committed; if the deliverer is restarting it finds them itself."""
        self.tell_child("deliverer", Wake(company_id))

    def tell_child(self, name: str, message: Any) -> None:
        """Best effort: a child being restarted picks up pending work when it starts."""
        try:
            ref = self.root.ask(GetChild(name), timeout=5)
            if ref is not None:
                ref.tell(message)
        except (pykka.ActorDeadError, pykka.Timeout):
            pass

    def call(self, message: Any, timeout: float = 15.0) -> Any:
        """Ask the Fleet; a returned future (a session's answer) is resolved too."""
        try:
            result = self.fleet().ask(message, timeout=timeout)
            while isinstance(result, (pykka.Future, gevent.event.AsyncResult)):
                try:
                    result = result.get(timeout=timeout)
                except gevent.Timeout as exc:  # a BaseException: never let it escape
                    raise pykka.Timeout(f"{timeout} seconds") from exc
            return result
        except pykka.ActorDeadError as exc:
            raise Unavailable("the session or fleet restarted while answering; try again") from exc

    def running(self) -> bool:
        """The Fleet is up and has finished its boot (restored records, boot transitions)."""
        try:
            return bool(self.fleet().ask(Ping(), timeout=5))
        except (Unavailable, pykka.ActorDeadError, pykka.Timeout):
            return False

    def shutdown(self, timeout: float = 25.0) -> None:
        try:
            self.root.ask(Shutdown(), timeout=timeout)
        except (pykka.ActorDeadError, pykka.Timeout):
            pass
