"""The node side of the link hosts: the worker processes that run WhatsApp Web (neonize).

* :class:`LinkHost` — one actor per worker process (``wafleet.actors.linkhost_worker``, whose
  docstring is the protocol). It writes commands to the worker's stdin and reads its events with
  gevent's cooperative subprocess pipes, in a greenlet: events are in the hub from the start,
  no foreign thread and no cross-thread ``tell``. An event is handed to the callback its
  session's link registered with ``Open`` (into the session's inbox: this actor never touches
  a link). If the worker dies, every session on it gets ``closed{reason: transient}`` and the
  actor exits ``crash`` so its supervisor restarts it.
* :class:`LinkHostPool` — the supervisor of the hosts (the mechanism of
  :mod:`wafleet.actors.supervisor`): places sessions on hosts up to ``sessions_per_host``
  (opening a new host when all are full), restarts a dead host with the full-jitter backoff of
  its restart policy; stopping it (``ref.stop()`` or ``Shutdown``) stops every worker: no
  process or greenlet is left behind.

Wiring::

    pool = LinkHostPool.start(sessions_per_host=50, on_exit=..., policy=RestartPolicy(...))
    link = WebLink(company_id, emit, pool, store_dir)          # wafleet.actors.links.web
"""

from __future__ import annotations

import json
import logging
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gevent
import gevent.subprocess
import pykka

from wafleet.actors.gevent_actor import Exit, SupervisedActor
from wafleet.actors.messages import ChildExited, Shutdown, StartChild
from wafleet.actors.restart import RestartPolicy
from wafleet.actors.status import ExitReason
from wafleet.actors.supervisor import Children, ChildSpec

log = logging.getLogger(__name__)

WORKER_COMMAND = [sys.executable, "-m", "wafleet.actors.linkhost_worker"]


# -- messages ---------------------------------------------------------------------------------
Deliver = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class Open:
    """Register ``deliver`` (the session's callback for this host's events about it) and send
    the session's ``start`` command."""

    session: str
    deliver: Deliver
    command: dict[str, Any]


@dataclass(frozen=True)
class Command:
    """Send one command line; ``release`` drops the session's registration afterwards."""

    command: dict[str, Any]
    release: bool = False


@dataclass(frozen=True)
class _Line:
    event: dict[str, Any]


@dataclass(frozen=True)
class _WorkerExited:
    returncode: int | None


@dataclass(frozen=True)
class Place:
    """To the pool: which host serves ``session``; answers the host's ActorRef."""

    session: str


@dataclass(frozen=True)
class Release:
    session: str


@dataclass(frozen=True)
class HostPids:
    """To the pool: the pid of every running worker process, by slot."""


class HostUnavailable(Exception):
    """The host for this session is restarting: the session should back off."""


# -- one worker process -----------------------------------------------------------------------
class LinkHost(SupervisedActor):
    """One worker process and the sessions on it.

    ``LinkHost(name, on_exit=None, command=None, env=None, stop_timeout=15.0,
    on_event=None)``: ``command`` is the worker's argv (default: this interpreter running
    ``wafleet.actors.linkhost_worker``), ``env`` its environment (default: ours),
    ``stop_timeout`` how long a stop waits for the worker to exit before SIGKILL, ``on_event``
    an observer of every event line (tests, metrics).
    """

    def __init__(
        self,
        name: str,
        on_exit: Callable[[Exit], None] | None = None,
        command: list[str] | None = None,
        env: dict[str, str] | None = None,
        stop_timeout: float = 15.0,
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        super().__init__(on_exit)
        self.name = name
        self.command = list(command or WORKER_COMMAND)
        self.env = env
        self.stop_timeout = stop_timeout
        self.on_event = on_event
        self.sessions: dict[str, Deliver] = {}
        self.proc: gevent.subprocess.Popen | None = None
        self.reader: gevent.Greenlet | None = None
        self.pid: int | None = None
        self.stopping = False

    def on_start(self) -> None:
        self.proc = gevent.subprocess.Popen(
            self.command,
            stdin=gevent.subprocess.PIPE,
            stdout=gevent.subprocess.PIPE,
            env=self.env,
            close_fds=True,
        )
        self.pid = self.proc.pid
        self.reader = gevent.spawn(self._read, self.proc, self.actor_ref)
        log.info("link host %s started (pid %s)", self.name, self.pid)

    @staticmethod
    def _read(proc: gevent.subprocess.Popen, me: pykka.ActorRef[Any]) -> None:
        assert proc.stdout is not None
        try:
            for raw in proc.stdout:
                try:
                    event = json.loads(raw)
                except ValueError:
                    log.warning("link host %s: not a protocol line: %r", proc.pid, raw[:200])
                    continue
                if isinstance(event, dict):
                    me.tell(_Line(event))
        except Exception:  # a closed pipe during stop
            log.debug("link host %s: reader ended", proc.pid, exc_info=True)
        returncode = proc.wait()
        try:
            me.tell(_WorkerExited(returncode))
        except pykka.ActorDeadError:
            pass

    def on_receive(self, message: Any) -> Any:
        match message:
            case Open(session=session, deliver=deliver, command=command):
                self.sessions[session] = deliver
                self._send(command)
            case Command(command=command, release=release):
                self._send(command)
                if release:
                    self.sessions.pop(str(command.get("session")), None)
            case _Line(event=event):
                self._route(event)
            case _WorkerExited(returncode=returncode):
                self._worker_exited(returncode)
            case HostPids():
                return self.pid
            case Shutdown():
                self.exit("normal", "shutdown")
        return None

    def _send(self, command: dict[str, Any]) -> None:
        """Write a command; if the worker is gone, the session hears it at once (its pipe
        closing will end this actor too)."""
        try:
            self._write(command)
        except HostUnavailable as exc:
            deliver = self.sessions.get(str(command.get("session")))
            if deliver is None:
                return
            if command.get("cmd") == "send":
                deliver({"event": "error", "op": "send", "ref": command.get("ref"), "message": str(exc)})
            elif command.get("cmd") in ("start", "pair"):
                deliver(
                    {"event": "closed", "reason": ExitReason.TRANSIENT, "message": str(exc), "attempt": None}
                )

    def _write(self, command: dict[str, Any]) -> None:
        proc = self.proc
        if proc is None or proc.stdin is None or proc.poll() is not None:
            raise HostUnavailable(f"link host {self.name} is not running")
        try:
            proc.stdin.write((json.dumps(command, separators=(",", ":")) + "\n").encode())
            proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise HostUnavailable(f"link host {self.name}: {exc}") from exc

    def _route(self, event: dict[str, Any]) -> None:
        kind = str(event.get("event"))
        if self.on_event is not None:
            try:
                self.on_event(self.name, event)
            except Exception:
                log.exception("link host observer failed")
        session = event.get("session")
        deliver = self.sessions.get(str(session)) if session is not None else None
        if deliver is None:
            if kind == "error":
                log.warning("link host %s: %s", self.name, event.get("message"))
            return
        if kind == "stopped":
            return
        try:
            deliver(event)
        except Exception:
            log.exception("link host %s: delivering %s to %s failed", self.name, kind, session)

    def _worker_exited(self, returncode: int | None) -> None:
        if self.stopping:
            return
        message = f"link host {self.name} (pid {self.pid}) exited with code {returncode}"
        log.error("%s; %d sessions closed as transient", message, len(self.sessions))
        sessions, self.sessions = self.sessions, {}
        for deliver in sessions.values():
            try:
                deliver(
                    {"event": "closed", "reason": ExitReason.TRANSIENT, "message": message, "attempt": None}
                )
            except Exception:
                log.exception("link host %s: telling a session it closed failed", self.name)
        self.exit("crash", message, returncode=returncode)

    def on_stop(self) -> None:
        self._terminate()

    def on_failure(self, *exc_info: Any) -> None:
        self._terminate()

    def _terminate(self) -> None:
        """Close stdin (the worker stops every client and exits), wait, then SIGKILL."""
        self.stopping = True
        proc = self.proc
        if proc is None:
            return
        try:
            if proc.stdin is not None:
                proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(timeout=self.stop_timeout)
        except gevent.subprocess.TimeoutExpired:
            log.error("link host %s did not stop in %.0fs: killing it", self.name, self.stop_timeout)
            proc.kill()
            proc.wait()
        if self.reader is not None:
            self.reader.join(timeout=5)
            if not self.reader.dead:
                self.reader.kill(block=False)
        if proc.stdout is not None:
            try:
                proc.stdout.close()
            except OSError:
                pass


# -- the pool / supervisor ---------------------------------------------------------------------
def _host_id(index: int) -> str:
    return f"linkhost-{index}"


class LinkHostPool(SupervisedActor):
    """Places web sessions on link hosts and keeps the hosts running.

    ``LinkHostPool(sessions_per_host, on_exit=None, policy=None, command=None, env=None,
    stop_timeout=15.0, on_event=None, rng=None)``: ``policy`` is the hosts' restart policy
    (the node passes its configured one; default ``RestartPolicy()``: 5 s base, 5 min max, 10
    restarts in 10 min); when a host trips it, the pool exits ``crash`` (escalation to its own
    supervisor). ``on_event(kind, data)`` observes ``host_started`` {slot, pid},
    ``host_exited`` {slot, reason, delay} and, through the hosts, every worker event
    (``worker_event`` {slot, event}).

    Asks: ``Place(session)`` -> the host's ref (raises :class:`HostUnavailable` while the
    chosen host is restarting), ``Release(session)``, ``HostPids()`` -> {slot: pid}.
    """

    def __init__(
        self,
        sessions_per_host: int,
        on_exit: Callable[[Exit], None] | None = None,
        policy: RestartPolicy | None = None,
        command: list[str] | None = None,
        env: dict[str, str] | None = None,
        stop_timeout: float = 15.0,
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(on_exit)
        if sessions_per_host < 1:
            raise ValueError("sessions_per_host must be at least 1")
        self.sessions_per_host = sessions_per_host
        self.command = command
        self.env = env
        self.stop_timeout = stop_timeout
        self.on_event = on_event
        self.children = Children(lambda: self.actor_ref, policy or RestartPolicy(), rng)
        self.sessions: list[set[str]] = []  # by host index: the sessions placed there
        self.placement: dict[str, int] = {}

    def _notify(self, kind: str, data: dict[str, Any]) -> None:
        if self.on_event is not None:
            try:
                self.on_event(kind, data)
            except Exception:
                log.exception("link host pool observer failed")

    def on_receive(self, message: Any) -> Any:
        match message:
            case Place(session=session):
                return self._place(session)
            case Release(session=session):
                index = self.placement.pop(session, None)
                if index is not None:
                    self.sessions[index].discard(session)
                return None
            case HostPids():
                return {
                    i: ref.ask(HostPids())
                    for i in range(len(self.sessions))
                    if (ref := self.children.ref(_host_id(i))) is not None
                }
            case ChildExited():
                return self._host_exited(message)
            case StartChild():
                slot = self.children.due(message)
                if slot is not None:
                    self._start_host(int(slot.spec.id.rsplit("-", 1)[1]))
                return None
            case Shutdown():
                self.exit("normal", "shutdown")
                return None
        return None

    def _place(self, session: str) -> pykka.ActorRef[Any]:
        if self.children.stopping:
            raise HostUnavailable("the link hosts are stopping")
        index = self.placement.get(session)
        if index is None:
            candidates = [i for i, placed in enumerate(self.sessions) if len(placed) < self.sessions_per_host]
            # running hosts first, then the least loaded
            candidates.sort(key=lambda i: (self.children.ref(_host_id(i)) is None, len(self.sessions[i]), i))
            if candidates:
                index = candidates[0]
            else:
                index = len(self.sessions)
                self.sessions.append(set())
                self._start_host(index)
            self.sessions[index].add(session)
            self.placement[session] = index
        ref = self.children.ref(_host_id(index))
        if ref is None:
            raise HostUnavailable(f"link host {index} is restarting")
        return ref

    def _spec(self, index: int) -> ChildSpec:
        def on_event(_name: str, event: dict[str, Any]) -> None:
            self._notify("worker_event", {"slot": index, "event": event})

        def start(on_exit: Callable[[Exit], None]) -> pykka.ActorRef[Any]:
            return LinkHost.start(
                _host_id(index), on_exit, self.command, self.env, self.stop_timeout, on_event
            )

        # A host stops by closing its worker's stdin and waiting up to stop_timeout (then SIGKILL).
        return ChildSpec(_host_id(index), start, shutdown=self.stop_timeout + 1.0)

    @staticmethod
    def budget(stop_timeout: float) -> float:
        """The pool's own shutdown budget: its hosts stop together, each within its own."""
        return stop_timeout + 2.0

    def _start_host(self, index: int) -> None:
        self.children.add(self._spec(index))
        slot = self.children.start(_host_id(index))
        assert slot.ref is not None
        self._notify("host_started", {"slot": index, "pid": slot.ref.ask(HostPids())})

    def _host_exited(self, msg: ChildExited) -> None:
        slot = self.children.exited(msg)
        if slot is None:
            return
        index, exit_ = int(msg.id.rsplit("-", 1)[1]), msg.exit
        for session in self.sessions[index]:  # they were told "transient" and come back on Place
            self.placement.pop(session, None)
        self.sessions[index].clear()
        decision = slot.tracker.exited(time.monotonic())
        if decision.give_up:
            message = f"link host {index} failed {len(slot.tracker.times)} times ({exit_.message})"
            log.critical("link host pool gives up: %s", message)
            self._notify("host_exited", {"slot": index, "reason": exit_.reason, "delay": None})
            self.exit("crash", message)
            return
        log.error("link host %d exited (%s); restarting in %.2fs", index, exit_.message, decision.delay)
        self._notify("host_exited", {"slot": index, "reason": exit_.reason, "delay": decision.delay})
        self.children.restart_later(slot, decision.delay)

    def on_stop(self) -> None:
        self.children.stop_all()

    def on_failure(self, *exc_info: Any) -> None:
        self.children.stop_all()
