"""The catalogue of tracing task models, as validated data with safe conditions."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from simpleeval import EvalWithCompoundTypes, InvalidExpression

from shared.events import Category, Source


class MilestoneSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    due_offset_h: float = Field(gt=0)


class TracingModel(BaseModel):
    """One model: when it fires (a condition over a party and the incident) and the task it issues."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[PVREC]\d{2}$")
    version: int = Field(ge=1)
    source: Source
    category: Category
    description: str
    condition: str = Field(max_length=2000)
    enabled: bool = True
    parameters: dict[str, Any] = {}
    key_points: list[str]
    milestones: list[MilestoneSpec]
    measures: list[str]
    deadline_h: float = Field(gt=0)
    examples: dict[str, list[dict[str, Any]]] = {}

    @model_validator(mode="after")
    def _condition_compiles(self) -> TracingModel:
        try:
            evaluate(self.condition, party={"role": "driver", "person": {}, "vehicle": None}, incident={},
                     parameters=self.parameters)
        except (InvalidExpression, SyntaxError) as exc:
            raise ValueError(f"{self.id}: condition does not parse: {exc}") from exc
        except Exception:  # noqa: BLE001 - the probe party is empty; only the syntax and names are checked here
            pass
        if any(m.due_offset_h > self.deadline_h for m in self.milestones):
            raise ValueError(f"{self.id}: a milestone falls after the deadline")
        return self


class Catalogue(BaseModel):
    """A versioned set of models."""

    model_config = ConfigDict(extra="forbid")
    version: int
    description: str = ""
    models: list[TracingModel]

    @classmethod
    def load(cls, path: Path) -> Catalogue:
        """Read and validate the catalogue file."""
        catalogue = cls.model_validate(json.loads(path.read_text(encoding="utf-8")))
        ids = [m.id for m in catalogue.models]
        if len(ids) != len(set(ids)):
            raise ValueError("catalogue: duplicate model ids")
        return catalogue


def evaluate(condition: str, *, party: dict[str, Any], incident: dict[str, Any], parameters: dict[str, Any]) -> bool:
    """Evaluate a condition safely (no attribute access, no calls beyond a few pure helpers)."""
    person = {"drunk": False, "drugged": False} | (party.get("person") or {})
    names = {"role": party.get("role"), "person": person, "vehicle": party.get("vehicle") or {},
             "incident": incident, "params": parameters}
    return bool(EvalWithCompoundTypes(names=names, functions={"len": len}).eval(condition))
