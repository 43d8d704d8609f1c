"""The catalogue of tracing task models, as validated, versioned data with sandboxed conditions."""
from __future__ import annotations

import ast
import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from simpleeval import EvalWithCompoundTypes, InvalidExpression

from shared.events import Category, Source
from shared.texts import TextLine, Texts, upgrade_legacy_model

Entity = Literal["person", "vehicle", "road", "hazard", "enterprise", "village", "incident"]

#: the names a condition may read, per evaluation (see engine.Context)
NAMES = frozenset({"incident", "station", "party", "person", "vehicle", "road", "hazard", "enterprise", "village",
                   "params", "True", "False", "None"})
#: the pure helpers a condition may call (history and spatial counts come from the engine's index)
FUNCTIONS = frozenset({"len", "min", "max", "accidents_near", "person_accidents", "operator_accidents",
                       "village_accidents"})
ID_LETTER = {"person": "P", "vehicle": "V", "road": "R", "enterprise": "E", "village": "C"}
DEFAULT_ENTITY: dict[str, Entity] = {"person": "person", "vehicle": "vehicle", "road": "road",
                                     "enterprise": "enterprise", "village": "village"}


class MilestoneSpec(TextLine):
    """One ordered step (工作节点) of the task order, by stable code, due some hours after the task is issued."""

    due_offset_h: float = Field(gt=0, le=24 * 366)


class Examples(BaseModel):
    """Scenarios that must and must not fire the model; run at load, on update and as tests."""

    model_config = ConfigDict(extra="forbid")
    fire: list[dict[str, Any]] = Field(min_length=1)
    no_fire: list[dict[str, Any]] = Field(min_length=1)


class TracingModel(BaseModel):
    """One model: when it fires (a condition over one entity of a traced incident) and the task it issues."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[PVREC]\d{2}$")
    version: int = Field(ge=1)
    source: Source
    entity: Entity | None = Field(None, description="what one task is about; defaults to the source")
    category: Category
    name: Texts = Field(description="the model's short name, zh-CN and en")
    description: Texts
    condition: str = Field(min_length=1, max_length=2000, description="a simpleeval expression, never eval")
    enabled: bool = True
    parameters: dict[str, Any] = {}
    key_points: list[TextLine] = Field(min_length=1, description="工作要点, by code")
    milestones: list[MilestoneSpec] = Field(min_length=1, description="工作节点 in order, by stable code")
    measures: list[TextLine] = Field(min_length=1, description="工作措施, by code")
    deadline_h: float = Field(gt=0)
    examples: Examples

    @property
    def entity_kind(self) -> Entity:
        """The kind of entity the model is evaluated on, one task per matching entity."""
        return self.entity or DEFAULT_ENTITY[self.source]

    @model_validator(mode="before")
    @classmethod
    def _upgraded(cls, data: Any) -> Any:
        return upgrade_legacy_model(data)  # a revision saved before the texts were bilingual

    @model_validator(mode="after")
    def _checked(self) -> TracingModel:
        if self.entity is None and self.source not in DEFAULT_ENTITY:
            raise ValueError(f"{self.id}: no entity")
        for what, lines in (("key point", self.key_points), ("milestone", self.milestones),
                            ("measure", self.measures)):
            codes = [line.code for line in lines]
            if len(codes) != len(set(codes)):
                raise ValueError(f"{self.id}: two {what}s share a code")
        check_condition(self.id, self.condition)
        offsets = [m.due_offset_h for m in self.milestones]
        if offsets != sorted(offsets):
            raise ValueError(f"{self.id}: milestones are not in order")
        if offsets[-1] > self.deadline_h:
            raise ValueError(f"{self.id}: a milestone falls after the deadline")
        if self.id[0] != ID_LETTER[self.source]:
            raise ValueError(f"{self.id}: the id's letter does not match source {self.source}")
        return self


class EngineParams(BaseModel):
    """How far the engine looks around an incident before the models' own thresholds apply."""

    model_config = ConfigDict(extra="forbid")
    hazard_search_m: float = Field(300, gt=0, le=5000, description="open hazards this close become candidates")
    section_match_m: float = Field(30, gt=0, le=500, description="an incident this close to a section is on it")


class Catalogue(BaseModel):
    """A versioned set of models."""

    model_config = ConfigDict(extra="forbid")
    version: int
    description: str = ""
    engine: EngineParams = EngineParams()
    models: list[TracingModel]

    @model_validator(mode="after")
    def _unique(self) -> Catalogue:
        ids = [m.id for m in self.models]
        if len(ids) != len(set(ids)):
            raise ValueError("catalogue: duplicate model ids")
        return self

    @classmethod
    def load(cls, path: Path) -> Catalogue:
        """Read and validate the catalogue file (shape and conditions; engine.check_examples runs the examples)."""
        return cls.model_validate(json.loads(path.read_text(encoding="utf-8")))

    def get(self, model_id: str) -> TracingModel | None:
        """The model with this id."""
        return next((m for m in self.models if m.id == model_id), None)

    def replaced(self, model: TracingModel) -> Catalogue:
        """A copy with one model replaced by its new version."""
        return Catalogue(version=self.version, description=self.description, engine=self.engine,
                         models=[model if m.id == model.id else m for m in self.models])


@lru_cache(maxsize=512)
def parse(condition: str) -> ast.Expr:
    """The parsed condition (cached: every incident evaluates the same few dozen expressions)."""
    return ast.parse(condition.strip()).body[0]  # type: ignore[return-value]


def check_condition(model_id: str, condition: str) -> None:
    """Refuse a condition that does not parse or reads a name or calls a function outside the sandbox."""
    try:
        tree = ast.parse(condition.strip(), mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"{model_id}: condition does not parse: {exc.msg}") from exc
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
                raise ValueError(f"{model_id}: condition does not parse: only {sorted(FUNCTIONS)} may be called")
        elif isinstance(node, ast.Name) and node.id not in NAMES | FUNCTIONS:
            raise ValueError(f"{model_id}: condition does not parse: unknown name {node.id!r}")
        elif isinstance(node, ast.Attribute):
            raise ValueError(f"{model_id}: condition does not parse: attribute access is not allowed")
        elif isinstance(node, ast.Lambda | ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp):
            raise ValueError(f"{model_id}: condition does not parse: {type(node).__name__} is not allowed")


def evaluate(condition: str, *, names: dict[str, Any], functions: dict[str, Any]) -> bool:
    """Evaluate a condition in the sandbox (simpleeval: no attribute access, no imports, only given helpers)."""
    evaluator = EvalWithCompoundTypes(names=names, functions={"len": len, "min": min, "max": max} | functions)
    try:
        return bool(evaluator.eval(condition, previously_parsed=parse(condition)))
    except InvalidExpression:
        raise
    except SyntaxError as exc:
        raise InvalidExpression(str(exc)) from exc
