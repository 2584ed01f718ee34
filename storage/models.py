"""Tables. Times are integer milliseconds since the epoch (UTC): portable and sortable."""

from __future__ import annotations

import peewee

database_proxy = peewee.DatabaseProxy()


class BaseModel(peewee.Model):
    class Meta:
        database = database_proxy
        legacy_table_names = False


class SchemaVersion(BaseModel):
    version = peewee.IntegerField()


class Company(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=64)
    name = peewee.CharField(max_length=200)
    phone = peewee.CharField(max_length=32, null=True)
    link = peewee.CharField(max_length=16)
    token_hash = peewee.CharField(max_length=64, unique=True)
    created_at = peewee.BigIntegerField()
    updated_at = peewee.BigIntegerField()
    # Cloud API (link "cloud"): secrets are AES-256-GCM ciphertexts (storage/crypto.py), never plain.
    cloud_phone_number_id = peewee.CharField(max_length=64, null=True, unique=True)
    cloud_token = peewee.TextField(null=True)
    cloud_app_secret = peewee.TextField(null=True)
    cloud_verify_token = peewee.TextField(null=True)


class Session(BaseModel):
    """Desired and actual state of a company's session; one row per company."""

    company = peewee.ForeignKeyField(Company, primary_key=True, on_delete="CASCADE")
    desired_state = peewee.CharField(max_length=16, default="stopped")
    status = peewee.CharField(max_length=16, default="stopped")
    phone = peewee.CharField(max_length=32, null=True)
    restarts = peewee.IntegerField(default=0)
    last_error_reason = peewee.CharField(max_length=64, null=True)
    last_error_message = peewee.TextField(null=True)
    last_error_at = peewee.BigIntegerField(null=True)
    since = peewee.BigIntegerField()
    updated_at = peewee.BigIntegerField()
    # the end of a pairing cool-down (blocked) or of a ban (failed or stopped, last error banned)
    blocked_until = peewee.BigIntegerField(null=True)


class PairingCode(BaseModel):
    """Every pairing code asked for: when, for which phone, and what became of it.

    The code itself is kept only as a hash: it is a one-time login secret."""

    id = peewee.BigAutoField()
    company = peewee.CharField(max_length=64, index=True)
    phone = peewee.CharField(max_length=32)
    code_hash = peewee.CharField(max_length=64, null=True)
    outcome = peewee.CharField(max_length=16)  # issued, used, expired, refused
    at = peewee.BigIntegerField()


class Event(BaseModel):
    """Append-only audit of everything that happened to a company (or the node: company null)."""

    id = peewee.BigAutoField()
    company = peewee.CharField(max_length=64, null=True)
    kind = peewee.CharField(max_length=32)
    state = peewee.CharField(max_length=16, null=True)
    reason = peewee.CharField(max_length=64, null=True)
    data = peewee.TextField(null=True)
    at = peewee.BigIntegerField()

    class Meta:
        indexes = ((("company", "id"), False),)


class Message(BaseModel):
    """Every message in or out, from any link. ``wa_id`` (WhatsApp's message id) is unique per
    company: Meta redelivers for days, and a redelivery must land on the row it already has; but
    an id means something only for one number (the sandbox and the web link make ids up), so
    two companies may each hold a message with the same id."""

    id = peewee.BigAutoField()
    company = peewee.CharField(max_length=64)
    direction = peewee.CharField(max_length=3)  # in | out
    peer = peewee.CharField(max_length=64)  # the customer's WhatsApp id / phone
    type = peewee.CharField(max_length=32)  # text, image, audio, location, reaction, ...
    text = peewee.TextField(null=True)
    media = peewee.TextField(null=True)  # JSON: the type's metadata (ids, mime, caption, ...)
    wa_id = peewee.CharField(max_length=191, null=True)
    status = peewee.CharField(max_length=16, null=True)  # out: queued sent delivered read played failed
    error = peewee.TextField(null=True)  # JSON: Meta's error on failed
    at = peewee.BigIntegerField()

    class Meta:
        indexes = ((("company", "id"), False), (("company", "wa_id"), True))


class WebhookInbox(BaseModel):
    """Raw webhook payloads, committed before Meta gets its 200; processed after, off-request."""

    id = peewee.BigAutoField()
    received_at = peewee.BigIntegerField()
    body = peewee.TextField()
    processed_at = peewee.BigIntegerField(null=True, index=True)
    error = peewee.TextField(null=True)
    unrouted = peewee.TextField(null=True)  # JSON list of phone_number_ids no company owns
    # The company whose own URL received it (signed by its own app secret); None: the global URL.
    source = peewee.CharField(max_length=64, null=True)
    # Whose data it holds: the source, or the one company a global payload was routed to; a
    # company's deletion erases its rows.
    company = peewee.CharField(max_length=64, null=True, index=True)
    routed = peewee.TextField(null=True)  # JSON list of phone_number_ids already applied
    rejected = peewee.TextField(null=True)  # JSON list of phone_number_ids this URL may not touch


class WebhookUnrouted(BaseModel):
    """One row per (kept payload, number nobody owned): a company claiming the number finds
    every payload of it, however old, through the index."""

    id = peewee.BigAutoField()
    inbox = peewee.BigIntegerField(index=True)
    phone_number_id = peewee.CharField(max_length=64, index=True)


class PendingStatus(BaseModel):
    """A delivery status that arrived before the row of its outgoing message existed; applied
    when the row appears, dropped after a while."""

    id = peewee.BigAutoField()
    company = peewee.CharField(max_length=64)
    wa_id = peewee.CharField(max_length=191)
    status = peewee.CharField(max_length=16)
    error = peewee.TextField(null=True)
    received_at = peewee.BigIntegerField(index=True)

    class Meta:
        indexes = ((("company", "wa_id"), False),)


class Outbox(BaseModel):
    """Messages accepted by ``send`` (a 202 means this row is committed), until delivered."""

    id = peewee.BigAutoField()
    company = peewee.CharField(max_length=64)  # indexes: storage/schema.py (_outbox_lanes)
    peer = peewee.CharField(max_length=64)
    text = peewee.TextField()
    state = peewee.CharField(max_length=16)  # queued sending sent failed
    attempts = peewee.IntegerField(default=0)
    next_at = peewee.BigIntegerField()
    wa_id = peewee.CharField(max_length=191, null=True)
    error = peewee.TextField(null=True)
    created_at = peewee.BigIntegerField()


class BlockedNumber(BaseModel):
    """A number one company does not message and does not answer (the node-wide list is
    WHATSAPP_BLOCKED_NUMBERS, not stored)."""

    id = peewee.BigAutoField()
    company = peewee.CharField(max_length=64)
    phone = peewee.CharField(max_length=32)
    created_at = peewee.BigIntegerField()

    class Meta:
        indexes = ((("company", "phone"), True),)


class Endpoint(BaseModel):
    """Where outbound deliveries go: a company's webhook (``http``), its notification email
    (``email``), or the node's alert webhook (``alert``, company null)."""

    id = peewee.BigAutoField()
    company = peewee.CharField(max_length=64, null=True, index=True)
    kind = peewee.CharField(max_length=8)  # http | email | alert
    url = peewee.TextField()  # the https URL, or the email address
    events = peewee.TextField()  # JSON list of the event types it receives
    secret = peewee.TextField(null=True)  # AES-256-GCM ciphertext (storage/crypto.py), never plain
    retry_at = peewee.BigIntegerField(default=0)  # the head of its queue waits until then
    created_at = peewee.BigIntegerField()


class Delivery(BaseModel):
    """One event for one endpoint, committed with the event; sent in id order per endpoint."""

    id = peewee.BigAutoField()
    endpoint = peewee.BigIntegerField()
    company = peewee.CharField(max_length=64, null=True)
    event_id = peewee.CharField(max_length=64)  # X-Wafleet-Event-Id: the same on every attempt
    type = peewee.CharField(max_length=32)
    body = peewee.TextField()  # the exact bytes sent (and signed)
    status = peewee.CharField(max_length=12)  # pending | delivered | failed (dead letter)
    attempts = peewee.IntegerField(default=0)
    deadline = peewee.BigIntegerField(null=True)  # retried until then (null: created_at + budget)
    next_at = peewee.BigIntegerField()
    last_error = peewee.TextField(null=True)
    response_status = peewee.IntegerField(null=True)
    created_at = peewee.BigIntegerField()
    delivered_at = peewee.BigIntegerField(null=True)
    # PostgreSQL: when the row was written, by the database's clock (ms). Once every writing
    # transaction that began before then has ended, no row with a lower id can still appear.
    horizon = peewee.BigIntegerField(null=True)

    class Meta:
        indexes = (
            (("status", "endpoint", "id"), False),
            (("company", "status", "id"), False),
        )


class MetricMinute(BaseModel):
    """The node's activity, one row per minute, for the last 24 hours (the timeseries route).

    ``minute`` is minutes since the epoch (UTC). Counts add up over the minute; ``connected`` is
    the number of connected sessions when the minute was last written."""

    minute = peewee.BigIntegerField(primary_key=True)
    messages_in = peewee.IntegerField(default=0)
    messages_out = peewee.IntegerField(default=0)
    connected = peewee.IntegerField(default=0)
    restarts = peewee.IntegerField(default=0)
    errors = peewee.IntegerField(default=0)


class AssistantConfig(BaseModel):
    """A company's assistant configuration: the validated JSON document the API accepted."""

    company = peewee.CharField(primary_key=True, max_length=64)
    config = peewee.TextField()
    updated_at = peewee.BigIntegerField()


class Booking(BaseModel):
    """An appointment. The customer's phone is an AES-GCM ciphertext; ``customer_hash`` (a keyed
    hash) finds a customer's bookings without decrypting. Confirmed bookings of one resource never
    overlap: PostgreSQL refuses it with an exclusion constraint (added by the migration)."""

    id = peewee.BigAutoField()
    company = peewee.CharField(max_length=64)
    code = peewee.CharField(max_length=6)
    customer_phone = peewee.TextField()
    customer_hash = peewee.CharField(max_length=64)
    customer_name = peewee.CharField(max_length=200, null=True)
    service = peewee.CharField(max_length=64)
    resource = peewee.CharField(max_length=64)
    start_ms = peewee.BigIntegerField()
    end_ms = peewee.BigIntegerField()
    status = peewee.CharField(max_length=16)  # confirmed cancelled completed
    source = peewee.CharField(max_length=16)  # assistant | api
    created_at = peewee.BigIntegerField()
    updated_at = peewee.BigIntegerField()

    class Meta:
        indexes = (
            (("company", "code"), True),
            (("company", "resource", "start_ms"), False),
            (("company", "customer_hash"), False),
            (("company", "start_ms"), False),
        )


class Conversation(BaseModel):
    """One customer's chat with a company's assistant: its state survives a restart."""

    id = peewee.BigAutoField()
    company = peewee.CharField(max_length=64)
    peer = peewee.CharField(max_length=64)
    state = peewee.TextField()  # JSON: language, filled slots, pending question, offers, turns
    # The last inbound message (Message.id) this conversation answered or let pass: later ones
    # are still to be answered, after a crash too (the messages table is the durable inbox).
    answered_through = peewee.BigIntegerField(default=0)
    paused_until = peewee.BigIntegerField(null=True)  # human handoff: the assistant stays quiet
    started_at = peewee.BigIntegerField()
    updated_at = peewee.BigIntegerField()

    class Meta:
        indexes = ((("company", "peer"), True), (("company", "updated_at"), False))


class AssistantTurn(BaseModel):
    """One answered (or silenced) turn: what came in, what understood it, what went out."""

    id = peewee.BigAutoField()
    company = peewee.CharField(max_length=64)
    peer = peewee.CharField(max_length=64)
    at = peewee.BigIntegerField()
    text = peewee.TextField()
    messages = peewee.IntegerField(default=1)  # customer messages batched into this turn
    reply = peewee.TextField(null=True)
    intent = peewee.CharField(max_length=16)
    language = peewee.CharField(max_length=8)
    source = peewee.CharField(max_length=8)  # model | rules
    model = peewee.CharField(max_length=100, null=True)  # set when a model call was made
    prompt_tokens = peewee.IntegerField(default=0)
    completion_tokens = peewee.IntegerField(default=0)
    cost = peewee.FloatField(default=0.0)
    ai_latency_ms = peewee.FloatField(null=True)
    fallback_reason = peewee.CharField(max_length=100, null=True)
    response_ms = peewee.FloatField()  # from the end of the batch window to the reply queued
    outcome = peewee.CharField(max_length=32, null=True)  # booked, refused, cancelled, ...

    class Meta:
        indexes = ((("company", "at"), False), (("company", "peer", "id"), False))


ALL_MODELS: list[type[BaseModel]] = [
    SchemaVersion,
    Company,
    Session,
    Event,
    PairingCode,
    Message,
    WebhookInbox,
    Outbox,
    AssistantConfig,
    Booking,
    Conversation,
    AssistantTurn,
    Endpoint,
    Delivery,
    WebhookUnrouted,
    PendingStatus,
    MetricMinute,
    BlockedNumber,
]
