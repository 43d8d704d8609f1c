"""The gateway's own tables: accounts (officers and platform clients), the audit log of writes, idempotency keys,
failed logins (back-off) and issued refresh tokens (rotation, reuse detection, logout).

No domain data lives here: only who may log in and what they changed, when (and, for a day, the answers to
writes sent with an idempotency key).
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import Column, LargeBinary, Text
from sqlmodel import Field, SQLModel

from shared.db import new_registry, timestamp_field

registry = new_registry()
metadata = registry.metadata


class Table(SQLModel, registry=registry):
    """Base of the gateway's tables."""


class Account(Table, table=True):
    """An officer (`kind=user`, password grant) or an integrating platform (`kind=client`, client credentials)."""

    __tablename__ = "account"
    username: str = Field(primary_key=True, max_length=64)
    kind: str = Field(max_length=8)
    role: str = Field(max_length=16)
    unit_id: str | None = Field(None, max_length=64)
    secret_hash: str = Field(max_length=256)
    disabled: bool = False
    created_at: dt.datetime = timestamp_field()
    updated_at: dt.datetime = timestamp_field()


class AuditEntry(Table, table=True):
    """One write (or login) through the gateway: who, what, the outcome. Never a body."""

    __tablename__ = "audit_entry"
    id: int | None = Field(None, primary_key=True)
    at: dt.datetime = timestamp_field(index=True)
    username: str | None = Field(None, max_length=64, index=True)
    role: str | None = Field(None, max_length=16)
    method: str = Field(max_length=8)
    path: str = Field(max_length=512)
    status: int
    request_id: str | None = Field(None, max_length=128)
    client: str | None = Field(None, max_length=64)


class IdempotencyKey(Table, table=True):
    """A write sent with `Idempotency-Key`: who, which key, a fingerprint of the request, and (once answered)
    the answer to replay to a retry. In the gateway's database, so every gateway replica and worker shares it;
    pruned after `idempotency_ttl_h` (gateway/retention.py)."""

    __tablename__ = "idempotency_key"
    username: str = Field(primary_key=True, max_length=64)
    key: str = Field(primary_key=True, max_length=255)
    fingerprint: str = Field(max_length=64)
    created_at: dt.datetime = timestamp_field(index=True)
    status: int | None = None  # None while the first request is in flight
    headers: str | None = Field(None, sa_column=Column(Text, nullable=True))
    body: bytes | None = Field(None, sa_column=Column(LargeBinary, nullable=True))


class LoginFailure(Table, table=True):
    """Failed logins of one account from one client address: after a few, each further one must wait longer.

    Kept in the database so every worker and replica sees the same count; a success deletes the row."""

    __tablename__ = "login_failure"
    username: str = Field(primary_key=True, max_length=64)
    client: str = Field(primary_key=True, max_length=64)
    failures: int = 0
    blocked_until: dt.datetime | None = timestamp_field(nullable=True)
    updated_at: dt.datetime = timestamp_field(index=True)


class RefreshToken(Table, table=True):
    """One refresh token issued (by its `jti`), in the family of one login: traded once for the next one.

    A token traded again after the grace window is a theft or a replay: its whole family is revoked.
    Logging out revokes the family too."""

    __tablename__ = "refresh_token"
    jti: str = Field(primary_key=True, max_length=64)
    family: str = Field(max_length=64, index=True)
    username: str = Field(max_length=64, index=True)
    issued_at: dt.datetime = timestamp_field()
    expires_at: dt.datetime = timestamp_field(index=True)
    used_at: dt.datetime | None = timestamp_field(nullable=True)
    revoked_at: dt.datetime | None = timestamp_field(nullable=True)
