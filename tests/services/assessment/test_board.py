"""The daily board: 8 themes per station with target, actual, progress, colour and the overdue orders."""
from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from services.assessment.board import day_window
from tests.helpers import Service, assert_problem
from tests.services.assessment.helpers import mode, task, unit


def act(i: int, kind: str, count: float, **details: Any) -> dict[str, Any]:
    return {"external_id": f"bd-{i}", "kind": kind, "station_id": "ps-a", "occurred_at": "2024-05-10T10:00:00+08:00",
            "count": count, "details": details}


async def load_day(a: Service) -> None:
    await a.publish(
        unit("sq-a", "squadron"), unit("ps-a", parent_id="sq-a", population=100_000),
        unit("ps-z", parent_id="sq-z", population=10_000), mode("ps-a", "deep"),
        task("t1", "ps-a", "2024-05-09T09:00:00+08:00", category="hazard_remediation",
             deadline_at="2024-05-10T12:00:00+08:00"),
        task("t2", "ps-a", "2024-05-09T09:00:00+08:00", category="personal_education",
             deadline_at="2024-05-10T09:00:00+08:00"),
        task("t2", "ps-a", "2024-05-10T08:00:00+08:00", old="submitted", new="verified",
             category="personal_education"),
        task("t3", "ps-a", "2024-05-09T09:00:00+08:00", category="personal_penalty",
             deadline_at="2024-05-11T12:00:00+08:00"), wait=True
    )
    r = await a.post("/api/v1/activities:batch", [
        act(1, "education", 30), act(2, "dissuasion", 10), act(3, "violation", 10, type="speeding"),
        act(4, "drunk_driving_check", 5), act(5, "helmet_check", 100, wearing=96),
        act(6, "hazard_remediation", 2, found=3)])
    assert r.json()["created"] == 6, r.text


async def test_a_past_day_shows_each_theme_against_the_full_target(assessment: Service) -> None:
    await load_day(assessment)

    r = await assessment.get("/api/v1/board", date="2024-05-10", station_id="ps-a")

    assert r.status_code == 200, r.text
    body = r.json()
    assert body["elapsed"] == 1.0
    themes = {t["theme"]: t for t in body["stations"][0]["themes"]}
    assert len(themes) == 8
    got = {k: (t["target"], t["actual"], t["progress"], t["colour"], t["overdue_tasks"]) for k, t in themes.items()}
    assert got == {
        "tracing_tasks": (2, 1, 0.5, "red", ["t1"]),  # t1 and t2 due that day; t2 verified, t1 overdue
        "education_dissuasion": (40, 40, 1.0, "blue", []),  # deep target 40; 30 educated + 10 dissuaded
        "hazard_remediation": (2, 2, 1.0, "red", ["t1"]),  # on target, but its overdue order turns it red
        "map_code": (3, 0, 0.0, "red", []),
        "key_vehicles": (2, 0, 0.0, "red", []),
        "violation_enforcement": (12, 10, pytest.approx(0.8333), "yellow", []),  # ≥ 80 % of the target
        "drunk_driving": (20, 5, 0.25, "red", []),
        "helmet_wearing": (95, 96, pytest.approx(1.0105), "blue", []),  # a rate: 96 of 100 against 95 %
    }


async def test_the_next_day_the_unfinished_order_is_still_overdue_and_the_new_one_not_yet(
        assessment: Service) -> None:
    await load_day(assessment)

    r = await assessment.get("/api/v1/board", date="2024-05-11", station_id="ps-a")

    themes = {t["theme"]: t for t in r.json()["stations"][0]["themes"]}
    assert themes["tracing_tasks"]["overdue_tasks"] == ["t1", "t3"]  # t3's deadline passed at 12:00 on the 11th
    assert themes["violation_enforcement"]["overdue_tasks"] == ["t3"]
    assert themes["violation_enforcement"]["actual"] == 0


async def test_a_station_sees_its_own_board_only(assessment: Service) -> None:
    await load_day(assessment)

    own = await assessment.get("/api/v1/board", role="station", unit_id="ps-a", date="2024-05-10")
    other = await assessment.get("/api/v1/board", role="station", unit_id="ps-a", date="2024-05-10",
                                 station_id="ps-z")
    command = await assessment.get("/api/v1/board", date="2024-05-10")

    assert [s["station_id"] for s in own.json()["stations"]] == ["ps-a"]
    assert_problem(other, 404)
    assert [s["station_id"] for s in command.json()["stations"]] == ["ps-a", "ps-z"]


async def test_a_future_or_malformed_date_is_a_422(assessment: Service) -> None:
    for date in ["2999-01-01", "2024-02-30", "yesterday"]:
        assert_problem(await assessment.get("/api/v1/board", date=date), 422)


def test_today_is_judged_pro_rata_to_the_hour() -> None:
    now = dt.datetime(2024, 5, 10, 4, 0, tzinfo=dt.UTC)  # 12:00 in Asia/Shanghai

    start, as_of, elapsed = day_window(dt.date(2024, 5, 10), "Asia/Shanghai", now)

    assert (start.isoformat(), as_of, elapsed) == ("2024-05-10T00:00:00+08:00", now, 0.5)
