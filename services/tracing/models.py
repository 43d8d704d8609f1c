"""Tracing's tables (task orders issued, one per incident × model × entity) and API schemas."""
from __future__ import annotations

import datetime as dt

from pydantic import BaseModel
from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from shared.db import new_registry, timestamp_field
from shared.outbox import Outbox, add_outbox_tables

registry = new_registry()
metadata = registry.metadata


class Table(SQLModel, registry=registry):
    """Base of tracing's tables."""


class IssuedTask(Table, table=True):
    """A task order a model issued for an incident and a source entity: never twice for the same three."""

    __tablename__ = "issued_task"
    __table_args__ = (UniqueConstraint("incident_id", "model_id", "entity_ref"),)
    task_id: str = Field(primary_key=True, max_length=64)
    incident_id: str = Field(index=True, max_length=64)
    model_id: str = Field(max_length=8)
    model_version: int
    entity_ref: str = Field(max_length=200)
    station_id: str | None = None
    reason: str = ""
    created_at: dt.datetime = timestamp_field()


OUTBOX = Outbox(*add_outbox_tables(metadata), source="jiaozhi/tracing")


class FiredOut(BaseModel):
    """A model that fired on an incident."""

    model_id: str
    entity_ref: str
    task_id: str
    reason: str
