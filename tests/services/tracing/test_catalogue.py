"""The tracing catalogue: all 24 models ship with examples that behave, bad models are refused, conditions sandboxed."""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from simpleeval import InvalidExpression

from services.tracing.catalogue import Catalogue, TracingModel, evaluate
from services.tracing.examples import check_examples, run_example
from services.tracing.service import task_id_for

SHIPPED = Path(__file__).resolve().parents[3] / "services" / "tracing" / "catalogue.json"
CATALOGUE = Catalogue.load(SHIPPED)
RAW = json.loads(SHIPPED.read_text(encoding="utf-8"))
ALL_IDS = [f"P0{i}" for i in range(1, 9)] + [f"V0{i}" for i in range(1, 7)] + [f"R0{i}" for i in range(1, 6)] + \
    ["E01", "E02", "E03", "C01", "C02"]


def _examples(kind: str) -> list[Any]:
    return [pytest.param(model, example, id=f"{model.id}-{kind}-{i}")
            for model in CATALOGUE.models for i, example in enumerate(getattr(model.examples, kind))]


def _model_dict(model_id: str = "P01", **overrides: Any) -> dict[str, Any]:
    return copy.deepcopy(next(m for m in RAW["models"] if m["id"] == model_id)) | overrides


def test_the_catalogue_holds_exactly_the_24_models_of_the_spec() -> None:
    assert [m.id for m in CATALOGUE.models] == ALL_IDS
    assert {m.source for m in CATALOGUE.models} == {"person", "vehicle", "road", "enterprise", "village"}
    assert {m.category for m in CATALOGUE.models} == {"personal_education", "personal_penalty",
                                                      "enterprise_rectification", "enterprise_penalty",
                                                      "hazard_remediation"}


@pytest.mark.parametrize(("model", "example"), _examples("fire"))
def test_must_fire_example_fires(model: TracingModel, example: dict) -> None:
    fired = run_example(model, example, CATALOGUE.engine)
    assert fired and all(f.model.id == model.id for f in fired)


@pytest.mark.parametrize(("model", "example"), _examples("no_fire"))
def test_must_not_fire_example_does_not_fire(model: TracingModel, example: dict) -> None:
    assert run_example(model, example, CATALOGUE.engine) == []


def test_a_changed_threshold_is_caught_by_the_models_own_examples() -> None:
    model = TracingModel.model_validate(_model_dict("R02", parameters={"radius_m": 100, "window_days": 90,
                                                                       "min_accidents": 3}))
    with pytest.raises(ValueError, match="fire\\[0\\] did not fire"):
        check_examples(model)


def test_a_model_without_must_not_fire_examples_is_rejected() -> None:
    with pytest.raises(ValidationError):
        TracingModel.model_validate(_model_dict(examples={"fire": [{}], "no_fire": []}))


def test_condition_that_does_not_parse_is_rejected_at_load() -> None:
    with pytest.raises(ValidationError, match="does not parse"):
        TracingModel.model_validate(_model_dict(condition="person["))


def test_condition_with_unknown_name_is_rejected_at_load() -> None:
    with pytest.raises(ValidationError, match="unknown name 'persn'"):
        TracingModel.model_validate(_model_dict(condition="party['role'] == 'x' and persn['drunk']"))


def test_comprehensions_are_rejected_at_load() -> None:
    with pytest.raises(ValidationError, match="ListComp"):
        TracingModel.model_validate(_model_dict(condition="[x for x in (1, 2)]"))


def test_condition_calling_an_unknown_function_is_rejected_at_load() -> None:
    with pytest.raises(ValidationError, match="may be called"):
        TracingModel.model_validate(_model_dict(condition="open('/etc/passwd')"))


@pytest.mark.parametrize("condition", [
    "__import__('os')", "__import__('os').system('true')", "().__class__", "().__class__.__bases__[0].__subclasses__()",
    "person.__class__", "open('/etc/passwd').read()", "exec('1')", "eval('1')",
])
def test_condition_cannot_escape_the_sandbox(condition: str) -> None:
    with pytest.raises(InvalidExpression):
        evaluate(condition, names={"person": {}}, functions={})
    with pytest.raises(ValidationError):
        TracingModel.model_validate(_model_dict(condition=condition))


def test_sandboxed_condition_has_no_side_effect(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    with pytest.raises(InvalidExpression):
        evaluate(f"__import__('os').system('touch {marker}')", names={}, functions={})
    assert not marker.exists()


def test_duplicate_model_ids_are_rejected(tmp_path: Path) -> None:
    data = copy.deepcopy(RAW)
    data["models"].append(copy.deepcopy(data["models"][0]))
    path = tmp_path / "catalogue.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ValueError, match="duplicate"):
        Catalogue.load(path)


def test_milestone_after_deadline_is_rejected() -> None:
    spec = _model_dict(deadline_h=48, milestones=[{"name": "early", "due_offset_h": 24},
                                                  {"name": "late", "due_offset_h": 49}])
    with pytest.raises(ValidationError, match="after the deadline"):
        TracingModel.model_validate(spec)


def test_milestones_out_of_order_are_rejected() -> None:
    spec = _model_dict(milestones=[{"name": "b", "due_offset_h": 48}, {"name": "a", "due_offset_h": 24}])
    with pytest.raises(ValidationError, match="not in order"):
        TracingModel.model_validate(spec)


def test_milestone_on_the_deadline_is_accepted() -> None:
    model = TracingModel.model_validate(_model_dict(deadline_h=48, milestones=[{"name": "m", "due_offset_h": 48}]))
    assert model.deadline_h == 48


@pytest.mark.parametrize("bad", [{"id": "X1"}, {"id": "P1"}, {"id": "V01"}, {"version": 0}, {"category": "parking"},
                                 {"deadline_h": 0}, {"unexpected": True}, {"key_points": []},
                                 {"entity": "planet"}])
def test_malformed_model_fields_are_rejected(bad: dict) -> None:
    with pytest.raises(ValidationError):
        TracingModel.model_validate(_model_dict(**bad))


def test_task_id_is_deterministic() -> None:
    assert task_id_for("inc-1", "P01", "person:abc") == task_id_for("inc-1", "P01", "person:abc")
    assert task_id_for("inc-1", "P01", "person:abc").startswith("task-")


@pytest.mark.parametrize("other", [("inc-2", "P01", "person:abc"), ("inc-1", "P02", "person:abc"),
                                   ("inc-1", "P01", "person:abd")])
def test_task_id_differs_per_incident_model_and_entity(other: tuple[str, str, str]) -> None:
    assert task_id_for(*other) != task_id_for("inc-1", "P01", "person:abc")


def test_a_model_saved_before_bilingual_texts_loads_with_codes_and_chinese() -> None:
    legacy = _model_dict("P01")
    legacy |= {"name_zh": legacy["name"]["zh-CN"], "description": legacy["description"]["en"],
               "key_points": [k["text"]["en"] for k in legacy["key_points"]],
               "measures": [m["text"]["en"] for m in legacy["measures"]] + ["edited later, English only"],
               "milestones": [{"name": m["text"]["en"], "due_offset_h": m["due_offset_h"]}
                              for m in legacy["milestones"]]}
    del legacy["name"]
    model = TracingModel.model_validate(legacy)
    assert [m.code for m in model.milestones] == ["case_opened", "penalty_decided", "education_session_held"]
    assert model.milestones[0].text == {"zh-CN": "立案", "en": "case opened"}
    assert model.description["zh-CN"] == "当事人酒后或吸毒后驾驶机动车" and model.name["zh-CN"] == "酒驾毒驾"
    assert [m.code for m in model.measures] == ["m1", "m2", "m3", "m4"]
    assert model.measures[3].text == {"zh-CN": "edited later, English only", "en": "edited later, English only"}
