"""Imported history fills station-months without records (year-on-year figures); unknown station ids are flagged."""
from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from tests.helpers import Service, assert_problem
from tests.services.assessment.helpers import accident, mode, unit
from tests.services.assessment.test_example import act, scores, values


async def test_history_gives_year_on_year_figures_only_where_there_are_no_records(assessment: Service) -> None:
    await assessment.publish(
        unit("ps-h", population=100_000), unit("ps-r", population=100_000), mode("ps-h", "deep"), mode("ps-r", "deep"),
        *[accident(s, f"2024-05-{d:02d}T09:00:00+08:00") for s in ("ps-h", "ps-r") for d in (3, 20)],
        accident("ps-r", "2023-05-10T09:00:00+08:00"),  # ps-r holds records for May 2023: its history is ignored
        wait=True)
    before = await scores(assessment, period="2024-05")
    items = [{"station_id": "ps-h", "month": "2023-05", "measures": {"accidents": 4, "deaths": 1}},
             {"station_id": "ps-r", "month": "2023-05", "measures": {"accidents": 10}}]

    first = await assessment.client.put("/api/v1/assessment/history", json=items, headers=assessment.as_("admin"))
    again = await assessment.client.put("/api/v1/assessment/history", json=items, headers=assessment.as_("admin"))
    may = await scores(assessment, period="2024-05")
    half = await scores(assessment, **{"from": "2024-05-01", "until": "2024-05-15"})
    report = (await assessment.get("/api/v1/reports/monthly", period="2023-05")).json()
    listed = (await assessment.get("/api/v1/assessment/history", station_id="ps-h")).json()

    assert values(before["ps-h"])["accident_control"] is None
    assert (first.json()["created"], again.json()["created"], again.json()["existing"]) == (2, 0, 2)
    assert values(may["ps-h"])["accident_control"] == pytest.approx(-50.0)  # (2 − 4) / 4 × 100
    assert values(may["ps-r"])["accident_control"] == pytest.approx(100.0)  # (2 − 1) / 1 × 100: records win
    # half of May: 1 accident against 4 × 15/31 of May 2023's history
    assert values(half["ps-h"])["accident_control"] == pytest.approx((1 - 4 * 15 / 31) / (4 * 15 / 31) * 100, 1e-3)
    accidents = {i["id"]: i for i in report["items"]}["accidents"]["stations"]
    assert accidents == {"ps-h": 4, "ps-r": 1}
    assert [(r["month"], r["measure"], r["value"]) for r in listed["items"]] == [
        ("2023-05", "accident_deaths", 1.0), ("2023-05", "incident.accident", 4.0)]


async def test_history_imports_are_checked(assessment: Service) -> None:
    await assessment.publish(unit("sq-x", "squadron"), wait=True)
    good = {"station_id": "ps-new", "month": "2023-05", "measures": {"accidents": 1}}
    bad = [{"station_id": "ps-h", "month": "2023-13", "measures": {"accidents": 1}},
           {"station_id": "ps-h", "month": "2023-05", "measures": {"acidents": 1}},
           {"station_id": "ps-h", "month": "2023-05", "measures": {"accidents": -1}},
           {"station_id": "sq-x", "month": "2023-05", "measures": {"accidents": 1}}]

    r = await assessment.client.put("/api/v1/assessment/history", json=[good, *bad],
                                    headers=assessment.as_("platform"))
    by_station = await assessment.client.put("/api/v1/assessment/history", json=[good],
                                             headers=assessment.as_("station", "ps-new"))

    body = r.json()
    assert [x["status"] for x in body["results"]] == [201, 422, 422, 422, 422]
    assert {x["type"].rsplit("/", 1)[1] for x in body["results"][1:]} == {"invalid-batch-item"}
    assert [x["station_id"] for x in body["results"][1:]] == [None, "ps-h", None, "sq-x"]  # (None: not the schema)
    assert body["results"][0]["station_known"] is False and body["unknown_stations"] == ["ps-new"]
    assert_problem(by_station, 403)


async def test_an_unknown_station_id_is_accepted_but_flagged_and_logged(assessment: Service,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    await assessment.publish(unit("ps-a", population=10_000), wait=True)

    with caplog.at_level(logging.WARNING, logger="services.assessment.records"):
        batch = await assessment.post("/api/v1/activities:batch", [act("education", "ps-a", "2024-05-06", 10),
                                                                   act("education", "ps-zz", "2024-05-06", 10)])
        single = await assessment.post("/api/v1/activities", act("education", "ps-yy", "2024-05-06", 10))
    listed = (await assessment.get("/api/v1/activities")).json()["items"]

    body = batch.json()
    assert [(x["status"], x["station_known"]) for x in body["results"]] == [(201, True), (201, False)]
    assert body["unknown_stations"] == ["ps-zz"]
    assert single.status_code == 201 and single.json()["station_known"] is False
    assert {a["station_id"]: a["station_known"] for a in listed} == {"ps-a": True, "ps-zz": False, "ps-yy": False}
    assert any("ps-zz" in r.getMessage() for r in caplog.records)
    assert any("ps-yy" in r.getMessage() for r in caplog.records)


def test_the_demo_history_covers_the_year_before_the_demo_month() -> None:
    from deploy.demo_activities import history

    district = SimpleNamespace(
        units=[{"id": "ps-a", "kind": "station"}, {"id": "ps-b", "kind": "station"}, {"id": "sq", "kind": "squadron"}],
        incidents=[{"kind": "accident", "station_id": "ps-a", "occurred_at": f"2024-{m:02d}-10T09:00:00+08:00",
                    "severity": {"deaths": 0, "injuries": 1}} for m in range(1, 13) for _ in range(3)])

    items = history(district, "2024-06")

    assert items == history(district, "2024-06")  # stable: re-loading is a no-op
    assert {i["station_id"] for i in items} == {"ps-a", "ps-b"}
    assert sorted({i["month"] for i in items}) == [f"2023-{m:02d}" for m in range(6, 13)] + [
        f"2024-{m:02d}" for m in range(1, 6)]
    a = [i["measures"]["accidents"] for i in items if i["station_id"] == "ps-a"]
    assert 12 <= sum(a) <= 80  # about 3 a month (× the station's 0.7–1.4 factor)
