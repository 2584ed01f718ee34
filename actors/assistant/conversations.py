"""Conversations: one temporary actor per active (company, customer) chat, under one supervisor.

A conversation batches a burst of messages into one turn (``WAFLEET_BATCH_WINDOW``), asks the
understanding (which may wait on a model: only this chat waits), lets the booking engine decide,
and queues the reply in the durable outbox in the same transaction that saves its state. Its
state (language, slots, pending question, offers, last turns) and any message not answered yet
are in the database, so a node killed mid-conversation goes on where it was.

The supervisor holds its children with the tree's one mechanism (``wafleet.actors.supervisor``):
TEMPORARY specs, keyed by (company, customer), never kept as refs elsewhere. One that crashes is
not restarted; the chat's next message starts a new one from the saved state. A child that has been
idle for ``WAFLEET_CONVERSATION_IDLE`` asks its supervisor to end it; the supervisor agrees only
if it forwarded nothing the child has not seen, so no message is ever dropped in between.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gevent
import peewee
import pykka

from wafleet.actors.assistant import replies
from wafleet.actors.assistant.config import LANGUAGES
from wafleet.actors.assistant.dialog import FLOW_INTENTS, Dialog, DialogState, TurnResult
from wafleet.actors.assistant.protocol import FOREVER_MS, Active, Inbound, Pause
from wafleet.actors.assistant.service import Assistant
from wafleet.actors.assistant.understanding import Intent, Slot, TurnContext, Understanding, understand
from wafleet.actors.assistant.when import warm_up
from wafleet.actors.figures import Op
from wafleet.actors.gevent_actor import Exit, SupervisedActor
from wafleet.actors.messages import ChildExited, Shutdown
from wafleet.actors.restart import RestartPolicy
from wafleet.actors.supervisor import Children, ChildSpec, RestartType
from wafleet.storage import assistant as store
from wafleet.storage import bookings, outbox
from wafleet.storage.clock import iso, now_ms

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (company, customer phone)
BATCH_CAP = 4  # a burst that never pauses is answered after this many windows anyway
CHILD_SHUTDOWN = 5.0  # seconds a conversation has to stop (it persists after every turn)


@dataclass(frozen=True)
class _Flush:
    generation: int


@dataclass(frozen=True)
class _IdleCheck:
    pass


@dataclass(frozen=True)
class _CompletePast:
    pass


@dataclass(frozen=True)
class _Idle:
    """A conversation has been quiet for the idle TTL and offers to end."""

    child_id: str
    urn: str  # which actor offers: a successor under the same id must not be ended by it
    seen: int  # how many messages it has received from the supervisor


def child_id(key: Key) -> str:
    """The supervisor's id for a chat (a phone never holds a ``/``)."""
    return f"{key[0]}/{key[1]}"


def chat_of(child: str) -> Key:
    company, _, peer = child.rpartition("/")
    return company, peer


class Conversations(SupervisedActor):
    def __init__(self, assistant: Assistant, on_exit: Callable[[Exit], None] | None = None) -> None:
        super().__init__(on_exit)
        self.assistant = assistant
        # Temporary children: one that crashes is not restarted; the next message for its chat
        # starts a new one from the persisted state (and answers what the crash left unanswered).
        self.children = Children(lambda: self.actor_ref, RestartPolicy())
        self.sent: dict[str, int] = {}  # messages forwarded to each chat's current child
        self._sweeper: gevent.Greenlet = gevent.Greenlet()  # replaced in on_start

    def on_start(self) -> None:
        # The date parser loads each language's data on first use (~200 ms, blocking the hub):
        # pay it at start, not in a customer's first turn.
        warm_up(LANGUAGES)
        # Messages accepted before a crash or a kill -9 and not answered yet: answer them now.
        for key in store.chats_waiting(self.assistant.db, now_ms() - self.assistant.settings.idle_ms):
            self._child(key)
        self._complete_past()
        self._sweeper = gevent.spawn(self._sweep_loop)

    def _sweep_loop(self) -> None:
        every = self.assistant.settings.complete_every_ms / 1000
        while True:
            gevent.sleep(every)
            try:
                self.actor_ref.tell(_CompletePast())
            except pykka.ActorDeadError:
                return

    def _complete_past(self) -> None:
        """Bookings whose time is over are ``completed`` (the status the API lists)."""
        try:
            done = bookings.complete_past(self.assistant.db, now_ms())
        except (peewee.OperationalError, peewee.InterfaceError) as exc:
            log.warning("could not mark ended bookings completed (next try in a while): %s", exc)
            return
        if done:
            self.assistant.journal.metrics.incr("assistant.booking.completed", done)

    def cleanup(self) -> None:
        # However this supervisor ended: no sweeper left behind, no conversation orphaned.
        self._sweeper.kill(block=False)
        for slot in self.children.slots.values():
            if slot.ref is not None:
                try:
                    slot.ref.stop(block=False)
                except pykka.ActorDeadError:
                    pass

    def _spec(self, key: Key) -> ChildSpec:
        def start(on_exit: Callable[[Exit], None]) -> pykka.ActorRef[Any]:
            return Conversation.start(self.assistant, key, self.actor_ref, on_exit)

        return ChildSpec(child_id(key), start, RestartType.TEMPORARY, shutdown=CHILD_SHUTDOWN)

    def _child(self, key: Key) -> pykka.ActorRef[Any]:
        """The chat's live conversation, started (from its persisted state) if it has none."""
        child = child_id(key)
        ref = self.children.ref(child)
        if ref is not None and ref.is_alive():
            return ref
        self.children.add(self._spec(key))
        self.sent[child] = 0
        ref = self.children.start(child).ref
        assert ref is not None
        return ref

    def _ended(self, child: str) -> None:
        self.children.remove(child)
        self.sent.pop(child, None)

    def on_receive(self, message: Any) -> Any:
        match message:
            case Inbound(company_id=company_id, peer=peer):
                cfg = self.assistant.config(company_id)
                if cfg is None or not cfg.enabled:
                    return None
                ref = self._child((company_id, peer))
                self.sent[child_id((company_id, peer))] += 1
                ref.tell(message)
                return None
            case Pause(company_id=company_id, peer=peer, handoff=handoff):
                if handoff:
                    cfg = self.assistant.config(company_id)
                    if cfg is None or not cfg.enabled:
                        return None
                return self._child((company_id, peer)).ask(message, block=False)
            case _CompletePast():
                self._complete_past()
                return None
            case Active(company_id=company_id):
                chats = (
                    chat_of(child) for child, slot in self.children.slots.items() if slot.ref is not None
                )
                return sorted(peer for company, peer in chats if company == company_id)
            case _Idle(child_id=child, urn=urn, seen=seen):
                ref = self.children.ref(child)
                if ref is not None and ref.actor_urn == urn and self.sent.get(child) == seen:
                    self.sent.pop(child, None)
                    self.children.stop(child)  # it persisted everything already: quick
                return None
            case ChildExited(id=child, exit=exit_):
                if self.children.exited(message) is not None:  # TEMPORARY: never restarted
                    if not exit_.normal:
                        key = chat_of(child)
                        log.error("conversation %s/%s ended: %s %s", *key, exit_.reason, exit_.message)
                    self._ended(child)
                return None
            case Shutdown():
                self.children.stop_all()  # concurrently, each within its budget
                self.sent.clear()
                self.exit("normal", "shutdown")
                return None
        return super().on_receive(message)


class Conversation(SupervisedActor):
    def __init__(
        self,
        assistant: Assistant,
        key: Key,
        supervisor: pykka.ActorRef[Any],
        on_exit: Callable[[Exit], None],
    ) -> None:
        super().__init__(on_exit)
        self.assistant = assistant
        self.company_id, self.peer = key
        self.supervisor = supervisor
        self.seen = 0
        self.flush_generation = 0
        self.first_buffered = 0.0
        self.buffer: list[tuple[int, str, str | None]] = []  # (message id, text, name) to answer
        self.last_activity = time.monotonic()
        self._flush_timer: gevent.Greenlet | None = None
        self._idle_timer: gevent.Greenlet | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    def on_start(self) -> None:
        row = store.load_conversation(self.assistant.db, self.company_id, self.peer)
        now = now_ms()
        self.row = row or store.ConversationRow(self.company_id, self.peer, {}, 0, None, now, now)
        self.state = DialogState.from_json(self.row.state)
        # What arrived and was not answered (a crash, a kill -9, an idle end racing a message).
        since = now - self.assistant.settings.idle_ms
        waiting = store.unanswered(
            self.assistant.db, self.company_id, self.peer, self.row.answered_through, since
        )
        if waiting:
            self.buffer = [(message_id, text, None) for message_id, text in waiting]
            self.first_buffered = time.monotonic()
            self._schedule_flush(self.assistant.settings.batch_window_ms / 1000)
        self._schedule_idle()

    def cleanup(self) -> None:
        self._cancel_timers()  # however it ended (a stop, a crash, a failed on_start)

    def _cancel_timers(self) -> None:
        for timer in (self._flush_timer, self._idle_timer):
            if timer is not None:
                timer.kill(block=False)

    def _tell_self(self, message: Any) -> None:
        try:
            self.actor_ref.tell(message)
        except pykka.ActorDeadError:
            pass

    def _schedule_flush(self, delay: float) -> None:
        self.flush_generation += 1
        if self._flush_timer is not None:
            self._flush_timer.kill(block=False)
        self._flush_timer = gevent.spawn_later(delay, self._tell_self, _Flush(self.flush_generation))

    def _schedule_idle(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.kill(block=False)
        self._idle_timer = gevent.spawn_later(
            self.assistant.settings.idle_ms / 1000, self._tell_self, _IdleCheck()
        )

    # -- messages -------------------------------------------------------------------------------
    def on_receive(self, message: Any) -> Any:
        match message:
            case Inbound():
                return self._inbound(message)
            case _Flush(generation=generation):
                if generation == self.flush_generation and self.buffer:
                    self._turn()
                return None
            case Pause(until_ms=until):
                self.row.paused_until = until
                self._save()
                return self.pause_json()
            case _IdleCheck():
                idle_for = time.monotonic() - self.last_activity
                if self.buffer or idle_for * 1000 < self.assistant.settings.idle_ms:
                    self._schedule_idle()
                else:
                    me = child_id((self.company_id, self.peer))
                    self.supervisor.tell(_Idle(me, self.actor_urn, self.seen))
                return None
            case Shutdown():
                self._cancel_timers()
                self.exit("normal", "shutdown")
                return None
        return super().on_receive(message)

    def pause_json(self) -> dict[str, Any]:
        until = self.row.paused_until
        paused = until is not None and until > now_ms()
        return {
            "phone": self.peer,
            "paused": paused,
            "pausedUntil": iso(until) if paused and until != FOREVER_MS else None,
        }

    def _inbound(self, message: Inbound) -> None:
        self.seen += 1
        self.last_activity = time.monotonic()
        if message.message_id <= self.row.answered_through or any(
            m[0] == message.message_id for m in self.buffer
        ):
            return  # found in the messages table at start already
        if not self.buffer:
            self.first_buffered = time.monotonic()
        # Nothing to write: the message is in the messages table, after answered_through.
        self.buffer.append((message.message_id, message.text, message.name))
        window = self.assistant.settings.batch_window_ms / 1000
        waited = time.monotonic() - self.first_buffered
        self._schedule_flush(max(0.0, min(window, window * BATCH_CAP - waited)))

    def _save(self) -> None:
        self.row.state = self.state.json()
        store.save_conversation(self.assistant.db, self.row)

    # -- a turn ---------------------------------------------------------------------------------
    def _turn(self) -> None:
        started = time.perf_counter()
        assistant = self.assistant
        buffered, self.buffer = self.buffer, []
        text = "\n".join(item[1] for item in buffered)
        name = next((item[2] for item in reversed(buffered) if item[2]), None)
        self.row.answered_through = max(self.row.answered_through, max(item[0] for item in buffered))
        cfg = assistant.config(self.company_id)
        self.last_activity = time.monotonic()
        if cfg is None or not cfg.enabled or (self.row.paused_until or 0) > now_ms():
            # Off, or a human has the chat: remember what was said, answer nothing.
            self.state.remember("customer", text)
            self._record(
                started,
                text,
                len(buffered),
                None,
                intent="other",
                language=self.state.language or "",
                source="none",
                outcome="handoff" if cfg is not None and cfg.enabled else "off",
            )
            return
        state = self.state
        ctx = TurnContext(
            now=assistant.engine.now(cfg),
            timezone=cfg.timezone,
            languages=cfg.languages,
            business_name=cfg.business_name,
            services=cfg.service_infos(),
            resources=cfg.resource_infos(),
            hours_text=cfg.hours_text(),
            faq=cfg.faq,
            recent=state.turns(),
            pending=Slot(state.pending) if state.pending else None,
            language=state.language,
            offered=state.offered_times(),
            intent=FLOW_INTENTS.get(state.flow or ""),
            ai_model=cfg.ai_model,
        )
        try:
            understanding = understand(text, ctx, assistant.model_for(cfg))
            result = Dialog(cfg, assistant.engine, self.peer, name).turn(state, understanding, text)
        except (peewee.OperationalError, peewee.InterfaceError):
            raise  # the database is away: this actor ends, the message is answered after
        except Exception:  # a bug must not turn one customer's message into a crash loop
            log.exception("company %s: a turn failed; the customer gets the help text", self.company_id)
            state.reset()
            lang = state.language or cfg.languages[0]
            understanding = Understanding(Intent.OTHER, lang)
            help_text = replies.say(
                lang, "help", example=cfg.services[0].name, services=", ".join(s.name for s in cfg.services)
            )
            result = TurnResult(help_text, "error")
        state.remember("customer", text)
        state.remember("assistant", result.reply)
        usage = understanding.usage
        model_called = usage is not None or understanding.source == "model" or understanding.fallback_reason
        self._record(
            started,
            text,
            len(buffered),
            result.reply,
            intent=understanding.intent.value,
            language=state.language or understanding.language,
            source=understanding.source,
            model=(usage.model if usage else (cfg.ai_model or "default")) if model_called else None,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            cost=usage.cost if usage else 0.0,
            ai_latency_ms=usage.latency_ms if usage else None,
            fallback_reason=(understanding.fallback_reason or None) and understanding.fallback_reason[:100],
            outcome=result.outcome,
        )
        assistant.wake_deliverer(self.company_id)
        assistant.journal.metrics.incr("assistant.turns")
        assistant.journal.metrics.timing("assistant.turn_ms", (time.perf_counter() - started) * 1000)
        if model_called and usage is not None:  # the model call's own time: /metrics/performance
            assistant.journal.metrics.observe(Op.AI_CALL, usage.latency_ms)

    def _record(self, started: float, text: str, messages: int, reply: str | None, **turn: Any) -> None:
        """One transaction: the reply (if any) queued in the outbox, the state saved, the turn
        logged. A crash before it leaves the messages unanswered (answered again at start)."""
        db = self.assistant.db
        with db.work(), db.atomic():
            if reply is not None:
                outbox.enqueue(db, self.company_id, self.peer, reply)
            self._save()
            store.add_turn(
                db,
                company=self.company_id,
                peer=self.peer,
                at=now_ms(),
                text=text,
                messages=messages,
                reply=reply,
                response_ms=(time.perf_counter() - started) * 1000,
                **turn,
            )
