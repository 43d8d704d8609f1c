"""Tracing's API schemas: registry records in and out, batch results, the trace, catalogue updates."""
from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.tracing.inputs import MAX_COUNT, StrictIn
from shared.events import Location, VehicleKind
from shared.i18n import Lang
from shared.inputs import OffsetDatetime
from shared.texts import TextLine

KEY = r"^[A-Za-z0-9_.:-]+$"


class PersonIn(StrictIn):
    """A person; the identity number is hashed and masked on receipt and never stored or logged."""

    id_number: str = Field(min_length=4, max_length=40, description="natural key; stored only as keyed hash")
    name: str | None = Field(None, max_length=100)
    age: int | None = Field(None, ge=0, le=130)
    licence_status: Literal["valid", "none", "suspended", "expired"] | None = None
    unprocessed_violations: int | None = Field(None, ge=0, le=MAX_COUNT)
    village_id: str | None = Field(None, max_length=64, pattern=KEY)


class PersonOut(BaseModel):
    """A person as shown: a reference and the masked number, never the number or its hash."""

    id: str = Field(description="the first 32 hex digits of the keyed hash; task entity refs use it")
    id_masked: str | None
    name: str | None
    age: int | None
    licence_status: str | None
    unprocessed_violations: int | None
    village_id: str | None
    registered: bool = Field(description="False while only known from incidents")


class VehicleIn(StrictIn):
    """A vehicle, keyed by its plate (compared without spaces or dashes, upper case)."""

    plate: str = Field(min_length=1, max_length=20, pattern=r"[A-Za-z0-9]")
    kind: VehicleKind = "other"
    inspection_due: dt.date | None = None
    scrapped: bool = False
    modified: bool = False
    operator_id: str | None = Field(None, max_length=64, pattern=KEY)
    unprocessed_violations: int | None = Field(None, ge=0, le=MAX_COUNT)


class VehicleOut(BaseModel):
    """A vehicle as stored (also one only known from incidents: no input constraints re-checked on the way out)."""

    model_config = ConfigDict(extra="ignore")
    plate: str
    kind: str
    inspection_due: dt.date | None
    scrapped: bool
    modified: bool
    operator_id: str | None
    unprocessed_violations: int | None
    registered: bool


Rate = Field(None, ge=0, le=1)


class EnterpriseIn(StrictIn):
    """A vehicle operator with its three rates; `fleet` plates are linked to it (created if unknown)."""

    id: str = Field(min_length=1, max_length=64, pattern=KEY)
    name: str | None = Field(None, max_length=200)
    inspection_rate: float | None = Rate
    scrapping_rate: float | None = Rate
    violation_clearing_rate: float | None = Rate
    fleet: list[str] | None = Field(None, max_length=5000, description="plates of the operator's vehicles")

    @field_validator("fleet")
    @classmethod
    def _plates(cls, value: list[str] | None) -> list[str] | None:
        for plate in value or []:
            if not any(ch.isalnum() for ch in plate) or len(plate) > 20:
                raise ValueError(f"fleet plate {plate!r} is not a plate")
        return value


class EnterpriseOut(BaseModel):
    """An operator with its fleet."""

    id: str
    name: str | None
    inspection_rate: float | None
    scrapping_rate: float | None
    violation_clearing_rate: float | None
    fleet: list[str]
    fleet_size: int
    registered: bool


class VillageIn(StrictIn):
    """A village or urban community."""

    id: str = Field(min_length=1, max_length=64, pattern=KEY)
    name: str | None = Field(None, max_length=200)
    kind: Literal["village", "community"] = "village"
    residents: int | None = Field(None, ge=0, le=MAX_COUNT)
    station_id: str | None = Field(None, max_length=64)


class VillageOut(BaseModel):
    """A village as stored (also one only known from incidents, whose id need not look like a registry key)."""

    model_config = ConfigDict(extra="ignore")
    id: str
    name: str | None
    kind: str
    residents: int | None
    station_id: str | None
    registered: bool


class RoadSectionIn(StrictIn):
    """A road section with its GeoJSON LineString (or MultiLineString) geometry."""

    id: str = Field(min_length=1, max_length=64, pattern=KEY)
    name: str | None = Field(None, max_length=200)
    geometry: dict[str, Any] = Field(description="GeoJSON LineString or MultiLineString, [lon, lat] order")
    lit: bool | None = None
    signalised: bool | None = Field(None, description="its junctions have signals")
    school_zone: bool = False
    speed_limit: int | None = Field(None, ge=0, le=200)

    @field_validator("geometry")
    @classmethod
    def _lines(cls, value: dict[str, Any]) -> dict[str, Any]:
        lines(value)
        return value


class RoadSectionOut(BaseModel):
    """A road section as stored."""

    model_config = ConfigDict(extra="ignore")
    id: str
    name: str | None
    geometry: dict[str, Any]
    lit: bool | None
    signalised: bool | None
    school_zone: bool
    speed_limit: int | None


class HazardIn(StrictIn):
    """A hazard point, open until remediated."""

    id: str = Field(min_length=1, max_length=64, pattern=KEY)
    kind: str = Field("other", max_length=64)
    description: str = Field("", max_length=2000)
    location: Location
    status: Literal["open", "remediated"] = "open"
    road_section_id: str | None = Field(None, max_length=64)
    found_at: OffsetDatetime | None = None
    remediated_at: OffsetDatetime | None = None


class HazardOut(BaseModel):
    """A hazard point as stored."""

    model_config = ConfigDict(extra="ignore")
    id: str
    kind: str
    description: str
    location: Location
    status: str
    road_section_id: str | None
    found_at: dt.datetime | None
    remediated_at: dt.datetime | None


class FiredOut(BaseModel):
    """A model that fired on an incident, why, and the task order it issued."""

    model_id: str
    model_version: int
    entity_ref: str
    task_id: str
    reason: str
    issued: bool = Field(description="False for a back-filled historical incident: recorded, no task order sent")


class TraceOut(BaseModel):
    """What tracing found for each source of an incident and which models fired."""

    incident_id: str
    external_id: str
    station_id: str | None
    occurred_at: dt.datetime
    traced_at: dt.datetime
    historical: bool = Field(description="older than the back-fill horizon when traced: no task orders sent")
    sources: dict[str, list[dict[str, Any]]]
    fired: list[FiredOut]


Line = Field(min_length=1, max_length=500)
MAX_EXAMPLES = 50


class ModelUpdate(StrictIn):
    """A change to a tracing model; the result is validated (its examples too) and saved as a new version."""

    name: dict[Lang, Annotated[str, Line]] | None = Field(None, description="zh-CN and/or en; the other kept")
    description: dict[Lang, Annotated[str, Line]] | None = Field(None, description="zh-CN and/or en; the other kept")
    condition: str | None = Field(None, min_length=1, max_length=2000)
    enabled: bool | None = None
    parameters: dict[str, Any] | None = Field(None, max_length=50)
    key_points: list[TextLine] | None = Field(None, max_length=50, description="[{code, text: {zh-CN, en}}]")
    milestones: list[dict[str, Any]] | None = Field(None, max_length=20,
                                                    description="[{code, text: {zh-CN, en}, due_offset_h}]")
    measures: list[TextLine] | None = Field(None, max_length=50, description="[{code, text: {zh-CN, en}}]")
    deadline_h: float | None = Field(None, gt=0, le=24 * 366, description="hours, at most a year")
    examples: dict[str, Any] | None = Field(None, max_length=2)

    @field_validator("examples")
    @classmethod
    def _few_examples(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        for key, cases in (value or {}).items():
            if isinstance(cases, list) and len(cases) > MAX_EXAMPLES:
                raise ValueError(f"at most {MAX_EXAMPLES} {key} examples (each one is run on every change)")
        return value


def lines(geometry: dict[str, Any]) -> list[list[tuple[float, float]]]:
    """The (lat, lon) polylines of a GeoJSON LineString or MultiLineString; ValueError otherwise."""
    kind, coords = geometry.get("type"), geometry.get("coordinates")
    if kind == "LineString":
        parts = [coords]
    elif kind == "MultiLineString" and isinstance(coords, list):
        parts = coords
    else:
        raise ValueError("geometry must be a GeoJSON LineString or MultiLineString")
    result = []
    for part in parts:
        if not isinstance(part, list) or len(part) < 2:
            raise ValueError("a line needs at least two positions")
        line = []
        for pos in part:
            if not (isinstance(pos, list | tuple) and len(pos) >= 2
                    and all(isinstance(v, int | float) for v in pos[:2])):
                raise ValueError("a position is [lon, lat]")
            lon, lat = float(pos[0]), float(pos[1])
            if not (-180 <= lon <= 180 and -90 <= lat <= 90):
                raise ValueError("a position is out of range ([lon, lat] order)")
            line.append((lat, lon))
        result.append(line)
    return result
