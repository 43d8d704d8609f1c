"""K-Means station classification: clusters map to modes by meaning, independent of order, with guard rails."""
from __future__ import annotations

import math
import random

import pytest

from services.classification.classifier import classify
from shared.errors import Invalid

# three stations per profile; small differences inside a profile, large between them
PROFILES = {
    "basic": [  # high congestion
        {"congestion_alarms_per_10k": 52.0, "deaths_per_100k": 2.0, "disorder_complaints_per_10k": 6.0},
        {"congestion_alarms_per_10k": 47.0, "deaths_per_100k": 2.5, "disorder_complaints_per_10k": 5.0},
        {"congestion_alarms_per_10k": 55.0, "deaths_per_100k": 1.5, "disorder_complaints_per_10k": 7.0},
    ],
    "deep": [  # high deaths
        {"congestion_alarms_per_10k": 6.0, "deaths_per_100k": 30.0, "disorder_complaints_per_10k": 5.5},
        {"congestion_alarms_per_10k": 5.0, "deaths_per_100k": 27.0, "disorder_complaints_per_10k": 6.5},
        {"congestion_alarms_per_10k": 7.0, "deaths_per_100k": 33.0, "disorder_complaints_per_10k": 4.5},
    ],
    "full": [  # high disorder complaints
        {"congestion_alarms_per_10k": 5.5, "deaths_per_100k": 2.2, "disorder_complaints_per_10k": 60.0},
        {"congestion_alarms_per_10k": 6.5, "deaths_per_100k": 1.8, "disorder_complaints_per_10k": 66.0},
        {"congestion_alarms_per_10k": 4.5, "deaths_per_100k": 2.8, "disorder_complaints_per_10k": 57.0},
    ],
}
STATIONS = {f"{mode}-{i}": row for mode, rows in PROFILES.items() for i, row in enumerate(rows)}
EXPECTED = {sid: sid.split("-")[0] for sid in STATIONS}


def _inputs(order: list[str] | None = None) -> tuple[list[str], list[dict[str, float]]]:
    ids = order or list(STATIONS)
    return ids, [dict(STATIONS[sid]) for sid in ids]


@pytest.mark.parametrize("scaling", ["log", "robust", "standard"])
def test_profiles_map_to_basic_deep_full(scaling: str) -> None:
    result = classify(*_inputs(), scaling=scaling)
    assert {a.station_id: a.mode for a in result.assignments} == EXPECTED
    assert result.sizes == {"basic": 3, "deep": 3, "full": 3}


@pytest.mark.parametrize("shuffle_seed", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("scaling", ["log", "robust", "standard"])
def test_mapping_does_not_depend_on_input_order(scaling: str, shuffle_seed: int) -> None:
    order = list(STATIONS)
    random.Random(shuffle_seed).shuffle(order)
    result = classify(*_inputs(order), scaling=scaling)
    assert [a.station_id for a in result.assignments] == order
    assert {a.station_id: a.mode for a in result.assignments} == EXPECTED


def test_mapping_does_not_depend_on_station_ids() -> None:
    renamed = {"zz": "basic-0", "aa": "basic-1", "mm": "basic-2", "b1": "deep-0", "y9": "deep-1", "c3": "deep-2",
               "x0": "full-0", "a0": "full-1", "q7": "full-2"}
    ids = list(renamed)
    random.Random(7).shuffle(ids)
    result = classify(ids, [dict(STATIONS[renamed[i]]) for i in ids])
    assert {a.station_id: a.mode for a in result.assignments} == {i: EXPECTED[renamed[i]] for i in ids}


def test_centroids_are_in_original_units() -> None:
    result = classify(*_inputs())
    for mode, rows in PROFILES.items():
        for feature in rows[0]:
            assert result.centroids[mode][feature] == pytest.approx(sum(r[feature] for r in rows) / 3)
    assert result.centroids["basic"]["congestion_alarms_per_10k"] == pytest.approx((52 + 47 + 55) / 3)


def test_result_lists_sorted_features_and_a_silhouette() -> None:
    result = classify(*_inputs())
    assert result.features == sorted(PROFILES["basic"][0])
    assert result.silhouette is not None and 0.5 < result.silhouette <= 1.0


@pytest.mark.parametrize("scaling", ["log", "robust", "standard"])
def test_margins_are_non_negative_and_distances_finite(scaling: str) -> None:
    for assignment in classify(*_inputs(), scaling=scaling).assignments:
        assert assignment.margin >= 0
        assert math.isfinite(assignment.distance) and assignment.distance >= 0


def test_clusters_are_consistent_with_modes() -> None:
    assignments = classify(*_inputs()).assignments
    cluster_of_mode = {}
    for a in assignments:
        assert cluster_of_mode.setdefault(a.mode, a.cluster) == a.cluster
    assert len(set(cluster_of_mode.values())) == 3


def test_fewer_stations_than_k_is_invalid() -> None:
    with pytest.raises(Invalid, match="at least 3"):
        classify(["a", "b"], [dict(STATIONS["basic-0"]), dict(STATIONS["deep-0"])])


@pytest.mark.parametrize("k", [2, 4])
def test_k_other_than_three_is_invalid(k: int) -> None:
    with pytest.raises(Invalid, match="k must be 3"):
        classify(*_inputs(), k=k)


@pytest.mark.parametrize("feature", ["deaths_per_100k", "congestion_alarms_per_10k"])
def test_missing_required_feature_is_invalid(feature: str) -> None:
    ids, rows = _inputs()
    for row in rows:
        del row[feature]
    with pytest.raises(Invalid, match=feature):
        classify(ids, rows)


def test_station_lacking_a_feature_others_have_is_invalid() -> None:
    ids, rows = _inputs()
    del rows[4]["disorder_complaints_per_10k"]
    with pytest.raises(Invalid, match=f"station {ids[4]} lacks feature disorder_complaints_per_10k"):
        classify(ids, rows)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_values_are_invalid(value: float) -> None:
    ids, rows = _inputs()
    rows[2]["deaths_per_100k"] = value
    with pytest.raises(Invalid, match="finite"):
        classify(ids, rows)


def test_negative_values_are_invalid() -> None:
    ids, rows = _inputs()
    rows[0]["disorder_complaints_per_10k"] = -1.0
    with pytest.raises(Invalid, match="negative"):
        classify(ids, rows)


def test_all_features_constant_is_invalid() -> None:
    ids = [f"s{i}" for i in range(5)]
    rows = [{"congestion_alarms_per_10k": 3.0, "deaths_per_100k": 1.0, "disorder_complaints_per_10k": 2.0}] * 5
    with pytest.raises(Invalid, match="constant"):
        classify(ids, [dict(r) for r in rows])


def test_a_constant_feature_alongside_varying_ones_is_tolerated() -> None:
    ids, rows = _inputs()
    for row in rows:
        row["hazards_per_km2"] = 4.0
    result = classify(ids, rows)
    assert {a.station_id: a.mode for a in result.assignments} == EXPECTED
    assert result.centroids["full"]["hazards_per_km2"] == pytest.approx(4.0)
