"""The nine indicators as data: the default set from `data/indicators.json`, validated; edits as versions."""
from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.assessment.schemas import IndicatorChangeIn
from shared.errors import Invalid

DATA = Path(__file__).with_name("data")

Formula = Literal["per_10k", "ratio", "change_vs_last_year", "per_planned_hours", "first_last_reduction"]


class Measurement(BaseModel):
    """How an indicator's value is measured from the daily measures."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    formula: Formula
    numerator: list[str] = Field(min_length=1)
    denominator: list[str] = []
    scale: float = 1.0
    planned_hours_per_day: float = 8.0
    absent: Literal["missing", "zero"] = Field(
        "missing", description="no records: `missing` shows null; `zero` counts 0 if the station reported anything")

    @model_validator(mode="after")
    def _needs(self) -> Measurement:
        if self.formula == "ratio" and not self.denominator:
            raise ValueError("a ratio needs a denominator")
        return self


class Indicator(BaseModel):
    """One indicator: definition, unit, direction, floor, target, weight and measurement."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    id: str = Field(pattern=r"^[a-z_]+$")
    part: Literal["outcome", "process"]
    name: str
    name_zh: str = ""
    definition: str
    unit: str
    direction: Literal["higher", "lower"]
    floor: float
    target: float
    weight: float = Field(ge=0, le=100)
    measurement: Measurement

    @model_validator(mode="after")
    def _direction(self) -> Indicator:
        if self.direction == "higher" and not self.target > self.floor:
            raise ValueError(f"{self.id}: higher is better, so the target must exceed the floor")
        if self.direction == "lower" and not self.target < self.floor:
            raise ValueError(f"{self.id}: lower is better, so the target must be below the floor")
        return self


class IndicatorSet(BaseModel):
    """The whole scoring rule for a scope: parts, colour thresholds and the nine indicators."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    parts: dict[Literal["outcome", "process"], float]
    thresholds: dict[Literal["blue", "yellow"], float]
    indicators: list[Indicator]

    @model_validator(mode="after")
    def _consistent(self) -> IndicatorSet:
        ids = [i.id for i in self.indicators]
        if len(set(ids)) != len(ids):
            raise ValueError("indicator ids must be unique")
        if set(self.parts) != {"outcome", "process"} or abs(sum(self.parts.values()) - 100) > 1e-9:
            raise ValueError("parts outcome and process must add up to 100")
        for part, points in self.parts.items():
            weights = sum(i.weight for i in self.indicators if i.part == part)
            if abs(weights - points) > 1e-9:
                raise ValueError(f"{part} weights add up to {weights:g}, not {points:g}")
        if set(self.thresholds) != {"blue", "yellow"} or not self.thresholds["blue"] > self.thresholds["yellow"]:
            raise ValueError("thresholds need blue > yellow")
        return self

    def by_id(self) -> dict[str, Indicator]:
        """Indicators keyed by id."""
        return {i.id: i for i in self.indicators}


@cache
def default_set() -> IndicatorSet:
    """The default indicator set (version 0), validated at load."""
    return IndicatorSet.model_validate(json.loads((DATA / "indicators.json").read_text(encoding="utf-8")))


def apply_change(base: IndicatorSet, change: IndicatorChangeIn) -> IndicatorSet:
    """A new set: `base` with the change's weights, targets, floors and thresholds; Invalid if inconsistent."""
    known = base.by_id()
    unknown = sorted(set(change.indicators) - set(known))
    if unknown:
        raise Invalid(f"unknown indicators: {', '.join(unknown)}",
                      errors=[{"loc": ["body", "indicators", u], "msg": "unknown indicator"} for u in unknown])
    body = base.model_dump()
    for item in body["indicators"]:
        patch = change.indicators.get(item["id"])
        if patch is not None:
            item.update(patch.model_dump(exclude_none=True))
    if change.thresholds is not None:
        body["thresholds"] = change.thresholds
    try:
        return IndicatorSet.model_validate(body)
    except ValueError as exc:
        raise Invalid(f"the changed indicator set is inconsistent: {exc}") from exc
