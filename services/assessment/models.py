"""Assessment's tables: records, daily measures, read copies, indicator versions, scores, jobs, history.

The API's request and response shapes are in `schemas.py`."""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Column, Index, LargeBinary
from sqlmodel import Field, SQLModel

from shared.db import new_registry, timestamp_field
from shared.outbox import Outbox, add_outbox_tables

registry = new_registry()
metadata = registry.metadata


class Table(SQLModel, registry=registry):
    """Base of assessment's tables."""


class UnitCopy(Table, table=True):
    """What assessment knows of a unit: the tree and population as dispatch announced them (scoping, rates), and a
    station's mode in force as classification announced it (ranking within modes). A station classified before
    dispatch announced it has only its mode: `name` and `kind` stay None until the unit is announced."""

    __tablename__ = "unit_copy"
    id: str = Field(primary_key=True, max_length=64)
    name: str | None = None
    kind: str | None = None
    parent_id: str | None = Field(None, index=True, max_length=64)
    area_type: str | None = None
    population: int | None = None
    mode: str | None = Field(None, max_length=16)
    updated_at: dt.datetime = timestamp_field()


class Activity(Table, table=True):
    """An activity record (education, dissuasion, checks, violations…) as a platform sent it."""

    __tablename__ = "activity"
    id: str = Field(primary_key=True, max_length=64)
    external_id: str = Field(unique=True, max_length=200)
    kind: str = Field(max_length=40)
    station_id: str = Field(index=True, max_length=64)
    occurred_at: dt.datetime = timestamp_field()
    day: dt.date = Field(index=True)
    count: float = 1
    value: float | None = None
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    recorded_by: str = Field(max_length=100)
    created_at: dt.datetime = timestamp_field()


class Measure(Table, table=True):
    """One measured quantity of a station on a local day (`education`, `incident.accident`, …), summed.

    The one place counts are kept: scores, the board, reports and tallies all read it (docs/ASSESSMENT.md)."""

    __tablename__ = "measure"
    __table_args__ = (Index("ix_measure_day", "day", "measure"),)
    station_id: str = Field(primary_key=True, max_length=64)
    day: dt.date = Field(primary_key=True)
    measure: str = Field(primary_key=True, max_length=80)
    value: float = 0


class TaskCopy(Table, table=True):
    """A task order's life as dispatch announced it: for the board's due and overdue orders."""

    __tablename__ = "task_copy"
    id: str = Field(primary_key=True, max_length=64)
    station_id: str | None = Field(None, index=True, max_length=64)
    unit_id: str = Field(max_length=64)
    model_id: str = Field(max_length=20)
    category: str = Field(max_length=40)
    status: str = Field(max_length=40)
    deadline_at: dt.datetime | None = timestamp_field(nullable=True)
    created_at: dt.datetime | None = timestamp_field(nullable=True)
    closed_at: dt.datetime | None = timestamp_field(nullable=True)
    overdue_at: dt.datetime | None = timestamp_field(nullable=True)
    escalated_at: dt.datetime | None = timestamp_field(nullable=True)


class IndicatorVersion(Table, table=True):
    """A full indicator set (weights, targets, floors, colour thresholds) in force for a scope, versioned."""

    __tablename__ = "indicator_version"
    version: int = Field(primary_key=True)
    period_from: str | None = Field(None, max_length=7, description="first month it applies to; None: all")
    period_to: str | None = Field(None, max_length=7, description="last month it applies to; None: open")
    mode: str | None = Field(None, max_length=10, description="the mode it applies to; None: every mode")
    body: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    note: str = ""
    created_by: str = Field(max_length=100)
    created_at: dt.datetime = timestamp_field()


class PublishedScore(Table, table=True):
    """The last score announced per station and month, so `score.updated` goes out only on change."""

    __tablename__ = "published_score"
    station_id: str = Field(primary_key=True, max_length=64)
    period: str = Field(primary_key=True, max_length=7)
    mode: str | None = None
    total: float | None = None
    colour: str | None = None
    computed_at: dt.datetime = timestamp_field()


class DirtyPeriod(Table, table=True):
    """A month whose records changed since its scores were last announced."""

    __tablename__ = "dirty_period"
    period: str = Field(primary_key=True, max_length=7)
    marked_at: dt.datetime = timestamp_field()


class ReportJob(Table, table=True):
    """A report built in the background, kept in the database so every replica can answer for it."""

    __tablename__ = "report_job"
    id: str = Field(primary_key=True, max_length=64)
    owner: str = Field(index=True, max_length=100, description="the requester's username: only they see it")
    role: str = Field(max_length=20)
    unit_id: str | None = Field(None, max_length=64)
    kind: str = Field(max_length=10)
    period: str = Field(max_length=30)
    format: str = Field(max_length=5)
    station_id: str | None = Field(None, max_length=64)
    status: str = Field(max_length=10, description="running | done | failed")
    error: str | None = Field(None, max_length=200)
    body: bytes | None = Field(None, sa_column=Column(LargeBinary, nullable=True))
    size: int | None = None
    replica: str = Field(max_length=100, description="host and pid of the replica that builds it")
    created_at: dt.datetime = timestamp_field(index=True)
    finished_at: dt.datetime | None = timestamp_field(nullable=True)


class HistoryMeasure(Table, table=True):
    """An imported historical monthly figure of a station (for months before the system held records)."""

    __tablename__ = "history_measure"
    station_id: str = Field(primary_key=True, max_length=64)
    month: str = Field(primary_key=True, max_length=7)
    measure: str = Field(primary_key=True, max_length=80)
    value: float
    imported_by: str = Field(max_length=100)
    updated_at: dt.datetime = timestamp_field()


OUTBOX = Outbox(*add_outbox_tables(metadata), source="jiaozhi/assessment")
