"""Classification's tables (stations' read copy, features, runs, modes and overrides) and API schemas."""
from __future__ import annotations

import datetime as dt

from pydantic import BaseModel
from pydantic import Field as PField
from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from shared.db import new_registry, timestamp_field
from shared.events import Mode
from shared.outbox import Outbox, add_outbox_tables

registry = new_registry()
metadata = registry.metadata


class Table(SQLModel, registry=registry):
    """Base of classification's tables."""


class Station(Table, table=True):
    """A station as dispatch announced it (read copy)."""

    id: str = Field(primary_key=True, max_length=64)
    name: str
    area_type: str | None = None
    population: int | None = None
    area_km2: float | None = None


class StationFeature(Table, table=True):
    """One feature value of a station for a period (YYYY or YYYY-MM, the trailing window's end)."""

    __tablename__ = "station_feature"
    station_id: str = Field(primary_key=True, max_length=64)
    period: str = Field(primary_key=True, max_length=16)
    name: str = Field(primary_key=True, max_length=64)
    value: float
    updated_at: dt.datetime = timestamp_field()


class ClassificationRun(Table, table=True):
    """A versioned run: what it used, what it found."""

    __tablename__ = "classification_run"
    id: str = Field(primary_key=True, max_length=64)
    created_at: dt.datetime = timestamp_field(index=True)
    status: str
    period: str | None = None
    k: int
    result: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class StationMode(Table, table=True):
    """A station's mode: the model's choice, an override beside it, and the one in force."""

    __tablename__ = "station_mode"
    station_id: str = Field(primary_key=True, max_length=64)
    model_mode: str | None = None
    run_id: str | None = None
    override_mode: str | None = None
    override_reason: str | None = None
    mode: str | None = None
    updated_at: dt.datetime = timestamp_field()


OUTBOX = Outbox(*add_outbox_tables(metadata), source="jiaozhi/classification")


class FeaturesIn(BaseModel):
    """Precomputed features of one station for a period."""

    period: str = PField(pattern=r"^\d{4}(-\d{2})?$", description="YYYY or YYYY-MM: the window's end")
    features: dict[str, float] = PField(min_length=1)


class DryRunStation(BaseModel):
    id: str
    features: dict[str, float]


class RunIn(BaseModel):
    """Start a run over stored features, or a dry run over the stations given inline."""

    period: str | None = PField(None, pattern=r"^\d{4}(-\d{2})?$")
    k: int = 3
    dry_run: bool = False
    stations: list[DryRunStation] | None = None


class AssignmentOut(BaseModel):
    station_id: str
    mode: Mode
    cluster: int
    distance: float
    margin: float


class RunOut(BaseModel):
    """A run and its result."""

    id: str
    status: str
    dry_run: bool = False
    period: str | None = None
    features: list[str] = []
    silhouette: float | None = None
    centroids: dict[str, dict[str, float]] = {}
    sizes: dict[str, int] = {}
    assignments: list[AssignmentOut] = []
    changed: list[dict] = PField([], description="stations whose mode in force changed with this run")
