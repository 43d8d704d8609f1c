"""Dispatch's tables: units, incidents, task orders and their history (API shapes: schemas.py, task_views.py)."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Column, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel

from shared.db import new_registry, timestamp_field
from shared.outbox import Outbox, add_outbox_tables

registry = new_registry()
metadata = registry.metadata


class Table(SQLModel, registry=registry):
    """Base of dispatch's tables."""


class Unit(Table, table=True):
    """A station, squadron or brigade office, with its area (stations) and current mode (read copy)."""

    id: str = Field(primary_key=True, max_length=64)
    name: str
    kind: str = Field(index=True)
    parent_id: str | None = Field(default=None, index=True)
    area_type: str | None = None
    population: int | None = None
    area_km2: float | None = None
    area: dict | None = Field(default=None, sa_column=Column(JSON))
    centroid_lat: float | None = None
    centroid_lon: float | None = None
    mode: str | None = None
    mode_source: str | None = None
    updated_at: dt.datetime = timestamp_field(nullable=False)


class Incident(Table, table=True):
    """A received incident, placed in a station area and dispatched to a handling unit."""

    id: str = Field(primary_key=True, max_length=64)
    external_id: str = Field(unique=True, max_length=200)
    kind: str
    occurred_at: dt.datetime = timestamp_field(nullable=False, index=True)
    reported_at: dt.datetime = timestamp_field(nullable=False)
    lat: float
    lon: float
    station_id: str | None = Field(default=None, index=True)
    outside_area: bool = False
    handling_unit_id: str | None = Field(default=None, index=True)
    mode: str | None = None  # the station's mode when the incident was dispatched
    dispatch_reason: str = ""
    dispatched_at: dt.datetime | None = timestamp_field(nullable=True)
    arrived_at: dt.datetime | None = timestamp_field(nullable=True)
    response_s: float | None = None  # arrived_at - dispatched_at, in seconds
    arrived_by: str | None = None
    reported_by: str = ""
    details: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: dt.datetime = timestamp_field(nullable=False, index=True)


class TaskOrder(Table, table=True):
    """A task order routed to exactly one unit."""

    __tablename__ = "task_order"

    id: str = Field(primary_key=True, max_length=64)
    incident_id: str | None = Field(default=None, index=True)
    model_id: str
    source: str
    entity_ref: str
    category: str = Field(index=True)
    station_id: str | None = Field(default=None, index=True)
    unit_id: str = Field(index=True)
    status: str = Field(index=True)
    version: int = 1  # bumped by every change; writes are conditional on it (no lost updates across replicas)
    deadline_at: dt.datetime = timestamp_field(nullable=False, index=True)
    next_milestone_due_at: dt.datetime | None = timestamp_field(nullable=True, index=True)
    overdue_at: dt.datetime | None = timestamp_field(nullable=True)
    escalated_at: dt.datetime | None = timestamp_field(nullable=True)
    escalated_to: str | None = Field(default=None, index=True)
    model_version: int | None = None  # the tracing model version that issued it (None: received as a v1 event)
    model_name: dict | None = Field(default=None, sa_column=Column(JSON, nullable=True))  # {zh-CN, en}
    key_points: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False))  # [{code, text}]
    milestones: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False))  # [{code, text, due_at…}]
    measures: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False))  # [{code, text}]
    routing_reason: str = ""
    created_at: dt.datetime = timestamp_field(nullable=False, index=True)
    updated_at: dt.datetime = timestamp_field(nullable=False)


class TaskHistory(Table, table=True):
    """One step in a task order's life: who did what, when and why."""

    __tablename__ = "task_history"
    __table_args__ = (UniqueConstraint("task_id", "seq"),)
    id: int | None = Field(default=None, primary_key=True)
    task_id: str = Field(index=True)
    seq: int
    action: str
    from_status: str | None = None
    to_status: str
    by: str
    at: dt.datetime = timestamp_field(nullable=False)
    note: str = ""
    milestone: str | None = None
    evidence: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False))


class TaskPhoto(Table, table=True):
    """A photo taken as evidence for a task order: its clean copy (services/dispatch/images.py) and thumbnail,
    stored in the database so every replica reads it and every backup holds it."""

    __tablename__ = "task_photo"
    __table_args__ = (UniqueConstraint("task_id", "sha256"),)  # the same bytes again: the same photo
    id: str = Field(primary_key=True, max_length=64)
    task_id: str = Field(index=True, max_length=64)
    sha256: str = Field(max_length=64)  # of the upload as received
    kind: str = Field(max_length=8)  # jpeg, png, heic (as uploaded)
    content_type: str = Field(max_length=32)  # as stored
    width: int
    height: int
    size: int
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    thumbnail: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    lat: float | None = None
    lon: float | None = None
    uploaded_by: str
    uploaded_at: dt.datetime = timestamp_field(nullable=False, index=True)
    attached_action: str | None = Field(default=None, max_length=32)  # complete_milestone or submit
    attached_milestone: str | None = Field(default=None, max_length=200)
    attached_at: dt.datetime | None = timestamp_field(nullable=True)


class RoutingVersion(Table, table=True):
    """One version of the routing table (the newest is in force); the shipped file seeds version 1."""

    __tablename__ = "routing_version"
    version: int = Field(primary_key=True)
    body: dict = Field(sa_column=Column(JSON, nullable=False))
    created_by: str
    created_at: dt.datetime = timestamp_field(nullable=False)


class DirectoryRevision(Table, table=True):
    """One row counting changes to units (`units`) and to station areas (`areas`).

    Bumped in the transaction of every such change; replicas compare it with the revision of their
    in-memory unit directory (services/dispatch/directory.py) before routing.
    """

    __tablename__ = "directory_revision"
    id: int = Field(primary_key=True)
    units: int = 1
    areas: int = 1


OUTBOX = Outbox(*add_outbox_tables(metadata), source="jiaozhi/dispatch")
