"""The supervision tree as the HTTP layer sees it: a way to reach the current Fleet.

A restarted child is a new actor, so a child's ref is only used while it is alive: the Tree keeps
the ref the Root gave last and asks the Root again as soon as that actor has stopped. Asking the
Root on every call cost two trips through the hub's run queue (~100 ms each under load, measured;
the deliverer did it for every row it sent). While the Fleet is being restarted, calls fail with
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
from wafleet.actors.errors import Unavailable
from wafleet.actors.fleet import Fleet, FleetConfig
from wafleet.actors.messages import Ping, Shutdown
from wafleet.actors.outbox import Deliverer, DelivererConfig, Wake
from wafleet.actors.restart import RestartPolicy
from wafleet.actors.root import GetChild, Root
from wafleet.actors.session import SessionDeps
from wafleet.actors.supervisor import ChildSpec
from wafleet.storage.database import Database
from wafleet.storage.outbox import OutboxRow


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
        hosts: list[ChildSpec] | None = None,
        extra_children: list[ChildSpec] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.directory = directory
        self._refs: dict[str, pykka.ActorRef[Any]] = {}  # the Root's children, while alive

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

        # The Root starts its children in this order and stops them in reverse (as OTP does):
        # what the sessions run on (``hosts``: the link hosts) starts before the Fleet and stops
        # after it, so a session's last words (a stop, a logout) still reach its host; what uses
        # the sessions (``extra_children``: deliverers, health, assistant) stops before them.
        specs = [
            *(hosts or []),
            # The Fleet's budget covers its sessions' (they stop concurrently, each within
            # FleetConfig.session_shutdown) plus persisting their last words.
            ChildSpec("fleet", start_fleet, shutdown=fleet_config.session_shutdown + 2.0),
            ChildSpec("deliverer", start_deliverer, shutdown=2.0),
            *(extra_children or []),
        ]
        self.shutdown_budget = Root.budget(specs)
        self.root = Root.start(specs, root_policy, on_give_up, rng)

    def _lookup(self, name: str) -> pykka.ActorRef[Any] | None:
        """The live ref of one of the Root's children: the one kept while its actor runs, else
        the Root's current one. Raises ActorDeadError / Timeout when the Root does not answer."""
        ref = self._refs.get(name)
        if ref is not None and ref.is_alive():
            return ref
        ref = self.root.ask(GetChild(name), timeout=5)
        if ref is not None and ref.is_alive():
            self._refs[name] = ref
        else:
            self._refs.pop(name, None)
        return ref

    def fleet(self) -> pykka.ActorRef[Any]:
        try:
            ref = self._lookup("fleet")
        except (pykka.ActorDeadError, pykka.Timeout) as exc:
            raise Unavailable("the supervision tree is not running") from exc
        if ref is None or not ref.is_alive():
            raise Unavailable("the fleet is restarting")
        return ref

    def child(self, name: str) -> pykka.ActorRef[Any] | None:
        """The current ref of one of the Root's children (None while it is being restarted)."""
        try:
            return self._lookup(name)
        except (pykka.ActorDeadError, pykka.Timeout):
            return None

    def wake_deliverer(self, company_id: str | None = None) -> None:
        """New outbox rows are committed; if the deliverer is restarting it finds them itself."""
        self.tell_child("deliverer", Wake(company_id))

    def tell_child(self, name: str, message: Any) -> None:
        """Best effort: a child being restarted picks up pending work when it starts."""
        try:
            ref = self._lookup(name)
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

    def shutdown(self, timeout: float | None = None) -> None:
        """Stop the tree top-down within the children's budgets (``timeout`` overrides)."""
        try:
            self.root.ask(Shutdown(), timeout=timeout or self.shutdown_budget + 1.0)
        except (pykka.ActorDeadError, pykka.Timeout):
            pass
