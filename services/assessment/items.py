"""Report items: the task items of the daily, weekly and monthly reports (from `data/report_items.json`) and how
one item's value comes from a station's (or the district's) summed measures."""
from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict


class Item(BaseModel):
    """A report task item: a sum, a ratio or a per-10k rate of daily measures."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    id: str
    section: str
    name: str
    name_zh: str
    unit: str
    formula: dict[str, Any]


class ItemCatalogue(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    sections: dict[str, str]
    items: list[Item]


@cache
def catalogue() -> ItemCatalogue:
    """The report items from `data/report_items.json`, validated at load."""
    path = Path(__file__).with_name("data") / "report_items.json"
    cat = ItemCatalogue.model_validate(json.loads(path.read_text(encoding="utf-8")))
    for item in cat.items:
        if item.section not in cat.sections or not ({"sum"} == set(item.formula) or {"per_10k"} == set(item.formula)
                                                     or {"ratio", "den", "scale"} == set(item.formula)):
            raise ValueError(f"report item {item.id}: bad section or formula")
    return cat


def item_value(item: Item, sums: dict[str, float], population: float | None, months: float) -> float | None:
    """An item's value for one station's (or the district's) sums; None when there is no data."""
    if not sums:
        return None
    f = item.formula
    if "sum" in f:
        return round(sum(sums.get(m, 0.0) for m in f["sum"]), 4)
    if "per_10k" in f:
        if not population:
            return None
        return round(sum(sums.get(m, 0.0) for m in f["per_10k"]) / population * 10_000 / months, 4)
    den = sum(sums.get(m, 0.0) for m in f["den"])
    return round(sum(sums.get(m, 0.0) for m in f["ratio"]) / den * f["scale"], 4) if den else None
