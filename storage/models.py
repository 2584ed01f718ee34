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
    last_error_until = peewee.CharField(max_length=40, null=True)  # a ban's end, as WhatsApp gave it
    since = peewee.BigIntegerField()
    updated_at = peewee.BigIntegerField()
    blocked_until = peewee.BigIntegerField(null=True)  # pairing cooldown; survives restarts


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
    """Every message in or out, from any link. ``wa_id`` (WhatsApp's message id) is unique:
    Meta redelivers for days, and a redelivery must land on the row it already has."""

    id = peewee.BigAutoField()
    company = peewee.CharField(max_length=64)
    direction = peewee.CharField(max_length=3)  # in | out
    peer = peewee.CharField(max_length=64)  # the customer's WhatsApp id / phone
    type = peewee.CharField(max_length=32)  # text, image, audio, location, reaction, ...
    text = peewee.TextField(null=True)
    media = peewee.TextField(null=True)  # JSON: the type's metadata (ids, mime, caption, ...)
    wa_id = peewee.CharField(max_length=191, null=True, unique=True)
    status = peewee.CharField(max_length=16, null=True)  # out: queued sent delivered read played failed
    error = peewee.TextField(null=True)  # JSON: Meta's error on failed
    at = peewee.BigIntegerField()

    class Meta:
        indexes = ((("company", "id"), False),)


class WebhookInbox(BaseModel):
    """Raw webhook payloads, committed before Meta gets its 200; processed after, off-request."""

    id = peewee.BigAutoField()
    received_at = peewee.BigIntegerField()
    body = peewee.TextField()
    processed_at = peewee.BigIntegerField(null=True, index=True)
    error = peewee.TextField(null=True)
    unrouted = peewee.TextField(null=True)  # JSON list of phone_number_ids no company owns


class Outbox(BaseModel):
    """Messages accepted by ``send`` (a 202 means this row is committed), until delivered."""

    id = peewee.BigAutoField()
    company = peewee.CharField(max_length=64, index=True)
    peer = peewee.CharField(max_length=64)
    text = peewee.TextField()
    state = peewee.CharField(max_length=16, index=True)  # queued sending sent failed
    attempts = peewee.IntegerField(default=0)
    next_at = peewee.BigIntegerField()
    wa_id = peewee.CharField(max_length=191, null=True)
    error = peewee.TextField(null=True)
    created_at = peewee.BigIntegerField()


ALL_MODELS: list[type[BaseModel]] = [
    SchemaVersion,
    Company,
    Session,
    Event,
    PairingCode,
    Message,
    WebhookInbox,
    Outbox,
]
