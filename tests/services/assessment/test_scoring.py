"""The engine's formulas one by one, missing data as missing, ranks, periods; vectorised == plain loops."""
from __future__ import annotations

import datetime as dt
import math
import random

import numpy as np
import pytest

from services.assessment import periods
from services.assessment.catalogue import default_set
from services.assessment.scoring import PeriodData, indicator_value, ranks_within, ranks_within_fast, score, score_naive

NAN = math.nan


def ind(indicator_id: str):  # noqa: ANN201 - an Indicator
    return default_set().by_id()[indicator_id]


def data(**sums: list[float]) -> PeriodData:
    n = len(next(iter(sums.values()))) if sums else 2
    return PeriodData(station_ids=[f"s{i}" for i in range(n)], days=31, months=1.0,
                      sums={k: np.array(v, float) for k, v in sums.items()}, active=np.ones(n, bool),
                      population=np.full(n, 50_000.0))


def test_accident_rate_is_accidents_per_10k_residents_per_month_and_zero_when_none_were_reported() -> None:
    d = data(**{"incident.accident": [3, NAN]})
    d.months = 0.5  # half a month: the rate is per month

    assert indicator_value(ind("accident_rate"), d).tolist() == pytest.approx([1.2, 0.0])  # 3 / 50,000 × 10k / 0.5


def test_accident_control_is_the_change_against_last_year_and_missing_without_history() -> None:
    d = data(**{"incident.accident": [3, 3, 2]})
    d.last_year = {"incident.accident": np.array([4, NAN, NAN])}
    d.last_year_active = np.array([True, True, False])

    assert indicator_value(ind("accident_control"), d).tolist()[:2] == [-25.0, 300.0]  # (3-4)/4; (3-0)/max(0,1)
    assert math.isnan(indicator_value(ind("accident_control"), d)[2])


def test_post_operation_rate_is_hours_over_8_hours_a_day() -> None:
    assert indicator_value(ind("post_operation"), data(post_hours=[124, NAN])).tolist()[0] == 50.0  # 124 / 248


@pytest.mark.parametrize(("indicator", "num", "den", "expected"), [
    ("helmet_wearing", {"helmet_worn": 45}, {"helmet_rated": 50}, 90.0),
    ("dissuasion", {"dissuasion": 30}, {"violation.helmet": 10, "violation.other": 20}, 50.0),
    ("yellow_truck_enterprise", {"tasks_completed.enterprise_penalty": 1},
     {"tasks_created.enterprise_rectification": 3, "tasks_created.enterprise_penalty": 1}, 25.0),
    ("hazard_remediation", {"hazards_remediated": 8}, {"hazards_found": 10}, 80.0),
])
def test_ratio_indicators(indicator: str, num: dict, den: dict, expected: float) -> None:
    sums = {k: [v] for k, v in {**den, **num}.items()}
    if indicator == "dissuasion":
        sums["dissuasion"] = [30]
    assert indicator_value(ind(indicator), data(**sums)).tolist() == [expected]


def test_a_ratio_without_a_denominator_is_missing_not_zero() -> None:
    assert math.isnan(indicator_value(ind("hazard_remediation"), data(hazards_remediated=[3]))[0])


def test_map_colour_reduction_compares_the_first_and_last_census_days() -> None:
    d = data(**{"map.red": [1, 1]})
    d.first_last[("map.red", "map.yellow")] = (np.array([20.0, 20.0]), np.array([15.0, 20.0]), np.array([3, 1]))

    values = indicator_value(ind("map_colour_reduction"), d)

    assert values[0] == 25.0 and math.isnan(values[1])  # one census day: no change can be measured


def test_education_is_people_per_10k_and_missing_without_records() -> None:
    values = indicator_value(ind("education"), data(education=[1500, NAN]))

    assert values[0] == 300.0 and math.isnan(values[1])


def test_points_are_linear_between_floor_and_target_and_capped_both_ways() -> None:
    d = data(education=[250, 875, 1500, 4500, 50])  # per 10k of 50,000: 50, 175, 300, 900, 10

    result = score(default_set(), d)

    assert result.points[:, result.indicator_ids.index("education")].tolist() == pytest.approx([0, 5, 10, 10, 0])


def test_vectorised_scores_equal_plain_loops_on_random_data() -> None:
    rng = random.Random(7)
    measures = ["incident.accident", "post_hours", "helmet_worn", "helmet_rated", "dissuasion", "violation.helmet",
                "hazards_remediated", "hazards_found", "education", "tasks_created.enterprise_penalty",
                "tasks_completed.enterprise_penalty"]
    n = 300
    rows = [{m: float(rng.randint(0, 300)) for m in measures if rng.random() > 0.2} for _ in range(n)]
    for row in rows:
        row.update(population=float(rng.randint(10_000, 200_000)), active=1.0, last_year_active=0.0)
    d = PeriodData(station_ids=[str(i) for i in range(n)], days=30, months=1.0,
                   sums={m: np.array([r.get(m, NAN) for r in rows]) for m in measures},
                   active=np.ones(n, bool), population=np.array([r["population"] for r in rows]))

    fast = score(default_set(), d).total
    slow = score_naive(default_set(), rows, days=30, months=1.0)

    assert [None if math.isnan(x) else round(x, 9) for x in fast] == [None if x is None else round(x, 9)
                                                                       for x in slow]


def test_competition_ranks_within_each_mode() -> None:
    groups = ["deep", "deep", "basic", "deep", "deep"]
    totals = [70.0, 90.0, 10.0, 70.0, NAN]

    assert ranks_within(groups, totals) == [2, 1, 1, 2, None]
    assert ranks_within_fast(np.array(groups), np.array(totals)).tolist() == [2, 1, 1, 2, 0]


@pytest.mark.parametrize(("label", "start", "end", "months"), [
    ("2024-02", "2024-02-01", "2024-02-29", 1.0),
    ("2024-W19", "2024-05-06", "2024-05-12", 7 / 31),
    ("2024-05-31..2024-06-15", "2024-05-31", "2024-06-15", 1 / 31 + 15 / 30),
])
def test_periods(label: str, start: str, end: str, months: float) -> None:
    p = periods.parse(label)

    assert (p.start, p.end) == (dt.date.fromisoformat(start), dt.date.fromisoformat(end))
    assert p.months == pytest.approx(months)


def test_the_previous_month_and_last_year() -> None:
    p = periods.parse("2024-03")

    assert (p.previous().label, p.previous().end) == ("2024-02", dt.date(2024, 2, 29))
    assert periods.parse("2024-02").last_year().end == dt.date(2023, 2, 28)
