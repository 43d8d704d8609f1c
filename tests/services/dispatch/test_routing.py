"""The routing table: every category × mode cell, the model exceptions and the incident handler."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from services.dispatch.routing import MODES, RoutingTable

SHIPPED = Path(__file__).resolve().parents[3] / "services" / "dispatch" / "routing.json"

# DOMAIN.md section 5: category -> (basic, deep, full); "one-stop station" in full mode is the station
DOMAIN = {
    "personal_education": ("station", "station", "station"),
    "personal_penalty": ("squadron", "station", "station"),
    "enterprise_rectification": ("squadron", "squadron", "station"),
    "enterprise_penalty": ("case_squadron", "case_squadron", "case_squadron"),
    "hazard_remediation": ("order_squadron", "station", "station"),
}
CELLS = [(category, mode, targets[i]) for category, targets in DOMAIN.items() for i, mode in enumerate(MODES)]


@pytest.fixture(scope="module")
def table() -> RoutingTable:
    return RoutingTable.load(SHIPPED)


def test_table_covers_exactly_the_domain_categories(table: RoutingTable) -> None:
    assert set(table.tasks) == set(DOMAIN)


@pytest.mark.parametrize(("category", "mode", "target"), CELLS, ids=[f"{c}-{m}" for c, m, _ in CELLS])
def test_task_target_matches_the_domain_table(table: RoutingTable, category: str, mode: str, target: str) -> None:
    got, reason = table.task_target(category=category, mode=mode, model_id="X99")
    assert got == target
    assert category in reason and f"{mode}-mode" in reason
    assert "not yet known" not in reason


def test_p08_in_deep_personal_penalty_goes_to_case_squadron(table: RoutingTable) -> None:
    target, reason = table.task_target(category="personal_penalty", mode="deep", model_id="P08")
    assert target == "case_squadron"
    assert "P08" in reason and "exception" in reason


@pytest.mark.parametrize("mode", ["basic", "full"])
def test_p08_exception_only_applies_in_deep_mode(table: RoutingTable, mode: str) -> None:
    target, _ = table.task_target(category="personal_penalty", mode=mode, model_id="P08")
    assert target == DOMAIN["personal_penalty"][MODES.index(mode)]


def test_other_models_in_deep_personal_penalty_go_to_station(table: RoutingTable) -> None:
    target, reason = table.task_target(category="personal_penalty", mode="deep", model_id="P01")
    assert target == "station"
    assert "exception" not in reason


@pytest.mark.parametrize("mode", [None, "unknown", "", "BASIC"])
@pytest.mark.parametrize("category", list(DOMAIN))
def test_unknown_mode_routes_as_deep_and_says_so(table: RoutingTable, category: str, mode: str | None) -> None:
    target, reason = table.task_target(category=category, mode=mode, model_id="X99")
    assert target == DOMAIN[category][MODES.index("deep")]
    assert "deep-mode" in reason and "routed as deep" in reason


def test_unknown_mode_keeps_the_deep_model_exception(table: RoutingTable) -> None:
    target, reason = table.task_target(category="personal_penalty", mode=None, model_id="P08")
    assert target == "case_squadron"
    assert "routed as deep" in reason


@pytest.mark.parametrize(("mode", "target"), [
    ("basic", "squadron"), ("deep", "station"), ("full", "station"), (None, "station"), ("bogus", "station"),
])
def test_incident_target_by_mode(table: RoutingTable, mode: str | None, target: str) -> None:
    assert table.incident_target(mode) == target


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "routing.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _shipped_data() -> dict:
    return json.loads(SHIPPED.read_text(encoding="utf-8"))


def test_table_missing_a_mode_is_refused(tmp_path: Path) -> None:
    data = _shipped_data()
    del data["tasks"]["hazard_remediation"]["full"]
    with pytest.raises(ValueError, match=r"hazard_remediation lacks modes \['full'\]"):
        RoutingTable.load(_write(tmp_path, data))


def test_table_with_unknown_target_is_refused(tmp_path: Path) -> None:
    data = _shipped_data()
    data["tasks"]["personal_education"]["basic"] = "brigade"
    with pytest.raises(ValidationError):
        RoutingTable.load(_write(tmp_path, data))


def test_table_with_unknown_category_is_refused(tmp_path: Path) -> None:
    data = _shipped_data()
    data["tasks"]["parking"] = {"basic": "station", "deep": "station", "full": "station"}
    with pytest.raises(ValidationError):
        RoutingTable.load(_write(tmp_path, data))


def test_cell_with_unknown_key_is_refused(tmp_path: Path) -> None:
    data = _shipped_data()
    data["tasks"]["personal_education"]["deep"] = {"default": "station", "by_modle": {"P01": "squadron"}}
    with pytest.raises(ValidationError):
        RoutingTable.load(_write(tmp_path, data))
