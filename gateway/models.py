"""The gateway's own tables: accounts (officers and platform clients) and the audit log of writes.

No domain data lives here: only who may log in and what they changed, when.
"""
from __future__ import annotations

import datetime as dt

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
