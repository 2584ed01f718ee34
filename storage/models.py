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


ALL_MODELS: list[type[BaseModel]] = [SchemaVersion, Company, Session, Event, PairingCode]
