"""The hand-computed example: three stations, May 2024, scored through the API exactly as worked out by hand.

Defaults (services/assessment/data/indicators.json): points = weight × clamp((value − floor) / (target − floor), 0, 1);
a part is (points got ÷ weights with data) × part points; colours blue ≥ 80, yellow ≥ 60.
"""
from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from tests.helpers import Service
from tests.services.assessment.helpers import accident, mode, task, unit


def act(kind: str, station: str, day: str, count: float, **details: Any) -> dict[str, Any]:
    return {"external_id": f"ex-{uuid.uuid4().hex[:10]}", "kind": kind, "station_id": station,
            "occurred_at": f"{day}T10:00:00+08:00", "count": count, "details": details}


async def load_example(a: Service) -> None:
    await a.publish(
        unit("sq-a", "squadron"), unit("sq-b", "squadron"),
        unit("ps-a", parent_id="sq-a", population=100_000), unit("ps-b", parent_id="sq-a", population=50_000),
        unit("ps-c", parent_id="sq-b", population=80_000),
        *[accident("ps-a", f"2024-05-{d:02d}T09:00:00+08:00") for d in (3, 9, 17, 25)],
        *[accident("ps-a", f"2023-05-{d:02d}T09:00:00+08:00") for d in (2, 8, 12, 20, 28)],
        *[accident("ps-c", f"2024-05-{d:02d}T09:00:00+08:00") for d in (5, 6)],
        accident("ps-a", "2024-05-10T09:00:00+08:00", kind="congestion_alarm"),  # not an accident
        *[task(f"t{i}", "ps-a", "2024-05-04T09:00:00+08:00") for i in range(4)],
        *[task(f"t{i}", "ps-a", "2024-05-20T09:00:00+08:00", old="submitted", new="verified") for i in range(3)],
        mode("ps-a", "deep"), mode("ps-b", "deep"), mode("ps-c", "basic"), wait=True
    )
    batch = [
        act("post_operation", "ps-a", "2024-05-31", 186),
        act("helmet_check", "ps-a", "2024-05-12", 200, wearing=180),
        act("dissuasion", "ps-a", "2024-05-13", 60),
        act("violation", "ps-a", "2024-05-13", 20, type="helmet"),
        act("violation", "ps-a", "2024-05-14", 20, type="other"),
        act("violation", "ps-a", "2024-05-14", 5, type="speeding"),  # not a minor disorder: not in dissuasion
        act("map_colour", "ps-a", "2024-05-01", 10, colour="red"),
        act("map_colour", "ps-a", "2024-05-01", 10, colour="yellow"),
        act("map_colour", "ps-a", "2024-05-01", 30, colour="green"),
        act("map_colour", "ps-a", "2024-05-31", 4, colour="red"),
        act("map_colour", "ps-a", "2024-05-31", 8, colour="yellow"),
        act("hazard_remediation", "ps-a", "2024-05-21", 7, found=10),
        act("education", "ps-a", "2024-05-06", 1500),
        act("education", "ps-a", "2024-05-26", 500),
        act("education", "ps-a", "2024-04-15", 1000),  # April: the trend's base
        act("education", "ps-b", "2024-05-06", 500),
        act("helmet_check", "ps-b", "2024-05-12", 100, wearing=60),
        act("education", "ps-c", "2024-05-06", 1600),
    ]
    r = await a.post("/api/v1/activities:batch", batch)
    assert r.status_code == 200, r.text
    assert r.json()["created"] == len(batch)


async def scores(a: Service, **params: Any) -> dict[str, dict[str, Any]]:
    r = await a.get("/api/v1/assessment/scores", **params)
    assert r.status_code == 200, r.text
    return {s["station_id"]: s for s in r.json()["stations"]}


def values(row: dict[str, Any]) -> dict[str, float | None]:
    return {k: v["value"] for k, v in row["indicators"].items()}


def points(row: dict[str, Any]) -> dict[str, float | None]:
    return {k: v["score"] for k, v in row["indicators"].items()}


async def test_the_example_month_scores_exactly_as_computed_by_hand(assessment: Service) -> None:
    await load_example(assessment)

    may = await scores(assessment, period="2024-05")

    a, b, c = may["ps-a"], may["ps-b"], may["ps-c"]
    assert values(a) == pytest.approx({
        "accident_rate": 0.4,            # 4 accidents / 100,000 × 10,000 (the congestion alarm is not an accident)
        "accident_control": -20.0,       # (4 − 5) / max(5, 1) × 100 against May 2023
        "post_operation": 75.0,          # 186 h / (8 h × 31 days) × 100
        "helmet_wearing": 90.0,          # 180 / 200 × 100
        "dissuasion": 60.0,              # 60 / (60 + 20 helmet + 20 other) × 100
        "map_colour_reduction": 40.0,    # red+yellow 20 on May 1 → 12 on May 31: (20 − 12) / 20 × 100
        "yellow_truck_enterprise": 75.0,  # 3 verified / 4 created × 100
        "hazard_remediation": 70.0,      # 7 / 10 × 100
        "education": 200.0,              # 2000 / 100,000 × 10,000 (April's 1000 is another month)
    })
    assert points(a) == pytest.approx({
        "accident_rate": 11.25,          # 15 × (0.4 − 1.0) / (0.2 − 1.0) = 15 × 0.75
        "accident_control": 15.0,        # beyond the −10 % target: capped
        "post_operation": 5.0,           # 10 × (75 − 50) / (100 − 50)
        "helmet_wearing": 8.0,           # 10 × (90 − 70) / (95 − 70)
        "dissuasion": 7.5,               # 10 × (60 − 30) / (70 − 30)
        "map_colour_reduction": 10.0,    # beyond the 20 % target: capped
        "yellow_truck_enterprise": 6.25,  # 10 × (75 − 50) / (90 − 50)
        "hazard_remediation": 5.0,       # 10 × (70 − 50) / (90 − 50)
        "education": 6.0,                # 10 × (200 − 50) / (300 − 50)
    })
    assert (a["outcome"], a["process"], a["total"]) == pytest.approx((26.25, 47.75, 74.0))
    assert (a["colour"], a["complete"], a["rank_in_mode"], a["mode"]) == ("yellow", True, 1, "deep")

    # B: no accident (0 per 10k: it reported other work), no history a year ago: the control indicator is missing
    assert values(b)["accident_rate"] == 0.0 and values(b)["accident_control"] is None
    assert values(b)["post_operation"] is None and values(b)["hazard_remediation"] is None
    assert points(b)["education"] == pytest.approx(2.0)  # 100 per 10k: 10 × 50 / 250
    assert points(b)["helmet_wearing"] == 0.0  # 60 % is below the 70 % floor
    # outcome 15 of 15 available → 30; process 2 of 20 available → 7
    assert (b["outcome"], b["process"], b["total"]) == pytest.approx((30.0, 7.0, 37.0))
    assert (b["colour"], b["complete"], b["rank_in_mode"]) == ("red", False, 2)

    # C: 2 / 80,000 × 10,000 = 0.25 → 15 × 0.9375 = 14.0625 of 15 → 28.125; education 6 of 10 → 42
    assert (c["outcome"], c["process"], c["total"]) == pytest.approx((28.125, 42.0, 70.125))
    assert (c["colour"], c["rank_in_mode"], c["mode"]) == ("yellow", 1, "basic")

    # Trend: in April A had only education (1000 → 100 per 10k → 2 of 10 → 14) and no accident (15 of 15 → 30)
    assert a["previous_total"] == pytest.approx(44.0)
    assert (a["trend"], a["trend_direction"]) == (pytest.approx(30.0), "up")
    assert b["previous_total"] is None and b["trend"] is None


async def test_ranks_are_within_mode_and_a_mode_filter_keeps_them(assessment: Service) -> None:
    await load_example(assessment)

    deep = await scores(assessment, period="2024-05", mode="deep")

    assert {k: v["rank_in_mode"] for k, v in deep.items()} == {"ps-a": 1, "ps-b": 2}


async def test_a_station_sees_its_own_score_a_squadron_its_zone(assessment: Service) -> None:
    await load_example(assessment)

    own = await scores(assessment, role="station", unit_id="ps-b", period="2024-05")
    zone = await scores(assessment, role="squadron", unit_id="sq-a", period="2024-05")
    other = await assessment.get("/api/v1/stations/ps-c/score", role="station", unit_id="ps-b", period="2024-05")
    mine = await assessment.get("/api/v1/stations/ps-b/score", role="station", unit_id="ps-b", period="2024-05")

    assert set(own) == {"ps-b"} and own["ps-b"]["rank_in_mode"] == 2  # rank still among all deep stations
    assert set(zone) == {"ps-a", "ps-b"}
    assert other.status_code == 404
    assert mine.status_code == 200 and mine.json()["total"] == pytest.approx(37.0)


async def test_a_weight_and_target_change_is_a_new_version_and_rescores_only_its_scope(
        assessment: Service) -> None:
    await load_example(assessment)
    change = {"period_from": "2024-05", "mode": "deep", "indicators": {"education": {"target": 200}},
              "note": "deep stations: education target 200"}

    refused = await assessment.client.put("/api/v1/indicators", json=change, headers=assessment.as_("command"))
    r = await assessment.client.put("/api/v1/indicators", json=change, headers=assessment.as_("admin"))
    may, april = await scores(assessment, period="2024-05"), await scores(assessment, period="2024-04")

    assert refused.status_code == 403
    assert r.status_code == 201, r.text
    assert r.json()["version"] == 1
    # A: education now (200 − 50) / (200 − 50) → 10 points: process 47.75 + 4 = 51.75, total 78
    assert may["ps-a"]["total"] == pytest.approx(78.0)
    # B: (100 − 50) / 150 × 10 = 3.333… of 20 available → × 70 / 20 = 11.666…; total 41.666…
    assert may["ps-b"]["total"] == pytest.approx(30 + 10 / 3 * 3.5)
    assert may["ps-c"]["total"] == pytest.approx(70.125)  # basic: untouched
    assert april["ps-a"]["total"] == pytest.approx(44.0)  # before the change's period: untouched
    versions = (await assessment.get("/api/v1/indicators/versions")).json()
    assert [v["version"] for v in versions["items"]] == [0, 1] and versions["next_cursor"] is None
    first = (await assessment.get("/api/v1/indicators/versions", limit=1)).json()
    rest = (await assessment.get("/api/v1/indicators/versions", limit=1, cursor=first["next_cursor"])).json()
    assert [v["version"] for v in first["items"] + rest["items"]] == [0, 1] and rest["next_cursor"] is None
    in_force = (await assessment.get("/api/v1/indicators", period="2024-05", mode="deep")).json()
    assert in_force["version"] == 1
    assert {i["id"]: i["target"] for i in in_force["body"]["indicators"]}["education"] == 200


BAD_CHANGES = [
    {"indicators": {"education": {"weight": 20}}},  # process weights would add to 80
    {"indicators": {"nope": {"weight": 1}}},
    {"indicators": {"education": {"target": 10}}},  # higher is better: target below the floor
    {"thresholds": {"blue": 50, "yellow": 70}},
    {"period_from": "2024-13"},
]


async def test_an_inconsistent_indicator_change_is_a_422(assessment: Service) -> None:
    for body in BAD_CHANGES:
        r = await assessment.client.put("/api/v1/indicators", json=body, headers=assessment.as_("admin"))

        assert r.status_code == 422, (body, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")


async def test_changed_scores_are_announced_debounced_and_not_again_when_unchanged(assessment: Service) -> None:
    await load_example(assessment)
    assert assessment.bus.js is not None

    first = await assessment.client.post("/api/v1/assessment/recompute", params={"period": "2024-05"},
                                         headers=assessment.as_("command"))
    sub = await assessment.bus.js.subscribe("assessment.score.updated.v1", stream="ASSESSMENT")
    last: dict[str, Any] = {}
    messages = 0
    while True:
        try:
            msg = await sub.next_msg(timeout=2)
        except TimeoutError:
            break
        data = json.loads(msg.data)["data"]
        if data["period"] == "2024-05":
            last[data["station_id"]] = data
            messages += 1
    again = await assessment.client.post("/api/v1/assessment/recompute", params={"period": "2024-05"},
                                         headers=assessment.as_("command"))

    assert first.status_code == 200
    assert {k: (v["total"], v["colour"], v["mode"]) for k, v in last.items()} == {
        "ps-a": (pytest.approx(74.0), "yellow", "deep"), "ps-b": (pytest.approx(37.0), "red", "deep"),
        "ps-c": (pytest.approx(70.125), "yellow", "basic")}
    assert messages < 12, "one announcement per record would be ~40: they are debounced"
    assert again.json()["announced"] == 0


async def test_two_recomputes_at_once_announce_each_change_once_and_neither_fails(assessment: Service) -> None:
    """Two announcers at once (the debounce loop, the endpoint, another replica) both found a station unpublished
    and both inserted its row: a duplicate key and a 500. They take turns now."""
    import asyncio

    await load_example(assessment)
    recompute = [assessment.client.post("/api/v1/assessment/recompute", params={"period": "2024-05"},
                                        headers=assessment.as_("command")) for _ in range(3)]
    answers = await asyncio.gather(*recompute)
    assert [r.status_code for r in answers] == [200, 200, 200], [r.text for r in answers]
    announced = sorted(r.json()["announced"] for r in answers)
    assert announced[:2] == [0, 0] and announced[2] <= 3, announced  # each change once, by whichever came first
