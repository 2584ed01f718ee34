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

10,000 sessions must not disturb anyone else: probes go to the Fleet in chunks of CHUNK (one
Fleet message each), the chunks spread evenly over most of the interval and at most
``concurrency`` of them in flight, so the Fleet and the sessions see a trickle of small
messages, never a burst.
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
from wafleet.actors.messages import ProbeMany, Revive, Shutdown
from wafleet.actors.metrics import Metrics
from wafleet.actors.status import Status
from wafleet.storage.clock import now_ms

log = logging.getLogger(__name__)

SPREAD = 0.8  # the share of the interval over which one round's probes are started
CHUNK = 25  # sessions probed per message to the Fleet


@dataclass(frozen=True)
class HealthConfig:
    interval: float = 30.0  # seconds between rounds (WHATSAPP_HEALTH_CHECK_INTERVAL)
    connection_timeout: float = 60.0  # seconds a start may take (WHATSAPP_CONNECTION_TIMEOUT)
    probe_timeout: float = 10.0  # seconds a link has to answer a probe
    concurrency: int = 50  # chunks of probes in flight at once


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
        chunks = [to_probe[i : i + CHUNK] for i in range(0, len(to_probe), CHUNK)]
        spacing = self.config.interval * SPREAD / len(chunks)
        start = time.monotonic()
        for index, chunk in enumerate(chunks):
            wait = start + index * spacing - time.monotonic()
            if wait > 0.002:
                gevent.sleep(wait)
            self._pool.spawn(self._probe, chunk)  # waits while the pool is full
        self._pool.join()

    def _probe(self, chunk: list[tuple[str, int]]) -> None:
        deadline = time.monotonic() + self.config.probe_timeout
        started = time.perf_counter()
        try:
            answers: dict[str, Any] = self.fleet().ask(
                ProbeMany(tuple(company_id for company_id, _ in chunk)), timeout=self.config.probe_timeout
            )
        except (pykka.ActorDeadError, Unavailable, pykka.Timeout, gevent.Timeout):
            return  # the Fleet is being restarted or is busy: nothing to judge about the links
        probed = 0
        for company_id, since in chunk:
            answer, silent = answers.get(company_id), False
            try:
                while isinstance(answer, (pykka.Future, gevent.event.AsyncResult)):
                    answer = answer.get(timeout=max(0.0, deadline - time.monotonic()))
            except (pykka.Timeout, gevent.Timeout):
                answer, silent = False, True
            except pykka.ActorDeadError:
                continue  # the session is being restarted: nothing to judge
            probed += 1
            self.metrics.figures.probed()
            if answer is None or answer is True:
                continue  # no longer connected, or it answered
            record = self.directory.get(company_id)
            if record is None or record.since != since:
                continue  # its state changed while we asked: this answer is about an old link
            message = (
                f"the link did not answer a probe within {self.config.probe_timeout:g}s"
                if silent
                else "the link says it is not connected"
            )
            self._revive(record, "link_silent", message)
        self.metrics.incr("health.probes", probed)
        self.metrics.timing("health.probe", (time.perf_counter() - started) * 1000 / max(1, len(chunk)))

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
