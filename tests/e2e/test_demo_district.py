"""The calibrated demo district: layout, the article's figures within ±2 %, determinism, and its classification."""
from __future__ import annotations

import datetime as dt
import itertools
from zoneinfo import ZoneInfo

import pytest
from shapely.geometry import Point, shape

from deploy.demo import features_csv
from deploy.demo_district import District, features_of, generate
from services.classification.classifier import classify
from services.classification.service import parse_features_csv

ANCHOR = dt.datetime(2026, 5, 20, 15, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


@pytest.fixture(scope="module")
def district() -> District:
    return generate(2021, anchor=ANCHOR)


def stations(d: District) -> list[dict]:
    return [u for u in d.units if u["kind"] == "station"]


def test_26_stations_six_urban_fifteen_rural_five_fringe_with_parents(district: District) -> None:
    by_type = {t: [s for s in stations(district) if s["area_type"] == t] for t in ("urban", "rural", "fringe")}
    assert {t: len(v) for t, v in by_type.items()} == {"urban": 6, "rural": 15, "fringe": 5}
    assert {s["parent_id"] for s in by_type["urban"]} == {"sq-urban"}
    assert {s["parent_id"] for s in by_type["rural"]} == {"sq-rural-1", "sq-rural-2", "sq-rural-3"}
    assert {s["parent_id"] for s in by_type["fringe"]} == {"brigade"}
    kinds = {u["id"]: u["kind"] for u in district.units}
    assert {kinds[k] for k in ("brigade", "case-squadron", "order-squadron")} == {
        "brigade", "case_squadron", "order_squadron"}
    assert 1.5e6 < sum(s["population"] for s in stations(district)) < 2.5e6
    assert all(s["area_km2"] > 5 for s in stations(district))


def test_areas_do_not_overlap_and_ps_yiqiao_holds_the_point_other_tests_use(district: District) -> None:
    polygons = {s["id"]: shape(s["area"]) for s in stations(district)}
    for (a, pa), (b, pb) in itertools.combinations(polygons.items(), 2):
        assert pa.intersection(pb).area < 1e-9, (a, b)
    assert [sid for sid, p in polygons.items() if p.contains(Point(120.45, 30.10))] == ["ps-yiqiao"]
    assert all(29.6 < p.centroid.y < 30.6 and 119.9 < p.centroid.x < 120.9 for p in polygons.values())


def test_the_article_figures_hold_within_two_percent(district: District) -> None:
    calibration = district.calibration()
    targets = {"congestion_alarm": (3497, "urban", 0.614), "disorder_complaint": (3955, "fringe", 0.602),
               "deaths": (96, "rural", 0.740)}
    for key, (total, area_type, share) in targets.items():
        got = calibration[key]
        assert abs(got["total"] - total) <= 0.02 * total, (key, got)
        assert abs(got["share"] - share) <= 0.02, (key, got)
        assert got[area_type] == round(got["total"] * got["share"])


def test_stations_vary_inside_an_area_type(district: District) -> None:
    types = {s["id"]: s["area_type"] for s in stations(district)}
    for feature in ("congestion_alarms_per_10k", "accidents_per_10k", "violations_per_10k"):
        urban = [f[feature] for sid, f in district.features.items() if types[sid] == "urban"]
        assert max(urban) > 1.2 * min(urban), feature
    # not tidy blobs: some features overlap between area types
    rural_acc = [f["accidents_per_10k"] for sid, f in district.features.items() if types[sid] == "rural"]
    urban_acc = [f["accidents_per_10k"] for sid, f in district.features.items() if types[sid] == "urban"]
    assert max(urban_acc) > min(rural_acc)


def test_the_same_seed_gives_the_same_district_and_another_seed_another(district: District) -> None:
    again = generate(2021, anchor=ANCHOR)
    assert again.features == district.features and again.units == district.units
    other = generate(7, anchor=ANCHOR)
    assert other.features != district.features


def test_records_fall_in_the_12_months_up_to_the_anchor(district: District) -> None:
    first = min(r["occurred_at"] for r in district.incidents)
    last = max(r["occurred_at"] for r in district.incidents)
    assert first >= dt.datetime(2025, 6, 1, tzinfo=ZoneInfo("Asia/Shanghai")) and last <= ANCHOR
    incidents, activities = district.recent(30)
    assert incidents and activities
    assert all(r["occurred_at"] >= ANCHOR - dt.timedelta(days=30) for r in incidents)


def test_the_district_classifies_exactly_as_the_article_reports(district: District) -> None:
    ids = sorted(district.features)
    result = classify(ids, [district.features[i] for i in ids])
    types = {s["id"]: s["area_type"] for s in stations(district)}
    expected = {"urban": "basic", "rural": "deep", "fringe": "full"}
    assert {a.station_id: a.mode for a in result.assignments} == {i: expected[types[i]] for i in ids}


def test_the_bulk_csv_carries_the_features_unchanged(district: District) -> None:
    sets = parse_features_csv(features_csv(district), max_rows=100)
    assert {sid for sid, _ in sets} == set(district.features)
    for (sid, period), values in sets.items():
        assert period == district.period
        assert values == pytest.approx(district.features[sid], rel=1e-6)


def test_features_are_the_aggregation_of_the_records(district: District) -> None:
    recomputed = features_of(district.units, district.incidents, district.activities, district.period)
    assert recomputed == district.features
