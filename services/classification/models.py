"""Classification's tables (stations' read copy, features, tallies, runs, modes, overrides) and API schemas."""
from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel
from pydantic import Field as PField
from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from shared.db import new_registry, timestamp_field
from shared.events import Mode
from shared.outbox import Outbox, add_outbox_tables

registry = new_registry()
metadata = registry.metadata

PERIOD_PATTERN = r"^\d{4}(-(0[1-9]|1[0-2]))?$"
FEATURE_NAME = r"^[a-z][a-z0-9_]{0,63}$"
Scaling = Literal["log", "robust", "standard", "log_robust"]


class Table(SQLModel, registry=registry):
    """Base of classification's tables."""


class Station(Table, table=True):
    """A station as dispatch announced it (read copy)."""

    id: str = Field(primary_key=True, max_length=64)
    name: str
    parent_id: str | None = Field(None, max_length=64)
    area_type: str | None = None
    population: int | None = None
    area_km2: float | None = None


class StationFeatureSet(Table, table=True):
    """Precomputed features of a station for a period (YYYY or YYYY-MM, the trailing window's end)."""

    __tablename__ = "station_feature_set"
    station_id: str = Field(primary_key=True, max_length=64)
    period: str = Field(primary_key=True, max_length=16)
    features: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    updated_at: dt.datetime = timestamp_field()


class StationTally(Table, table=True):
    """A running count for a station and local month, kept from events (accidents, deaths, violations…)."""

    __tablename__ = "station_tally"
    station_id: str = Field(primary_key=True, max_length=64)
    month: str = Field(primary_key=True, max_length=7)
    name: str = Field(primary_key=True, max_length=64)
    value: float = 0.0


class ClassificationRun(Table, table=True):
    """A versioned run: what it used and found (assignments live in `run_assignment`)."""

    __tablename__ = "classification_run"
    __table_args__ = (UniqueConstraint("version"),)
    id: str = Field(primary_key=True, max_length=64)
    version: int
    created_at: dt.datetime = timestamp_field(index=True)
    created_by: str | None = None
    status: str
    period: str | None = None
    k: int
    previous_run_id: str | None = None
    result: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class RunAssignment(Table, table=True):
    """A station's result in a run, and its mode in force after the run."""

    __tablename__ = "run_assignment"
    run_id: str = Field(primary_key=True, max_length=64)
    station_id: str = Field(primary_key=True, max_length=64)
    mode: str
    cluster: int
    distance: float
    margin: float
    outlier: bool = False
    previous_mode: str | None = Field(None, description="the model's mode for the station in the previous run")
    mode_in_force: str | None = None
    distinctive: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False))


class StationMode(Table, table=True):
    """A station's mode: the model's choice, an override beside it, and the one in force."""

    __tablename__ = "station_mode"
    station_id: str = Field(primary_key=True, max_length=64)
    model_mode: str | None = None
    run_id: str | None = None
    override_mode: str | None = None
    override_reason: str | None = None
    override_by: str | None = None
    override_at: dt.datetime | None = timestamp_field(nullable=True)
    mode: str | None = None
    updated_at: dt.datetime = timestamp_field()


OUTBOX = Outbox(*add_outbox_tables(metadata), source="jiaozhi/classification")


# --- API schemas -------------------------------------------------------------------------------

class FeaturesIn(BaseModel):
    """Precomputed features of one station for a period."""

    period: str = PField(pattern=PERIOD_PATTERN, description="YYYY or YYYY-MM: the trailing window's end")
    features: dict[str, float] = PField(min_length=1, description="feature name → value (DOMAIN.md §3 names)")


class FeaturesOut(BaseModel):
    """A station's features for a period: imported values, or computed from the events received."""

    station_id: str
    period: str
    source: Literal["import", "events"]
    features: dict[str, float]
    tallies: dict[str, float] = PField({}, description="event counts over the window (source `events`)")


class ImportOut(BaseModel):
    """What a bulk CSV import stored."""

    rows: int
    stations: int
    periods: list[str]
    features: list[str]


class DryRunStation(BaseModel):
    """A station and its features, for a what-if run."""

    id: str = PField(min_length=1, max_length=64)
    features: dict[str, float] = PField(min_length=1)


class RunIn(BaseModel):
    """Start a run over stored features, or a dry run over the stations given inline."""

    period: str | None = PField(None, pattern=PERIOD_PATTERN)
    k: int = PField(3, description="must be 3: there are three integration modes")
    dry_run: bool = False
    stations: list[DryRunStation] | None = PField(None, max_length=100_000)
    scaling: Scaling | None = PField(None, description="overrides the service's default scaling for this run")


class DistinctionOut(BaseModel):
    """A feature that sets a station or cluster apart."""

    feature: str
    value: float
    median: float = PField(description="median over all stations in the run")
    z: float = PField(description="standardised difference from the mean (median/IQR under robust scaling)")


class AssignmentOut(BaseModel):
    """A station's result."""

    station_id: str
    mode: Mode = PField(description="the model's choice")
    cluster: int
    distance: float
    margin: float = PField(description="distance to the next centroid minus distance to its own (confidence)")
    outlier: bool = False
    distinctive: list[DistinctionOut] = []
    previous_mode: Mode | None = PField(None, description="the model's choice in the previous run")
    mode_in_force: Mode | None = PField(None, description="after this run, with any override")


class OutlierOut(BaseModel):
    """A station set aside while fitting."""

    station_id: str
    reason: str
    assigned_mode: Mode


class RunDiff(BaseModel):
    """How the model's choices moved against the previous run."""

    previous_run_id: str | None = None
    moved: list[dict] = PField([], description="[{station_id, from, to}] model mode changed")
    added: list[str] = []
    removed: list[str] = []
    adjusted_rand_index: float | None = PField(None, description="agreement with the previous run on common stations")


class RunOut(BaseModel):
    """A run and its result."""

    id: str
    version: int | None = None
    status: str
    dry_run: bool = False
    period: str | None = None
    created_at: dt.datetime | None = None
    scaling: str | None = None
    features: list[str] = []
    silhouette: float | None = None
    centroids: dict[str, dict[str, float]] = {}
    sizes: dict[str, int] = {}
    distinctive: dict[str, list[DistinctionOut]] = PField({}, description="per mode: features that set it apart")
    outliers: list[OutlierOut] = []
    skipped: list[dict] = PField([], description="stations left out, with the reason")
    feature_sources: dict[str, int] = PField({}, description="how many stations used imported / event features")
    diff: RunDiff | None = None
    changed: list[dict] = PField([], description="stations whose mode in force changed with this run")
    assignments: list[AssignmentOut] = []
    assignments_total: int = 0
    assignments_next_cursor: str | None = PField(None, description="pass as `cursor` to GET the run for more")


class RunSummary(BaseModel):
    """A run in the list."""

    id: str
    version: int
    created_at: dt.datetime
    created_by: str | None = None
    status: str
    period: str | None = None
    silhouette: float | None = None
    sizes: dict[str, int] = {}
    moved: int = 0
    changed: int = 0


class OverrideIn(BaseModel):
    """A command-centre decision to set a station's mode, with its reason."""

    mode: Mode
    reason: str = PField(min_length=3, max_length=500)


class ModeOut(BaseModel):
    """A station's mode: the model's choice beside any override, and the one in force."""

    station_id: str
    mode: Mode | None
    mode_source: Literal["model", "override"] | None
    model_mode: Mode | None = None
    run_id: str | None = None
    override_mode: Mode | None = None
    override_reason: str | None = None
    override_by: str | None = None
    override_at: dt.datetime | None = None
