"""WebhookDeliverer: sends the durable delivery queue (company webhooks, the alert webhook,
pairing-code emails). A Root child.

* Per endpoint, one delivery at a time in id order (ordered per endpoint); a failed head waits
  its full-jitter backoff and everything behind it waits with it. Nodes sharing a PostgreSQL
  database take turns per endpoint (an advisory lock), so order holds across nodes too.
* Endpoints are worked independently, at most ``concurrency`` at once, each attempt bounded by
  one timeout: a slow or dead endpoint holds only its own worker.
* Every attempt of a delivery carries the same event id and body; a delivery is marked done only
  after its 2xx, so a crash in between means one more (identical) attempt: at least once.
* Past its deadline (the retry budget, or a pairing code's expiry) a delivery is dead-lettered.

The actor owns one scheduler greenlet and a pool of endpoint workers; they are killed however
the actor ends (shutdown, crash, a failed start).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gevent
import gevent.event
import gevent.pool
import pykka

from wafleet.actors.gevent_actor import Exit, SupervisedActor
from wafleet.actors.messages import Shutdown
from wafleet.actors.metrics import Metrics
from wafleet.actors.outbound_url import UrlRefused, check
from wafleet.actors.transports import AttemptFailed, HttpSender, PairingEmail, SmtpSender, signature
from wafleet.storage import deliveries, endpoints
from wafleet.storage.clock import now_ms
from wafleet.storage.crypto import Cipher, DecryptionError
from wafleet.storage.database import Database
from wafleet.storage.endpoint_locks import EndpointLocks

log = logging.getLogger(__name__)

BATCH = 100  # deliveries of one endpoint read at once (sent one by one, in order)
PRUNE_EVERY = 60.0  # seconds between sweeps of old delivered rows
SETTLE_RECHECK = 0.05  # seconds before looking again at a queue waiting for other transactions


@dataclass(frozen=True)
class WebhookConfig:
    timeout: float = 10.0
    retry_base: float = 1.0
    retry_max: float = 3600.0
    retry_budget_ms: int = 86_400_000
    concurrency: int = 100
    poll: float = 1.0
    allow_private: bool = False
    alert_secret: str | None = None
    smtp_url: str | None = None
    smtp_from: str = "wafleet@localhost"
    keep_ms: int = 7 * 86_400_000  # delivered rows are kept this long, then pruned

    def __repr__(self) -> str:  # the SMTP password and the alert secret stay out of logs
        return "WebhookConfig(...)"


@dataclass(frozen=True)
class _Failed:
    error: Exception


def webhook_secret_aad(company_id: str) -> str:
    """Associated data of a webhook secret: a ciphertext moved to another company fails."""
    return f"webhook:{company_id}"


class WebhookDeliverer(SupervisedActor):
    def __init__(
        self,
        *,
        db: Database,
        metrics: Metrics,
        cipher: Cipher | None,
        config: WebhookConfig,
        on_exit: Callable[[Exit], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(on_exit)
        self.db = db
        self.metrics = metrics
        self.cipher = cipher
        self.config = config
        self.rng = rng or random.Random()
        self.http = HttpSender(config.timeout)
        self.smtp = SmtpSender(config.smtp_url, config.smtp_from, config.timeout) if config.smtp_url else None
        self.pool = gevent.pool.Pool(config.concurrency)
        self.busy: set[int] = set()
        self.settling = False  # a queue head waits for older transactions to commit
        self.locks = EndpointLocks(db)  # one sender per endpoint across the nodes
        self.wake = gevent.event.Event()
        self.scheduler: gevent.Greenlet | None = None
        self._unlisten: Callable[[], None] | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    def _start_actor_loop(self) -> None:
        super()._start_actor_loop()
        self.actor_greenlet.link(lambda _greenlet: self._cleanup())  # every exit, on_start's too

    def on_start(self) -> None:
        self._unlisten = deliveries.on_new_delivery(self.wake.set)
        self.scheduler = gevent.spawn(self._schedule)
        self.scheduler.name = "webhook-scheduler"

    def _cleanup(self) -> None:
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None
        if self.scheduler is not None:
            self.scheduler.kill(block=False)
        self.pool.kill(block=False)
        self.locks.close()
        self.http.close()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _Failed):
            raise message.error
        if isinstance(message, Shutdown):
            self._cleanup()
            self.exit("normal", "shutdown")
            return None
        return super().on_receive(message)

    # -- scheduling -----------------------------------------------------------------------------
    def _schedule(self) -> None:
        pruned_at = 0.0
        try:
            while True:
                if time.monotonic() - pruned_at >= PRUNE_EVERY:
                    pruned_at = time.monotonic()
                    while deliveries.prune(self.db, now_ms() - self.config.keep_ms) >= 1000:
                        gevent.sleep(0)  # a large backlog goes in slices; requests keep flowing
                self._dispatch()
                self.wake.wait(timeout=self._sleep())
                self.wake.clear()
                if self.settling:  # a queue waits for other transactions: look again shortly
                    self.settling = False
                    gevent.sleep(SETTLE_RECHECK)
        except Exception as exc:  # the database went away: fail the actor, the Root restarts it
            try:
                self.actor_ref.tell(_Failed(exc))
            except pykka.ActorDeadError:
                pass

    def _sleep(self) -> float:
        now = now_ms()
        upcoming = deliveries.next_retry_at(self.db, now)
        if upcoming is None:
            return self.config.poll
        return min(self.config.poll, max(0.0, (upcoming - now) / 1000))

    def _dispatch(self) -> None:
        free = self.pool.free_count()
        if free <= 0:
            return
        for endpoint_id in deliveries.due_endpoints(self.db, now_ms(), limit=free + len(self.busy)):
            if endpoint_id in self.busy:
                continue
            if self.pool.free_count() <= 0:
                break
            if not self.locks.acquire(endpoint_id):
                continue  # another node is sending this endpoint's queue
            self.busy.add(endpoint_id)
            self.pool.spawn(self._work, endpoint_id)

    def _work(self, endpoint_id: int) -> None:
        """Send this endpoint's queue in order until it is empty or its head must wait."""
        try:
            while True:
                version = endpoints.config_version()
                endpoint = endpoints.endpoint(self.db, endpoint_id)
                if endpoint is None or endpoint.retry_at > now_ms():
                    return
                rows, waiting = deliveries.queue(self.db, endpoint_id, BATCH)
                if not rows:
                    self.settling = self.settling or waiting
                    return
                for row in rows:
                    if endpoints.config_version() != version:
                        break  # an endpoint changed (URL removed, secret rotated): read it again
                    if not self._attempt(endpoint, row):
                        break  # the head must wait: nothing behind it goes first
                    endpoint = dataclasses.replace(endpoint, retry_at=0)
        except Exception:
            log.exception("webhook endpoint %d: worker failed; the scheduler will try again", endpoint_id)
        finally:
            try:
                self.locks.release(endpoint_id)
            except Exception:  # the connection went with the database: so did the lock
                log.warning("webhook endpoint %d: could not release its lock", endpoint_id, exc_info=True)
            self.busy.discard(endpoint_id)
            self.wake.set()

    # -- one attempt ------------------------------------------------------------------------------
    def _attempt(self, endpoint: endpoints.EndpointRow, row: deliveries.DeliveryRow) -> bool:
        """One attempt; False when the endpoint's queue must now wait (a retry is scheduled)."""
        try:
            if endpoint.kind == endpoints.EMAIL:
                if row.deadline is not None and now_ms() >= row.deadline:
                    raise AttemptFailed("the pairing code expired before the email could be sent")
                self._email(row)
                status: int | None = None
            else:
                status = self._post(endpoint, row)
        except AttemptFailed as exc:
            return self._failed(endpoint, row, str(exc), exc.status)
        deliveries.delivered(self.db, row, status, reset_endpoint=endpoint.retry_at != 0)
        self.metrics.incr(f"outbound.{endpoint.kind}.delivered")
        return True

    def _post(self, endpoint: endpoints.EndpointRow, row: deliveries.DeliveryRow) -> int:
        secret = self._secret(endpoint)
        try:
            target = check(endpoint.url, self.config.allow_private)  # again: DNS may have changed
        except UrlRefused as exc:
            raise AttemptFailed(str(exc)) from None
        body = row.body.encode("utf-8")
        headers = {
            "X-Wafleet-Event-Id": row.event_id,
            "X-Wafleet-Event-Type": row.type,
            "X-Wafleet-Timestamp": str(now_ms()),
            "X-Wafleet-Delivery-Attempt": str(row.attempts + 1),
        }
        if secret is not None:
            headers["X-Wafleet-Signature"] = signature(secret, body)
        return self.http.post(target, body, headers)

    def _secret(self, endpoint: endpoints.EndpointRow) -> str | None:
        if endpoint.kind == endpoints.ALERT:
            return self.config.alert_secret
        if endpoint.secret is None or endpoint.company_id is None:
            return None
        if self.cipher is None:
            raise AttemptFailed("WAFLEET_ENCRYPTION_KEY is not set: the endpoint's secret cannot be read")
        try:
            return self.cipher.decrypt(endpoint.secret, aad=webhook_secret_aad(endpoint.company_id))
        except DecryptionError as exc:
            raise AttemptFailed(str(exc)) from None

    def _email(self, row: deliveries.DeliveryRow) -> None:
        if self.smtp is None:
            raise AttemptFailed("WAFLEET_SMTP_URL is not set: no way to send email")
        data = json.loads(row.body)
        if not data.get("code"):
            raise AttemptFailed("the pairing code is no longer kept")
        self.smtp.send(PairingEmail(data["to"], data["company"], data["code"], int(data["expiresAt"])))

    def _failed(
        self, endpoint: endpoints.EndpointRow, row: deliveries.DeliveryRow, error: str, status: int | None
    ) -> bool:
        """Dead-letter (True: the queue moves on) or schedule the retry (False: it waits)."""
        now = now_ms()
        deadline = row.deadline if row.deadline is not None else row.created_at + self.config.retry_budget_ms
        self.metrics.incr(f"outbound.{endpoint.kind}.failed_attempts")
        if now >= deadline:
            deliveries.dead_letter(self.db, row, error, status)
            self.metrics.incr(f"outbound.{endpoint.kind}.dead_lettered")
            log.warning(
                "delivery %d (%s) to %s endpoint %d dead-lettered after %d attempts: %s",
                row.id,
                row.type,
                endpoint.kind,
                endpoint.id,
                row.attempts + 1,
                error,
            )
            return True
        ceiling = min(self.config.retry_max, self.config.retry_base * 2 ** min(row.attempts, 40))
        wait_ms = int(self.rng.uniform(0, ceiling) * 1000)  # full jitter
        deliveries.retry_later(self.db, row, error, status, min(now + wait_ms, deadline))
        return False
