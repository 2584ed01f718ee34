"""pykka actors on gevent greenlets, hardened for supervision.

pykka 4 dropped its gevent runtime; this is the ~50-line port on pykka's documented implementor
hooks, plus what supervision needs and pykka does not give:

* every exit is observable: the actor's greenlet is linked, and the exit carries a reason
  (``normal``, ``crash`` or whatever the actor passed to :meth:`SupervisedActor.exit`),
  including failures in ``on_start`` that pykka reports to nobody;
* a ``BaseException`` raised in a handler (``gevent.Timeout``, ``GreenletExit``) is turned into
  an ordinary failure of this actor instead of pykka's ``ActorRegistry.stop_all()``;
* actors are not put in pykka's registry: it is a list, quadratic to stop at fleet sizes, and a
  supervisor keeps its own dict of children anyway.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import gevent
import gevent.event
import gevent.queue
import pykka
from gevent import Greenlet, GreenletExit

log = logging.getLogger(__name__)


class GeventFuture(pykka.Future[Any]):
    """A pykka future on gevent's AsyncResult; a timeout raises ``pykka.Timeout``."""

    def __init__(self) -> None:
        super().__init__()
        self._result = gevent.event.AsyncResult()

    def get(self, *, timeout: float | None = None) -> Any:
        try:
            return super().get(timeout=timeout)
        except NotImplementedError:
            pass
        try:
            return self._result.get(timeout=timeout)
        except gevent.Timeout as exc:
            raise pykka.Timeout(f"{timeout} seconds") from exc

    def set(self, value: Any | None = None) -> None:
        self._result.set(value)

    def set_exception(self, exc_info: Any = None) -> None:
        if exc_info is None:
            exc_info = sys.exc_info()
        self._result.set_exception(exc_info[1], exc_info=exc_info)


class ActorInterrupted(Exception):
    """A BaseException (timeout, kill) escaped a handler; it fails this actor only."""


@dataclass(frozen=True)
class Exit:
    """Why an actor's life ended. ``reason`` drives the supervisor's decision."""

    reason: str  # an ExitReason (wafleet.actors.status)
    message: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def normal(self) -> bool:
        return self.reason == "normal"


class GeventActor(pykka.Actor):
    """A pykka actor whose loop is a greenlet and whose inbox is a gevent queue."""

    actor_greenlet: Greenlet

    @classmethod
    def start(cls, *args: Any, **kwargs: Any) -> pykka.ActorRef[Any]:  # type: ignore[override]
        obj = cls(*args, **kwargs)
        obj._start_actor_loop()
        return obj.actor_ref

    @staticmethod
    def _create_actor_inbox() -> Any:
        return gevent.queue.Queue()

    @staticmethod
    def _create_future() -> pykka.Future[Any]:
        return GeventFuture()

    def _start_actor_loop(self) -> None:
        self.actor_greenlet = gevent.spawn(self._actor_loop)


class SupervisedActor(GeventActor):
    """Base of every actor in the tree: reports exactly one :class:`Exit` when it ends."""

    def __init__(self, on_exit: Callable[[Exit], None] | None = None) -> None:
        super().__init__()
        self._on_exit = on_exit
        self._exit: Exit | None = None

    def _start_actor_loop(self) -> None:
        super()._start_actor_loop()
        self.actor_greenlet.link(self._report_exit)

    def cleanup(self) -> None:
        """Release timers and helper greenlets. Runs once the actor has ended, however it
        ended (a stop, a failure, an exception in ``on_start``); in the hub, so it must not
        block: kill greenlets with ``block=False``."""

    def _report_exit(self, greenlet: Greenlet) -> None:
        # Runs in the hub: must not block. Telling a supervisor only enqueues.
        try:
            self.cleanup()
        except Exception:
            log.exception("cleanup of %s failed", self)
        exit_ = self._exit
        if exit_ is None:
            if greenlet.exception is not None:
                exit_ = Exit("crash", _describe(greenlet.exception))
            else:
                exit_ = Exit("normal")
        if self._on_exit is not None:
            try:
                self._on_exit(exit_)
            except Exception:  # the supervisor may be gone during shutdown
                log.debug("exit of %s not delivered", self, exc_info=True)

    def exit(self, reason: str, message: str = "", **data: Any) -> None:
        """End this actor now (from inside a handler) with a reason its supervisor acts on."""
        if self._exit is None:
            self._exit = Exit(reason, message, data)
        self._stop()

    def _stop(self) -> None:
        if self._exit is None:
            self._exit = Exit("normal")
        super()._stop()

    def _handle_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._exit is None or self._exit.normal:
            self._exit = Exit("crash", _describe(exception_value))
        log.error(
            "%s failed: %s",
            self,
            _describe(exception_value),
            exc_info=(exception_type, exception_value, traceback),  # type: ignore[arg-type]
        )
        self.actor_stopped.set()

    def _handle_receive(self, message: Any) -> Any:
        try:
            return super()._handle_receive(message)
        except (gevent.Timeout, GreenletExit) as exc:
            raise ActorInterrupted(f"{type(exc).__name__} in handler: {exc}") from None


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
