"""HealthMonitor: finds sessions that say they are fine but are not, and has them reconnected.

Every ``interval`` it reads the directory (no actor round trip) and:

* probes each ``connected`` session (connected for at least an interval: a boot that restores
  thousands is not slowed by probing links that have just answered) through its link (the Fleet forwards a ``Probe`` to the
  session, which asks ``link.ping()``): a link that does not answer within ``probe_timeout`` --
  or answers that it is not connected -- is a **zombie** (``link_silent``);
* flags sessions **stuck** in ``starting`` longer than ``connection_timeout``, or in
  ``reconnecting`` longer than that past the restart they were promised (``retryIn``).

It only reports (``Revive`` to the Fleet); the Fleet records the ``zombie`` event and ends the
session with reason ``zombie``, and the exit policy restarts it like any dropped connection.

10,000 sessions must not disturb anyone else: probes are spread evenly over most of the
interval and at most ``concurrency`` are in flight, so the Fleet and the sessions see a trickle
of small messages, never a burst.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gevent
import gevent.event
import gevent.pool
import pykka

from wafleet.actors.directory import Directory, SessionRecord
from wafleet.actors.errors import Unavailable
from wafleet.actors.gevent_actor import Exit, SupervisedActor
from wafleet.actors.messages import Probe, Revive, Shutdown
from wafleet.actors.metrics import Metrics
from wafleet.actors.status import Status
from wafleet.storage.clock import now_ms

log = logging.getLogger(__name__)

SPREAD = 0.8  # the share of the interval over which one round's probes are started


@dataclass(frozen=True)
class HealthConfig:
    interval: float = 30.0  # seconds between rounds (WHATSAPP_HEALTH_CHECK_INTERVAL)
    connection_timeout: float = 60.0  # seconds a start may take (WHATSAPP_CONNECTION_TIMEOUT)
    probe_timeout: float = 10.0  # seconds a link has to answer a probe
    concurrency: int = 50  # probes in flight at once


@dataclass(frozen=True)
class _Failed:
    error: BaseException


class HealthMonitor(SupervisedActor):
    def __init__(
        self,
        *,
        directory: Directory,
        fleet: Callable[[], pykka.ActorRef[Any]],
        metrics: Metrics,
        config: HealthConfig,
        on_exit: Callable[[Exit], None] | None = None,
    ) -> None:
        super().__init__(on_exit)
        self.directory = directory
        self.fleet = fleet
        self.metrics = metrics
        self.config = config
        self._loop: gevent.Greenlet | None = None
        self._pool = gevent.pool.Pool(max(1, config.concurrency))

    def on_start(self) -> None:
        self._loop = gevent.spawn(self._run)

    def cleanup(self) -> None:
        if self._loop is not None and self._loop is not gevent.getcurrent():
            self._loop.kill(block=False)
        self._pool.kill(block=False)

    def on_receive(self, message: Any) -> Any:
        match message:
            case _Failed(error=error):
                raise error
            case Shutdown():
                self.cleanup()
                self.exit("normal", "shutdown")
                return None
        return super().on_receive(message)

    # -- the rounds ----------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while True:
                started = time.monotonic()
                self.round()
                gevent.sleep(max(0.0, self.config.interval - (time.monotonic() - started)))
        except Exception as exc:  # a bug: fail the actor, the Root restarts it
            try:
                self.actor_ref.tell(_Failed(exc))
            except pykka.ActorDeadError:
                pass

    def round(self) -> None:
        """One pass over the fleet: stuck sessions now, probes spread over the interval."""
        now = now_ms()
        timeout_ms = self.config.connection_timeout * 1000
        interval_ms = self.config.interval * 1000
        to_probe: list[tuple[str, int]] = []
        for record in list(self.directory.records.values()):
            if record.status == Status.CONNECTED:
                if now - record.since >= interval_ms:  # a link that just connected has answered
                    to_probe.append((record.company_id, record.since))
            elif record.status == Status.STARTING and now - record.since > timeout_ms:
                self._revive(
                    record,
                    "stuck_starting",
                    f"starting for {(now - record.since) / 1000:.0f}s, longer than the connection timeout",
                )
            elif record.status == Status.RECONNECTING and record.desired == "running":
                due = record.since + _retry_in_ms(record)
                if now - due > timeout_ms:
                    self._revive(
                        record,
                        "stuck_reconnecting",
                        f"its restart was due {(now - due) / 1000:.0f}s ago and has not happened",
                    )
        self.metrics.gauge("health.probed", len(to_probe))
        if not to_probe:
            return
        spacing = self.config.interval * SPREAD / len(to_probe)
        start = time.monotonic()
        for index, (company_id, since) in enumerate(to_probe):
            wait = start + index * spacing - time.monotonic()
            if wait > 0.002:
                gevent.sleep(wait)
            self._pool.spawn(self._probe, company_id, since)  # waits while the pool is full
        self._pool.join()

    def _probe(self, company_id: str, since: int) -> None:
        deadline = time.monotonic() + self.config.probe_timeout
        started = time.perf_counter()
        silent = False
        try:
            answer: Any = self.fleet().ask(Probe(company_id), block=False)
            while isinstance(answer, (pykka.Future, gevent.event.AsyncResult)):
                answer = answer.get(timeout=max(0.0, deadline - time.monotonic()))
        except (pykka.Timeout, gevent.Timeout):
            answer, silent = False, True
        except (pykka.ActorDeadError, Unavailable):
            return  # the session or the Fleet is being restarted: nothing to judge
        self.metrics.incr("health.probes")
        self.metrics.figures.probed()
        if answer is None:
            return  # no longer connected
        self.metrics.timing("health.probe", (time.perf_counter() - started) * 1000)
        if answer is True:
            return
        record = self.directory.get(company_id)
        if record is None or record.since != since:
            return  # its state changed while we asked: this answer is about an old link
        message = (
            f"the link did not answer a probe within {self.config.probe_timeout:g}s"
            if silent
            else "the link says it is not connected"
        )
        self._revive(record, "link_silent", message)

    def _revive(self, record: SessionRecord, why: str, message: str) -> None:
        try:
            self.fleet().tell(Revive(record.company_id, why, message, record.since))
        except (pykka.ActorDeadError, Unavailable):
            pass  # the Fleet restarts: it re-reads every session anyway


def _retry_in_ms(record: SessionRecord) -> float:
    """The restart delay the session was promised when it entered ``reconnecting``."""
    if record.history:
        last = record.history[-1]
        if last.get("status") == Status.RECONNECTING and last.get("retryIn") is not None:
            return float(last["retryIn"]) * 1000
    return 0.0


__all__ = ["HealthConfig", "HealthMonitor"]
