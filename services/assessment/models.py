"""Assessment's tables (daily tallies per station, stations' modes) and API schemas."""
from __future__ import annotations

import datetime as dt

from pydantic import BaseModel
from pydantic import Field as PField
from sqlmodel import Field, SQLModel

from shared.db import new_registry, timestamp_field
from shared.outbox import Outbox, add_outbox_tables

registry = new_registry()
metadata = registry.metadata


class Table(SQLModel, registry=registry):
    """Base of assessment's tables."""


class StationDay(Table, table=True):
    """What happened at a station on one local calendar day, counted from events."""

    __tablename__ = "station_day"
    station_id: str = Field(primary_key=True, max_length=64)
    day: dt.date = Field(primary_key=True)
    incidents: int = 0
    deaths: int = 0
    injuries: int = 0
    tasks_created: int = 0
    updated_at: dt.datetime = timestamp_field()


class StationModeCopy(Table, table=True):
    """A station's mode in force (read copy from classification), for ranking within modes."""

    __tablename__ = "station_mode"
    station_id: str = Field(primary_key=True, max_length=64)
    mode: str
    updated_at: dt.datetime = timestamp_field()


OUTBOX = Outbox(*add_outbox_tables(metadata), source="jiaozhi/assessment")


class TallyOut(BaseModel):
    """A station's counts over a period."""

    station_id: str
    mode: str | None
    incidents: int
    deaths: int
    injuries: int
    tasks_created: int


class TalliesOut(BaseModel):
    period: str = PField(description="YYYY-MM, local calendar month")
    stations: list[TallyOut]
