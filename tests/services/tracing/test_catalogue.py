"""The tracing catalogue: shipped examples fire as documented, bad catalogues are refused, conditions stay sandboxed."""
from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from simpleeval import InvalidExpression

from services.tracing.catalogue import Catalogue, TracingModel, evaluate
from services.tracing.service import matches, task_id_for
from shared.events import IncidentReported, Location, PartyFacts, PersonFacts, VehicleFacts

SHIPPED = Path(__file__).resolve().parents[3] / "services" / "tracing" / "catalogue.json"
CATALOGUE = Catalogue.load(SHIPPED)
RAW = json.loads(SHIPPED.read_text(encoding="utf-8"))


def _examples(kind: str) -> list[Any]:
    return [pytest.param(model, party, id=f"{model.id}-{kind}-{i}")
            for model in CATALOGUE.models for i, party in enumerate(model.examples.get(kind, []))]


def _model_dict(**overrides: Any) -> dict[str, Any]:
    return copy.deepcopy(RAW["models"][0]) | overrides


def test_shipped_catalogue_loads_with_models() -> None:
    assert CATALOGUE.models
    assert "P01" in {m.id for m in CATALOGUE.models}


@pytest.mark.parametrize("model", CATALOGUE.models, ids=lambda m: m.id)
def test_every_model_has_examples_that_fire_and_that_do_not(model: TracingModel) -> None:
    assert model.examples.get("fire"), f"{model.id} has no example that fires"
    assert model.examples.get("no_fire"), f"{model.id} has no example that does not fire"
    assert set(model.examples) <= {"fire", "no_fire"}


@pytest.mark.parametrize(("model", "party"), _examples("fire"))
def test_fire_example_fires(model: TracingModel, party: dict) -> None:
    assert evaluate(model.condition, party=party, incident={}, parameters=model.parameters) is True


@pytest.mark.parametrize(("model", "party"), _examples("no_fire"))
def test_no_fire_example_does_not_fire(model: TracingModel, party: dict) -> None:
    assert evaluate(model.condition, party=party, incident={}, parameters=model.parameters) is False


@pytest.mark.parametrize(("model", "party"), _examples("fire") + _examples("no_fire"))
def test_examples_are_valid_parties(model: TracingModel, party: dict) -> None:
    PartyFacts.model_validate(party)


def test_condition_that_does_not_parse_is_rejected_at_load() -> None:
    with pytest.raises(ValidationError, match="does not parse"):
        TracingModel.model_validate(_model_dict(condition="person["))


def test_condition_with_unknown_name_is_rejected_at_load() -> None:
    with pytest.raises(ValidationError, match="does not parse"):
        TracingModel.model_validate(_model_dict(condition="persn['drunk']"))


@pytest.mark.parametrize("condition", [
    "__import__('os')", "__import__('os').system('true')", "().__class__", "().__class__.__bases__[0].__subclasses__()",
    "person.__class__", "open('/etc/passwd').read()", "exec('1')", "eval('1')",
])
def test_condition_cannot_escape_the_sandbox(condition: str) -> None:
    with pytest.raises(InvalidExpression):
        evaluate(condition, party={"role": "driver", "person": {}}, incident={}, parameters={})
    with pytest.raises(ValidationError):
        TracingModel.model_validate(_model_dict(condition=condition))


def test_sandboxed_condition_has_no_side_effect(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    condition = f"__import__('os').system('touch {marker}')"
    with pytest.raises(InvalidExpression):
        evaluate(condition, party={"role": "driver", "person": {}}, incident={}, parameters={})
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


def test_milestone_on_the_deadline_is_accepted() -> None:
    model = TracingModel.model_validate(_model_dict(deadline_h=48, milestones=[{"name": "m", "due_offset_h": 48}]))
    assert model.deadline_h == 48


@pytest.mark.parametrize("bad", [{"id": "X1"}, {"id": "P1"}, {"version": 0}, {"category": "parking"},
                                 {"deadline_h": 0}, {"unexpected": True}])
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


def _incident(parties: list[PartyFacts]) -> IncidentReported:
    return IncidentReported(
        incident_id="inc-7", external_id="ext-7", kind="collision",
        occurred_at=dt.datetime(2024, 5, 1, 22, 0, tzinfo=dt.UTC), location=Location(lat=30.5, lon=114.3),
        station_id="s1", parties=parties,
    )


def _p01() -> TracingModel:
    return next(m for m in CATALOGUE.models if m.id == "P01")


def test_matches_drunk_driver_not_sober_passenger_using_id_hash() -> None:
    id_hash = "ab" * 32
    fact = _incident([
        PartyFacts(role="passenger", person=PersonFacts(id_hash="cd" * 32, drunk=False)),
        PartyFacts(role="driver", person=PersonFacts(id_hash=id_hash, drunk=True), vehicle=VehicleFacts(kind="car")),
    ])
    fired = matches(_p01(), fact)
    assert len(fired) == 1
    ref, reason = fired[0]
    assert ref == f"person:{id_hash[:32]}"
    assert "P01" in reason and "party 2" in reason and "driver" in reason


def test_matches_without_id_hash_refers_to_the_party_position() -> None:
    fact = _incident([PartyFacts(role="pedestrian"), PartyFacts(role="rider", person=PersonFacts(drugged=True))])
    assert [ref for ref, _ in matches(_p01(), fact)] == ["person:inc-7#1"]


def test_matches_nothing_on_a_sober_incident() -> None:
    fact = _incident([PartyFacts(role="driver"), PartyFacts(role="passenger", person=PersonFacts(drunk=True))])
    assert matches(_p01(), fact) == []
