"""Dispatch's request and response shapes (the tables are in models.py)."""
from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator, model_validator
from pydantic import Field as PField

from shared.batch import BatchOut, ItemResult
from shared.events import AreaType, Location, Mode, Severity, UnitKind, VehicleFacts
from shared.inputs import OffsetDatetime


class UnitIn(BaseModel):
    """A unit to create or update (idempotent on id)."""

    id: str = PField(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    name: str = PField(min_length=1, max_length=200)
    kind: UnitKind
    parent_id: str | None = None
    area_type: AreaType | None = None
    population: int | None = PField(None, ge=0)
    area_km2: float | None = PField(None, gt=0)
    area: dict | None = PField(None, description="GeoJSON Polygon or MultiPolygon (stations)")


class UnitOut(BaseModel):
    """A unit as listed."""

    model_config = ConfigDict(from_attributes=True)
    id: str
    name: str
    kind: str
    parent_id: str | None
    mode: Mode | None = None


class CentroidOut(BaseModel):
    lat: float
    lon: float


class StationOut(BaseModel):
    """A station with its area type, size and current mode."""

    id: str
    name: str
    parent_id: str | None
    area_type: AreaType | None
    population: int | None
    area_km2: float | None
    centroid: CentroidOut | None = PField(None, description="a point inside the area")
    mode: Mode | None
    mode_source: str | None


class PersonIn(BaseModel):
    """A party's person as reported; the identity number is hashed and masked on receipt."""

    id_number: str | None = PField(None, max_length=40, description="never stored or logged in full")
    name: str | None = PField(None, max_length=100)
    age: int | None = PField(None, ge=0, le=130)
    licence_status: str | None = PField(None, pattern="^(valid|none|suspended|expired)$")
    drunk: bool = False
    drugged: bool = False
    helmet: bool | None = None
    unprocessed_violations: int | None = PField(None, ge=0)
    village_id: str | None = None


class VehicleIn(VehicleFacts):
    """A party's vehicle as reported: the facts the event carries, with the plate's length checked."""

    model_config = ConfigDict(frozen=False)
    plate: str | None = PField(None, max_length=20)


class PartyIn(BaseModel):
    role: str = PField(pattern="^(driver|rider|pedestrian|passenger)$")
    person: PersonIn = PersonIn()
    vehicle: VehicleIn | None = None


class IncidentIn(BaseModel):
    """An incident reported by a police platform (idempotent on external_id)."""

    external_id: str = PField(min_length=1, max_length=200)
    kind: str = PField("accident", pattern="^[a-z_]{1,40}$")
    occurred_at: dt.datetime
    reported_at: dt.datetime | None = None
    location: Location
    severity: Severity = Severity()
    parties: list[PartyIn] = PField(default_factory=list, max_length=50)
    hit_and_run: bool = False
    lighting: str | None = PField(None, pattern="^(daylight|lit|unlit)$")
    junction: str | None = PField(None, pattern="^(none|signalled|unsignalled)$")
    school_zone: bool = False
    dispatched_at: dt.datetime | None = PField(
        None, description="back-fills only: when the incident was dispatched; live incidents are dispatched now")
    arrived_at: OffsetDatetime | None = PField(
        None, description="back-fills only: when the handling unit arrived (needs dispatched_at)")

    @field_validator("occurred_at", "reported_at", "dispatched_at", "arrived_at")
    @classmethod
    def _with_offset(cls, value: dt.datetime | None) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("timestamps need an offset, e.g. 2024-05-01T08:30:00+08:00")
        return value

    @model_validator(mode="after")
    def _arrival_after_dispatch(self) -> IncidentIn:
        if self.arrived_at is not None:
            if self.dispatched_at is None:
                raise ValueError("arrived_at needs dispatched_at (back-fills give both)")
            if self.arrived_at < self.dispatched_at:
                raise ValueError("arrived_at is before dispatched_at")
        return self


class IncidentOut(BaseModel):
    """An incident with where it landed and its dispatch times."""

    id: str
    external_id: str
    kind: str
    occurred_at: dt.datetime
    reported_at: dt.datetime
    location: Location
    station_id: str | None
    outside_area: bool
    handling_unit_id: str | None
    mode: Mode | None = PField(None, description="the station's mode when the incident was dispatched")
    dispatch_reason: str
    dispatched_at: dt.datetime | None
    arrived_at: dt.datetime | None
    response_s: float | None = PField(None, description="seconds from dispatch to arrival")
    within_5_min: bool | None = PField(None, description="arrived within 300 s of dispatch (None: not yet)")
    severity: Severity
    parties: list[dict]


# --- batches, arrivals, rates ------------------------------------------------------------------

class IncidentItemResult(ItemResult):
    """One incident of a batch: 201 created, 200 already received, 422 rejected; where it was placed."""

    station_id: str | None = None


class IncidentBatchOut(BatchOut[IncidentItemResult]):
    """Per-incident results of a batch and the counts."""


class ArrivalIn(BaseModel):
    """The handling unit's arrival at the scene."""

    arrived_at: OffsetDatetime | None = PField(
        None, description="when the unit arrived; omitted: now, by the server's clock (a tap on the phone: its own "
                          "clock does not count). Without it, reporting again once arrived changes nothing")


class ArrivalRateGroup(BaseModel):
    """Arrival figures of one group (a unit, station, mode or the district)."""

    key: str = PField(description="unit or station id, mode (`unknown` when none), or `district`")
    dispatched: int = PField(description="incidents dispatched to a unit")
    arrived: int = PField(description="of which arrival was reported")
    within_5_min: int = PField(description="of which the unit arrived within 300 s of dispatch")
    rate: float | None = PField(description="within_5_min / dispatched (None when nothing was dispatched)")
    mean_response_s: float | None = None


class ArrivalRatesOut(BaseModel):
    """The 5-minute arrival rate, grouped, for incidents that occurred in [since, until)."""

    group_by: str
    since: dt.datetime | None
    until: dt.datetime | None
    threshold_s: int = 300
    groups: list[ArrivalRateGroup]


# --- task actions -------------------------------------------------------------------------------

Action = Literal["accept", "start", "complete_milestone", "submit", "verify", "return", "reassign"]
