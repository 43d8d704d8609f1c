"""The routing table as validated data: who handles an incident, who receives a task order."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from shared.events import Category

Target = Literal["station", "squadron", "case_squadron", "order_squadron"]
MODES = ("basic", "deep", "full")


class Cell(BaseModel):
    """A cell with exceptions for particular models."""

    model_config = ConfigDict(extra="forbid")
    default: Target
    by_model: dict[str, Target] = {}


class RoutingTable(BaseModel):
    """Category × mode → target; and mode → who handles incidents."""

    model_config = ConfigDict(extra="forbid")
    version: int
    description: str = ""
    incident_handler: dict[Literal["basic", "deep", "full", "unknown"], Target]
    tasks: dict[Category, dict[Literal["basic", "deep", "full"], Target | Cell]]

    @classmethod
    def load(cls, path: Path) -> RoutingTable:
        """Read and validate the table; every category must have every mode."""
        table = cls.model_validate(json.loads(path.read_text(encoding="utf-8")))
        for category, row in table.tasks.items():
            missing = set(MODES) - set(row)
            if missing:
                raise ValueError(f"routing table: {category} lacks modes {sorted(missing)}")
        return table

    def task_target(self, *, category: str, mode: str | None, model_id: str) -> tuple[Target, str]:
        """The target kind for a task order, and the reason in words."""
        effective = mode if mode in MODES else "deep"
        cell = self.tasks[category][effective]  # type: ignore[index]
        why = f"{category} in a {effective}-mode area"
        if mode not in MODES:
            why += " (station mode not yet known: routed as deep)"
        if isinstance(cell, Cell):
            if model_id in cell.by_model:
                return cell.by_model[model_id], f"{why}, model {model_id} exception"
            return cell.default, why
        return cell, why

    def incident_target(self, mode: str | None) -> Target:
        """The target kind that handles an accident in an area of this mode."""
        return self.incident_handler[mode if mode in MODES else "unknown"]  # type: ignore[index]
