"""Tracing's tables: traced incidents, task orders issued, source registries, catalogue revisions, units.

The tables each replica mirrors in memory (traced incidents, road sections, hazard points, model revisions) carry
a `seq` change stamp from `change_clock`; see services/tracing/changes.py.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from shared.db import new_registry, timestamp_field
from shared.outbox import Outbox, add_outbox_tables

registry = new_registry()
metadata = registry.metadata


class Table(SQLModel, registry=registry):
    """Base of tracing's tables."""


#: `seq` of a row written in a transaction that has not committed yet (stamped from the clock at commit)
UNSTAMPED = -1


def seq_field() -> Any:
    """The change stamp of a mirrored row: the change clock's value when the writing transaction committed."""
    return Field(default=UNSTAMPED, index=True)


class ChangeClock(Table, table=True):
    """One row counting the commits that changed a mirrored table; its row lock orders those commits."""

    __tablename__ = "change_clock"
    id: int = Field(primary_key=True)
    n: int = 0


class IssuedTask(Table, table=True):
    """A model that fired for an incident and a source entity: never twice for the same three.

    `issued` is False for back-filled historical incidents: recorded for the trace, no task order sent.
    """

    __tablename__ = "issued_task"
    __table_args__ = (UniqueConstraint("incident_id", "model_id", "entity_ref"),)
    task_id: str = Field(primary_key=True, max_length=64)
    incident_id: str = Field(index=True, max_length=64)
    model_id: str = Field(max_length=8, index=True)
    model_version: int
    entity_ref: str = Field(max_length=200)
    station_id: str | None = None
    reason: str = ""
    issued: bool = True
    created_at: dt.datetime = timestamp_field()


class TracedIncident(Table, table=True):
    """An accident as tracing saw it: where, when, who, and what it found for each source."""

    __tablename__ = "traced_incident"
    incident_id: str = Field(primary_key=True, max_length=64)
    external_id: str = Field(max_length=200)
    station_id: str | None = Field(default=None, index=True, max_length=64)
    handling_unit_id: str | None = Field(default=None, max_length=64)
    occurred_at: dt.datetime = timestamp_field(index=True)
    lat: float
    lon: float
    junction: str | None = Field(default=None, max_length=16)
    persons: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    operators: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    villages: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    historical: bool = False
    sources: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    traced_at: dt.datetime = timestamp_field()
    seq: int = seq_field()


class UnitCopy(Table, table=True):
    """A read copy of a dispatch unit (from dispatch.unit.upserted) and its mode (from classification)."""

    __tablename__ = "unit_copy"
    id: str = Field(primary_key=True, max_length=64)
    kind: str = Field(max_length=32)
    parent_id: str | None = Field(default=None, index=True, max_length=64)
    area_type: str | None = Field(default=None, max_length=16)
    mode: str | None = Field(default=None, max_length=16)


class Person(Table, table=True):
    """A person, known only by the keyed hash of their identity number (and a mask for display)."""

    id_hash: str = Field(primary_key=True, max_length=64)
    ref: str = Field(unique=True, max_length=32)
    id_masked: str | None = Field(default=None, max_length=40)
    name: str | None = Field(default=None, max_length=100)
    age: int | None = None
    licence_status: str | None = Field(default=None, max_length=16)
    unprocessed_violations: int | None = None
    village_id: str | None = Field(default=None, max_length=64)
    registered: bool = False
    updated_at: dt.datetime = timestamp_field()


class Vehicle(Table, table=True):
    """A vehicle by plate (upper case, letters and digits only)."""

    plate: str = Field(primary_key=True, max_length=20)
    kind: str = Field(default="other", max_length=32)
    inspection_due: dt.date | None = None
    scrapped: bool = False
    modified: bool = False
    operator_id: str | None = Field(default=None, index=True, max_length=64)
    unprocessed_violations: int | None = None
    registered: bool = False
    updated_at: dt.datetime = timestamp_field()


class Enterprise(Table, table=True):
    """A vehicle operator with its "three rates" (0–1)."""

    id: str = Field(primary_key=True, max_length=64)
    name: str | None = Field(default=None, max_length=200)
    inspection_rate: float | None = None
    scrapping_rate: float | None = None
    violation_clearing_rate: float | None = None
    registered: bool = False
    updated_at: dt.datetime = timestamp_field()


class Village(Table, table=True):
    """A village or urban community (村社)."""

    id: str = Field(primary_key=True, max_length=64)
    name: str | None = Field(default=None, max_length=200)
    kind: str = Field(default="village", max_length=16)
    residents: int | None = None
    station_id: str | None = Field(default=None, max_length=64)
    registered: bool = False
    updated_at: dt.datetime = timestamp_field()


class RoadSection(Table, table=True):
    """A road section: GeoJSON LineString geometry and its attributes."""

    __tablename__ = "road_section"
    id: str = Field(primary_key=True, max_length=64)
    name: str | None = Field(default=None, max_length=200)
    geometry: dict = Field(sa_column=Column(JSON, nullable=False))
    lit: bool | None = None
    signalised: bool | None = None
    school_zone: bool = False
    speed_limit: int | None = None
    updated_at: dt.datetime = timestamp_field()
    seq: int = seq_field()


class HazardPoint(Table, table=True):
    """A hazard point found on the roads, open until remediated."""

    __tablename__ = "hazard_point"
    id: str = Field(primary_key=True, max_length=64)
    kind: str = Field(default="other", max_length=64)
    description: str = ""
    lat: float
    lon: float
    status: str = Field(default="open", max_length=16, index=True)
    road_section_id: str | None = Field(default=None, max_length=64)
    found_at: dt.datetime | None = timestamp_field(nullable=True)
    remediated_at: dt.datetime | None = timestamp_field(nullable=True)
    updated_at: dt.datetime = timestamp_field()
    seq: int = seq_field()


class ModelRevision(Table, table=True):
    """A version of a tracing model saved through the API (the file holds version 1..n shipped)."""

    __tablename__ = "model_revision"
    model_id: str = Field(primary_key=True, max_length=8)
    version: int = Field(primary_key=True)
    body: dict = Field(sa_column=Column(JSON, nullable=False))
    changed_by: str = Field(max_length=100)
    changed_at: dt.datetime = timestamp_field()
    seq: int = seq_field()


OUTBOX = Outbox(*add_outbox_tables(metadata), source="jiaozhi/tracing")
