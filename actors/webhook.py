"""Meta Cloud API webhooks: walking the envelope, and the actor that drains the inbox.

The HTTP route only verifies the signature and commits the raw body to the inbox; everything
here runs after Meta has its 200. Parsing (:func:`parse`) is pure: it walks EVERY entry, change,
message, status and error (Meta batches at every level) and never trusts a shape. Applying is
idempotent: a message is stored once (unique WhatsApp id), a status only moves forward, so a
redelivery or a replay after a crash changes nothing.

:class:`InboxProcessor` processes unprocessed inbox rows when it starts (a crash between the
commit and the processing loses nothing) and whenever told that a row arrived; one transaction per
row. :class:`InboxService` keeps it running: restarted with backoff when it fails (a database
outage), and woken now and then in case a notification was lost.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gevent
import peewee

from wafleet.actors.gevent_actor import Exit, SupervisedActor
from wafleet.actors.messages import Shutdown
from wafleet.storage import events, inbox, messages
from wafleet.storage.clock import now_ms
from wafleet.storage.database import Database
from wafleet.storage.models import Company

log = logging.getLogger(__name__)

OnMessage = Callable[[str, dict[str, Any]], None]

# Message types whose object carries media (an id to download, mime type, sha256, caption...).
MEDIA_TYPES = ("image", "video", "document", "sticker", "audio")
# Parts of a message kept beside its type's object.
EXTRAS = ("context", "referral", "errors", "identity")


class PayloadError(ValueError):
    """The body is not a webhook envelope at all (not JSON, not an object)."""


@dataclass(frozen=True)
class Inbound:
    phone_number_id: str
    peer: str
    type: str
    text: str | None
    media: dict[str, Any] | None
    wa_id: str | None
    at: int


@dataclass(frozen=True)
class StatusUpdate:
    phone_number_id: str
    wa_id: str
    status: str
    error: dict[str, Any] | None
    recipient: str | None
    at: int


@dataclass(frozen=True)
class CloudError:
    phone_number_id: str | None
    error: dict[str, Any]


@dataclass
class Parsed:
    messages: list[Inbound] = field(default_factory=list)
    statuses: list[StatusUpdate] = field(default_factory=list)
    errors: list[CloudError] = field(default_factory=list)
    phone_number_ids: list[str] = field(default_factory=list)  # in order of appearance, once each
    other_fields: list[str] = field(default_factory=list)  # changes that are not "messages"


# -- parsing (pure) -----------------------------------------------------------------------------
def _clean(value: Any, depth: int = 0) -> Any:
    """Strings any database takes: no NUL, no lone surrogates (both are valid JSON escapes)."""
    if depth > 64:
        return None
    if isinstance(value, str):
        if value.isascii():
            return value.replace("\x00", "")
        return value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, dict):
        return {_clean(k, depth + 1): _clean(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v, depth + 1) for v in value]
    return value


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _str(value: Any) -> str | None:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _time(value: Any, default: int) -> int:
    try:
        seconds = int(str(value))
    except (TypeError, ValueError):
        return default
    return seconds * 1000 if 0 < seconds < 10**11 else default


def _wa_id(value: Any) -> str | None:
    """WhatsApp's message id; one too long for the column is replaced by its digest."""
    text = _str(value)
    if text is None or len(text) <= 191:
        return text
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _contact_for(contacts: list[dict[str, Any]], msg: dict[str, Any]) -> dict[str, Any] | None:
    sender = msg.get("from")
    user = msg.get("from_user_id")
    for contact in contacts:
        if (sender and contact.get("wa_id") == sender) or (user and contact.get("user_id") == user):
            return contact
    return contacts[0] if len(contacts) == 1 else None


def _text_of(kind: str, obj: Any) -> str | None:
    if not isinstance(obj, dict):
        return None
    if kind == "text":
        return _str(obj.get("body"))
    if kind in MEDIA_TYPES:
        return _str(obj.get("caption"))
    if kind == "interactive":
        for key in ("button_reply", "list_reply"):
            reply = obj.get(key)
            if isinstance(reply, dict):
                return _str(reply.get("title"))
        reply = obj.get("nfm_reply")
        return _str(reply.get("body")) if isinstance(reply, dict) else None
    if kind == "button":
        return _str(obj.get("text"))
    if kind == "reaction":
        return _str(obj.get("emoji"))  # "" or missing: the reaction was removed
    if kind in ("order", "system"):
        return _str(obj.get("text") or obj.get("body"))
    if kind == "location":
        return _str(obj.get("name")) or _str(obj.get("address"))
    if kind == "edit":
        inner = obj.get("message")
        if isinstance(inner, dict):
            inner_kind = _str(inner.get("type")) or ""
            return _text_of(inner_kind, inner.get(inner_kind))
    return None


def _inbound(pid: str, msg: dict[str, Any], contacts: list[dict[str, Any]], default_at: int) -> Inbound:
    kind = _str(msg.get("type")) or "unknown"
    contact = _contact_for(contacts, msg)
    peer = (
        _str(msg.get("from"))
        or _str(msg.get("from_user_id"))
        or (contact and (_str(contact.get("wa_id")) or _str(contact.get("user_id"))))
        or ""
    )
    media: dict[str, Any] = {}
    obj = msg.get(kind)
    if kind != "text" and obj is not None:
        media[kind] = obj
    for key in EXTRAS:
        if msg.get(key) is not None:
            media[key] = msg[key]
    if msg.get("from_user_id"):
        media["fromUserId"] = msg["from_user_id"]
    if contact is not None:
        media["contact"] = contact
    return Inbound(
        phone_number_id=pid,
        peer=peer,
        type=kind,
        text=_text_of(kind, obj),
        media=media or None,
        wa_id=_wa_id(msg.get("id")),
        at=_time(msg.get("timestamp"), default_at),
    )


def parse(body: str | bytes, received_at: int) -> Parsed:
    """Everything in one webhook body. Unknown shapes are skipped, never fatal."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise PayloadError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise PayloadError("not a JSON object")
    data = _clean(data)
    out = Parsed()
    for entry in _dicts(data.get("entry")):
        for change in _dicts(entry.get("changes")):
            value = change.get("value")
            if not isinstance(value, dict):
                continue
            kind = change.get("field", "messages")
            metadata = value.get("metadata") if isinstance(value.get("metadata"), dict) else {}
            pid = _str(metadata.get("phone_number_id"))
            if kind != "messages" or pid is None:
                out.other_fields.append(str(kind))
                for error in _dicts(value.get("errors")):
                    out.errors.append(CloudError(pid, error))
                continue
            if pid not in out.phone_number_ids:
                out.phone_number_ids.append(pid)
            contacts = _dicts(value.get("contacts"))
            for msg in _dicts(value.get("messages")):
                out.messages.append(_inbound(pid, msg, contacts, received_at))
            for status in _dicts(value.get("statuses")):
                wa_id, state = _wa_id(status.get("id")), _str(status.get("status"))
                if wa_id is None or state is None:
                    continue
                errors = _dicts(status.get("errors"))
                out.statuses.append(
                    StatusUpdate(
                        phone_number_id=pid,
                        wa_id=wa_id,
                        status=state,
                        error=(errors[0] if len(errors) == 1 else {"errors": errors}) if errors else None,
                        recipient=_str(status.get("recipient_id")) or _str(status.get("recipient_user_id")),
                        at=_time(status.get("timestamp"), received_at),
                    )
                )
            for error in _dicts(value.get("errors")):
                out.errors.append(CloudError(pid, error))
    return out


# -- applying -----------------------------------------------------------------------------------
_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))} | {0x5C: "\\\\"}


def printable(value: Any, size: int = 200) -> str:
    """Payload text for a log line: control characters escaped (no forged lines, no terminal
    escapes), clipped."""
    text = str(value)
    clipped = text[:size] + ("..." if len(text) > size else "")
    return clipped.translate(_CONTROL)


@dataclass
class Outcome:
    stored: list[dict[str, Any]] = field(default_factory=list)  # new inbound messages
    duplicates: int = 0
    statuses_applied: int = 0
    statuses_ignored: int = 0  # backwards, repeated, or for a message that is not ours to move
    statuses_parked: int = 0  # for an outgoing message whose row does not exist yet
    errors: int = 0
    routed: list[str] = field(default_factory=list)  # numbers applied, this time or before
    unrouted: list[str] = field(default_factory=list)  # numbers no company owns (global URL only)
    rejected: list[str] = field(default_factory=list)  # numbers this URL may not touch
    companies: list[str] = field(default_factory=list)  # companies the applied changes went to
    ms: float = 0.0  # time it took


@dataclass(frozen=True)
class Owner:
    company_id: str
    own_app: bool  # the company has its own Meta app (and its own webhook URL)


def owner_of(phone_number_id: str) -> Owner | None:
    row = (
        Company.select(Company.id, Company.cloud_app_secret)
        .where(Company.cloud_phone_number_id == phone_number_id)
        .first()
    )
    return Owner(row.id, bool(row.cloud_app_secret)) if row else None


def owner_exists(company_id: str) -> bool:
    return Company.select(Company.id).where(Company.id == company_id).exists()


class Router:
    """Which company a number's changes go to, for the URL a payload came in on. The global URL
    (source None) is the platform's app: it routes to companies without an app of their own and
    keeps payloads of numbers nobody owns. A company's own URL routes to that company only."""

    def __init__(self, source: str | None, done: list[str], owners: dict[str, Owner | None]) -> None:
        self.source = source
        self.done = set(done)  # applied when the row was processed before
        self.owners = owners  # phone_number_id -> owner, shared by the rows of one transaction
        self.routes: dict[str, str | None] = {}
        self.outcome = Outcome(routed=list(done))

    def __call__(self, pid: str) -> str | None:
        if pid in self.routes:
            return self.routes[pid]
        if pid not in self.owners:
            self.owners[pid] = owner_of(pid)
        owner = self.owners[pid]
        company: str | None = None
        if pid in self.done:
            pass  # applied already: never twice
        elif self.source is None and owner is None:
            self.outcome.unrouted.append(pid)
        elif (self.source is None and owner is not None and owner.own_app) or (
            self.source is not None and (owner is None or owner.company_id != self.source)
        ):
            self.outcome.rejected.append(pid)
        elif owner is not None:
            company = owner.company_id
            self.outcome.routed.append(pid)
            if company not in self.outcome.companies:
                self.outcome.companies.append(company)
        self.routes[pid] = company
        return company


def apply(
    db: Database, parsed: Parsed, row: inbox.InboxRow, now: int, owners: dict[str, Owner | None] | None = None
) -> Outcome:
    """Store what a parsed payload says; the caller holds the transaction. A change is applied
    once: a requeued row applies only the numbers it could not route before, and writes each
    event once."""
    route = Router(row.source, row.routed, {} if owners is None else owners)
    out = route.outcome
    for pid in parsed.phone_number_ids:
        route(pid)
    for msg in parsed.messages:
        company_id = route(msg.phone_number_id)
        if company_id is None:
            continue
        stored = messages.store_inbound(
            db, company_id, msg.peer, msg.type, msg.text, msg.media, msg.wa_id, msg.at
        )
        if stored.created:
            out.stored.append(
                {
                    "id": stored.id,
                    "companyId": company_id,
                    "direction": "in",
                    "peer": msg.peer,
                    "type": msg.type,
                    "text": msg.text,
                    "media": msg.media,
                    "waId": msg.wa_id,
                    "status": None,
                    "error": None,
                    "at": msg.at,
                }
            )
        else:
            out.duplicates += 1
    for status in parsed.statuses:
        company_id = route(status.phone_number_id)
        if company_id is None:
            continue
        result = messages.apply_status(
            db, company_id, status.wa_id, status.status, status.error, status.at, park=True
        )
        if result is messages.StatusResult.APPLIED:
            out.statuses_applied += 1
        elif result is messages.StatusResult.PARKED:
            out.statuses_parked += 1
        else:
            out.statuses_ignored += 1
    for error in parsed.errors:
        if error.phone_number_id is None:
            company_id = None
            if not row.first_time:
                continue  # written when the row was first processed
        else:
            company_id = route(error.phone_number_id)
            if company_id is None:
                continue  # written when (if) its number is routed
        code = error.error.get("code")
        events.append(
            company_id,
            "cloud_error",
            state=None,
            reason=str(code)[:64] if code is not None else None,
            data={"inboxId": row.id, "phoneNumberId": error.phone_number_id, "error": error.error},
            at=now,
        )
        out.errors += 1
    new_unrouted = [pid for pid in out.unrouted if pid not in row.unrouted]
    if new_unrouted:
        events.append(
            None,
            "unrouted",
            state=None,
            reason="unknown_phone_number_id",
            data={"inboxId": row.id, "phoneNumberIds": new_unrouted},
            at=now,
        )
    new_rejected = [pid for pid in out.rejected if pid not in row.rejected]
    if new_rejected:
        events.append(
            None,
            "webhook_rejected",
            state=None,
            reason="not_this_urls_number",
            data={"inboxId": row.id, "source": row.source, "phoneNumberIds": new_rejected},
            at=now,
        )
    return out


def _single_company(row: inbox.InboxRow, outcome: Outcome) -> str | None:
    """The one company whose data a global payload holds, or None (none, or several: such a row
    is found by its numbers when a company is deleted)."""
    before: set[str | None] = {row.company} if row.routed else set()
    owners = before | set(outcome.companies)
    return owners.pop() if len(owners) == 1 else None


# -- the actor ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Wake:
    """A row was committed (``row_id``), or: look for unprocessed rows (None)."""

    row_id: int | None = None
    at: float = field(default_factory=time.monotonic)


class InboxProcessor(SupervisedActor):
    """Supervised by the Root like any child: a crash restarts it with backoff, and it drains
    what is pending when it starts (a crash between commit and processing loses nothing). Its
    sweeper greenlet ends with it, however it ends (a crash skips ``on_stop``)."""

    BATCH = 200  # rows listed per query
    BATCH_ROWS = 50  # rows per transaction at most
    BUDGET = 0.005  # seconds of processing per transaction, then requests get their turn
    BUSY_WINDOW = 0.05  # seconds since the last acknowledged payload that count as a burst
    BACKLOG_CHECK = 0.2  # seconds between two counts of the rows waiting
    REMEMBER = 10_000
    SWEEP = 30.0

    def __init__(
        self,
        db: Database,
        on_message: OnMessage | None = None,
        metrics: Any = None,
        on_exit: Callable[[Exit], None] | None = None,
        status_hold_ms: int = 86_400_000,
        busy_share: float = 0.25,
        burst_backlog: int = 10_000,
    ) -> None:
        super().__init__(on_exit)
        self.db = db
        self.on_message = on_message
        self.metrics = metrics
        self.status_hold_ms = status_hold_ms
        self.busy_share = min(1.0, max(0.01, busy_share))
        self._drain_started = float("-inf")
        self.burst_backlog = burst_backlog
        self._backlog_at = float("-inf")
        self._backlog = 0
        self._done: OrderedDict[int, None] = OrderedDict()  # recently processed row ids
        self._sweeper: gevent.Greenlet | None = None

    def _start_actor_loop(self) -> None:
        super()._start_actor_loop()
        self.actor_greenlet.link(lambda _greenlet: self.cleanup())

    def on_start(self) -> None:
        pending = inbox.pending_count(self.db)
        if pending:
            log.info("webhook inbox: %d payload(s) left unprocessed; processing them now", pending)
        self.actor_ref.tell(Wake())
        self._sweeper = gevent.spawn(self._sweep)

    def _sweep(self) -> None:
        """A wake-up lost to a restart is caught within ``SWEEP`` seconds, and so are parked
        statuses whose message row was written while they were being parked."""
        while True:
            gevent.sleep(self.SWEEP)
            try:
                self.actor_ref.tell(Wake())
            except Exception:  # pykka.ActorDeadError: stopping
                return

    def cleanup(self) -> None:
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None and sweeper is not gevent.getcurrent():
            sweeper.kill(block=False)

    def on_stop(self) -> None:
        self.cleanup()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Wake):
            if message.row_id is not None and message.row_id in self._done:
                return None  # an earlier drain already took it
            if message.at < self._drain_started:
                return None  # sent before the last drain began: that drain saw its row
            return self.drain()
        if isinstance(message, Shutdown):
            self.cleanup()
            self.exit("normal", "shutdown")
        return None

    def drain(self) -> int:
        """Process every unprocessed row, then apply statuses whose row appeared; returns how
        many rows. While payloads keep arriving (acknowledged in the last ``BUSY_WINDOW``) and fewer
        than ``burst_backlog`` rows wait, it pauses after each batch so that processing takes at
        most ``busy_share`` of the time: a burst is acknowledged first and processed right after."""
        self._drain_started = time.monotonic()
        count = 0
        while True:
            ids = inbox.unprocessed_ids(self.db, self.BATCH)
            if not ids:
                break
            while ids:
                started = time.perf_counter()
                taken = self.process_batch(ids)
                ids = ids[taken:]
                count += taken
                self._step_aside(time.perf_counter() - started)
        applied = messages.apply_parked(self.db, now_ms() - self.status_hold_ms)
        if applied and self.metrics is not None:
            self.metrics.incr("webhook.statuses", applied)
        return count

    def _step_aside(self, spent: float) -> None:
        """After a batch that took ``spent`` seconds: let waiting requests in (SQLite never
        yields), and while a burst is being acknowledged, wait long enough for processing to
        take only ``busy_share`` of the time — in short slices, so that the end of the burst or
        a backlog grown too long ends the wait at once."""
        gevent.sleep(0)
        until = time.perf_counter() + spent * (1 / self.busy_share - 1)
        while (
            time.perf_counter() < until and inbox.acknowledging(self.BUSY_WINDOW) and not self._backlogged()
        ):
            gevent.sleep(min(self.BUSY_WINDOW, until - time.perf_counter()))

    def _backlogged(self) -> bool:
        """More than ``burst_backlog`` rows wait: the burst has lasted long enough, processing
        stops stepping aside (sustained traffic must not grow the inbox without bound). Counted
        at most every ``BACKLOG_CHECK`` seconds."""
        now = time.monotonic()
        if now - self._backlog_at >= self.BACKLOG_CHECK:
            self._backlog_at = now
            self._backlog = inbox.pending_count(self.db, limit=self.burst_backlog + 1)
        return self._backlog > self.burst_backlog

    def process_batch(self, ids: list[int]) -> int:
        """Process rows from the head of ``ids`` in ONE transaction (a commit per row would cost
        more than the row), for at most ``BUDGET`` seconds so that requests are not kept
        waiting; returns how many ids were taken. If a row fails for a reason other than the
        database, the batch is rolled back and its rows are redone one transaction each, so that
        the poison row is marked alone."""
        now = now_ms()
        deadline = time.perf_counter() + self.BUDGET
        done: list[tuple[inbox.InboxRow, Outcome | None]] = []
        taken = 0
        try:
            with self.db.work(), self.db.atomic():
                claimed = inbox.claim_many(self.db, ids[: self.BATCH_ROWS])
                owners: dict[str, Owner | None] = {}
                for row_id in ids[: self.BATCH_ROWS]:
                    taken += 1
                    row = claimed.get(row_id)
                    if row is not None:
                        done.append((row, self._apply_row(row, now, owners)))
                    if time.perf_counter() > deadline:
                        break
        except (peewee.OperationalError, peewee.InterfaceError):
            raise  # the database is away: fail, be restarted, and redo these rows then
        except Exception:
            for row_id in ids[:taken]:
                self._process_alone(row_id, now)
            return taken
        for row, outcome in done:
            self._after(row, outcome)
        return taken

    def _process_alone(self, row_id: int, now: int) -> None:
        row = None
        try:
            with self.db.work(), self.db.atomic():
                row = inbox.claim_many(self.db, [row_id]).get(row_id)
                if row is None:
                    return  # another node took it, or it was processed meanwhile
                outcome = self._apply_row(row, now, {})
        except (peewee.OperationalError, peewee.InterfaceError):
            raise
        except Exception as exc:  # a poison payload must not stop the inbox
            # The message escaped (payload text may be in it); the traceback only at debug level.
            log.error("webhook inbox row %d could not be applied: %s", row_id, printable(exc))
            log.debug("webhook inbox row %d: traceback", row_id, exc_info=True)
            error = f"{type(exc).__name__}: {exc}"[:2000]
            inbox.mark(self.db, row_id, now, error, None, company=row.source if row else None)
            self._remember(row_id)
            return
        self._after(row, outcome)

    def _apply_row(self, row: inbox.InboxRow, now: int, owners: dict[str, Owner | None]) -> Outcome | None:
        """Inside the caller's transaction: apply one row and mark it processed. None: the body
        is not a webhook payload (marked with the reason)."""
        started = time.perf_counter()
        if row.source is not None and not owner_exists(row.source):
            # Received on a company's own URL in the seconds before its deletion reached the
            # secrets cache: the company's data is erased, this payload too.
            inbox.erase_rows(self.db, [row.id])
            return None
        try:
            parsed = parse(row.body, row.received_at)
        except PayloadError as exc:
            log.warning("webhook inbox row %d is not a webhook payload: %s", row.id, printable(exc))
            inbox.mark(self.db, row.id, now, str(exc)[:2000], None, company=row.source, before=row)
            return None
        outcome = apply(self.db, parsed, row, now, owners)
        inbox.mark(
            self.db,
            row.id,
            now,
            None,
            outcome.unrouted,
            routed=outcome.routed,
            rejected=outcome.rejected,
            company=row.source or _single_company(row, outcome),
            before=row,
        )
        outcome.ms = (time.perf_counter() - started) * 1000
        return outcome

    def _after(self, row: inbox.InboxRow, outcome: Outcome | None) -> None:
        """Once committed: remember, log, count, announce."""
        self._remember(row.id)
        if outcome is None:
            return
        if outcome.unrouted:
            log.warning(
                "webhook inbox row %d names phone_number_id(s) no company owns: %s (payload kept)",
                row.id,
                ", ".join(printable(pid) for pid in outcome.unrouted),
            )
        if outcome.rejected:
            log.warning(
                "webhook inbox row %d from %s names phone_number_id(s) that URL may not touch: %s "
                "(not applied; payload kept)",
                row.id,
                f"company {printable(row.source)}'s own URL" if row.source else "the global URL",
                ", ".join(printable(pid) for pid in outcome.rejected),
            )
        self._count(outcome, outcome.ms)
        if self.on_message is not None:
            for stored in outcome.stored:
                try:
                    self.on_message(stored["companyId"], stored)
                except Exception:
                    log.exception("on_message failed for message %s", stored["id"])

    def _remember(self, row_id: int) -> None:
        self._done[row_id] = None
        while len(self._done) > self.REMEMBER:
            self._done.popitem(last=False)

    def _count(self, outcome: Outcome, ms: float) -> None:
        if self.metrics is None:
            return
        self.metrics.incr("webhook.processed")
        if outcome.stored:
            self.metrics.incr("webhook.messages", len(outcome.stored))
        if outcome.duplicates:
            self.metrics.incr("webhook.duplicates", outcome.duplicates)
        if outcome.statuses_applied:
            self.metrics.incr("webhook.statuses", outcome.statuses_applied)
        if outcome.statuses_parked:
            self.metrics.incr("webhook.statuses_parked", outcome.statuses_parked)
        if outcome.errors:
            self.metrics.incr("webhook.cloud_errors", outcome.errors)
        if outcome.unrouted:
            self.metrics.incr("webhook.unrouted")
        if outcome.rejected:
            self.metrics.incr("webhook.rejected")
        self.metrics.timing("webhook.process", ms)
