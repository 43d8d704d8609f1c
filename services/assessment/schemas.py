"""Assessment's API schemas: what requests carry and responses show (the tables are in `models.py`)."""
from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic import Field as PField

from services.assessment.inputs import MAX_AMOUNT, MAX_YEAR, MIN_YEAR, MONTH, UNIT_ID, Amount, StrictIn
from shared.batch import BatchOut, ItemResult
from shared.events import ActivityKind, Mode

Colour = Literal["blue", "yellow", "red"]

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


Detail = Annotated[str, PField(max_length=200)] | float | bool | None


class ActivityIn(StrictIn):
    """An activity record. `count`: people educated/dissuaded, checks made, hazards remediated, violations
    recorded, post hours; details per kind: violation `{type}`, hazard_remediation `{found}`,
    helmet_check `{wearing}`, map_colour `{colour}`."""

    external_id: str = PField(min_length=1, max_length=200)
    kind: ActivityKind
    station_id: str = PField(min_length=1, max_length=64, pattern=UNIT_ID)
    occurred_at: dt.datetime
    count: float = PField(1, ge=0, le=1_000_000)
    value: float | None = PField(None, ge=-MAX_AMOUNT, le=MAX_AMOUNT)
    details: dict[Annotated[str, PField(max_length=40)], Detail] = PField(default_factory=dict, max_length=20)

    @model_validator(mode="after")
    def _kind_details(self) -> ActivityIn:
        if self.occurred_at.tzinfo is None:
            raise ValueError("occurred_at needs a UTC offset")
        if not MIN_YEAR + 1 <= self.occurred_at.year <= MAX_YEAR - 1:
            raise ValueError(f"occurred_at must fall between {MIN_YEAR + 1} and {MAX_YEAR - 1}")
        d = self.details
        if self.kind == "violation" and d.get("type", "other") not in VIOLATION_TYPES:
            raise ValueError(f"violation details.type must be one of {sorted(VIOLATION_TYPES)}")
        if self.kind == "map_colour" and d.get("colour") not in ("green", "yellow", "red"):
            raise ValueError("map_colour needs details.colour: green, yellow or red")
        for key in ("found", "wearing"):
            if key in d and (isinstance(d[key], bool) or not isinstance(d[key], int | float) or d[key] < 0):
                raise ValueError(f"details.{key} must be a number ≥ 0")
        if self.kind == "helmet_check" and isinstance(d.get("wearing"), int | float) and d["wearing"] > self.count:
            raise ValueError("details.wearing cannot exceed count (riders checked)")
        return self


VIOLATION_TYPES = frozenset({"drunk_driving", "drugged_driving", "helmet", "overload", "speeding", "other"})


class ActivityOut(BaseModel):
    """An accepted activity record."""

    id: str
    external_id: str
    kind: str
    station_id: str
    occurred_at: dt.datetime
    day: dt.date = PField(description="local calendar day it counts on")
    count: float
    value: float | None
    details: dict[str, Any]
    station_known: bool = PField(True, description="the station is in assessment's unit copy (false: accepted "
                                                   "anyway, the unit list may lag; check the id)")


class ActivityResult(ItemResult):
    """One activity of a batch (the shared result; rejected items read as problems)."""

    station_id: str | None = None
    station_known: bool | None = None


class ActivityBatchOut(BatchOut[ActivityResult]):
    unknown_stations: list[str] = PField(default_factory=list,
                                         description="station ids accepted but not (yet) known as stations")


class HistoryIn(StrictIn):
    """Precomputed measures of one station for one month before the system held records."""

    station_id: str = PField(min_length=1, max_length=64, pattern=UNIT_ID)
    month: str = PField(pattern=MONTH, description=f"YYYY-MM, {MIN_YEAR}-{MAX_YEAR}")
    measures: dict[Annotated[str, PField(max_length=80)], Amount] = PField(
        min_length=1, max_length=100,
        description="measure (or alias: accidents, deaths, injuries) → value for the month, 0 to 1e9")


class HistoryResult(ItemResult):
    """One history item: 201 new measures stored, 200 only replaced or unchanged, 422 rejected."""

    station_id: str | None = None
    month: str | None = None
    station_known: bool | None = None


class HistoryBatchOut(BatchOut[HistoryResult]):
    unknown_stations: list[str] = PField(default_factory=list)


class HistoryRowOut(BaseModel):
    station_id: str
    month: str
    measure: str
    value: float
    imported_by: str
    updated_at: dt.datetime


class ReportJobOut(BaseModel):
    """A report job: `running`, then `done` (with `file`) or `failed` (with `error`)."""

    id: str
    status: Literal["running", "done", "failed"]
    kind: str
    period: str
    format: str
    station_id: str | None = None
    created_at: dt.datetime
    finished_at: dt.datetime | None = None
    expires_at: dt.datetime
    size: int | None = None
    error: str | None = None
    file: str | None = None


class IndicatorScoreOut(BaseModel):
    """An indicator's measured value (None: no data), its points and its weight."""

    value: float | None
    score: float | None
    weight: float
    target: float
    floor: float
    unit: str


class StationScoreOut(BaseModel):
    """A station's score over a period."""

    station_id: str
    name: str | None = None
    mode: Mode | None
    total: float | None = PField(description="0-100; None when a whole part has no data")
    outcome: float | None = PField(description="0-30 points")
    process: float | None = PField(description="0-70 points")
    complete: bool = PField(description="every indicator had data")
    indicators: dict[str, IndicatorScoreOut]
    rank_in_mode: int | None
    colour: Colour | None
    previous_total: float | None = None
    trend: float | None = PField(None, description="total minus the previous period's total")
    trend_direction: Literal["up", "down", "flat"] | None = None


class ScoresOut(BaseModel):
    period: str
    start: dt.date
    end: dt.date = PField(description="last day included")
    indicator_versions: dict[str, int] = PField(description="mode → indicator-set version used (0: defaults)")
    stations: list[StationScoreOut]


class ThemeOut(BaseModel):
    """One theme of the daily board for a station."""

    theme: str
    name: str
    unit: str
    target: float | None
    actual: float | None
    progress: float | None = PField(description="actual ÷ pro-rata target")
    colour: Colour
    overdue_tasks: list[str] = PField(default_factory=list, description="open task orders past deadline")


class StationBoardOut(BaseModel):
    station_id: str
    name: str | None
    mode: Mode | None
    themes: list[ThemeOut]


class BoardOut(BaseModel):
    date: dt.date
    elapsed: float = PField(description="share of the day gone (1 for past days): the pro-rata factor")
    stations: list[StationBoardOut]


#: how far an indicator's target or floor may lie from zero (values are counts per 10k, percentages, ratios)
MAX_GOAL = 1e6


class IndicatorPatch(StrictIn):
    """Changes to one indicator; omitted fields stay as they were."""

    model_config = ConfigDict(extra="forbid")
    weight: float | None = PField(None, ge=0, le=100)
    target: float | None = PField(None, ge=-MAX_GOAL, le=MAX_GOAL)
    floor: float | None = PField(None, ge=-MAX_GOAL, le=MAX_GOAL)


class IndicatorChangeIn(StrictIn):
    """A new version of the indicator set for a scope (months and mode)."""

    model_config = ConfigDict(extra="forbid")
    period_from: str | None = PField(None, pattern=MONTH, description=f"YYYY-MM, {MIN_YEAR}-{MAX_YEAR}")
    period_to: str | None = PField(None, pattern=MONTH, description=f"YYYY-MM, {MIN_YEAR}-{MAX_YEAR}")
    mode: Mode | None = None
    indicators: dict[Annotated[str, PField(max_length=40)], IndicatorPatch] = PField(default_factory=dict,
                                                                                       max_length=20)
    thresholds: dict[Literal["blue", "yellow"], Annotated[float, PField(ge=0, le=100)]] | None = PField(
        None, description="{blue: min total, yellow: min total}, 0-100")
    note: str = PField("", max_length=2000)


class IndicatorVersionOut(BaseModel):
    version: int
    period_from: str | None
    period_to: str | None
    mode: str | None
    note: str
    created_by: str | None
    created_at: dt.datetime | None
    body: dict[str, Any]
