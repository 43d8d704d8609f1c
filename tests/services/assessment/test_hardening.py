"""Regressions from fuzzing assessment (schemathesis through the gateway): absurd indicator changes, records and
periods are 422 problems; a wide change no longer queues centuries of months for re-scoring; scores stay finite;
platforms may not read indicators, tallies or history."""
from __future__ import annotations

import base64
import json
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from sqlalchemy import select

from services.assessment import service
from services.assessment.catalogue import default_set
from services.assessment.models import DirtyPeriod
from services.assessment.schemas import IndicatorChangeIn
from services.assessment.scoring import PeriodData, score
from shared.auth import Identity
from tests.helpers import Service, assert_problem
from tests.services.assessment.helpers import unit
from tests.services.assessment.test_example import act

ADMIN = Identity(username="admin", role="admin", unit_id=None)


@pytest.mark.parametrize("change", [
    {"indicators": {"accident_control": {"target": 1e300}}},
    {"indicators": {"accident_control": {"floor": -1e7}}},
    {"thresholds": {"blue": 1e9, "yellow": 50}},
    {"thresholds": {"green": 90, "yellow": 50}},
    {"period_from": "0000-01"},  # year 0 has no calendar month: periods.month raised ValueError → 500
    {"period_to": "9999-12"},
    {"note": "x" * 2001},
    {"note": "\x00"},
    {"indicatorz": {}},  # a misspelt field was silently ignored (a version that changed nothing)
])
async def test_absurd_indicator_changes_are_422(assessment: Service, change: dict) -> None:
    r = await assessment.client.put("/api/v1/indicators", json=change, headers=assessment.as_("admin"))
    assert_problem(r, 422)
    versions = await assessment.get("/api/v1/indicators/versions")
    assert [v["version"] for v in versions.json()["items"]] == [0]


@pytest.mark.parametrize("raw", [b'{"indicators": {"accident_control": {"target": NaN}}}',
                                 b'{"thresholds": {"blue": Infinity, "yellow": 50}}'])
async def test_non_finite_indicator_values_are_422(assessment: Service, raw: bytes) -> None:
    headers = assessment.as_("admin") | {"content-type": "application/json"}
    assert_problem(await assessment.client.put("/api/v1/indicators", content=raw, headers=headers), 422)
    assert (await assessment.get("/api/v1/indicators")).status_code == 200


async def test_a_wide_indicator_change_marks_only_months_that_hold_records(assessment: Service) -> None:
    """The gateway's slow-down: a change scoped over centuries marked every month between the first and the last
    record dirty (tens of thousands with fuzzed dates), and re-scoring them held the database for minutes."""
    await assessment.publish(unit("ps-w"), wait=True)
    for day in ("1950-03-02", "2190-07-09"):
        assert (await assessment.post("/api/v1/activities", act("education", "ps-w", day, 1))).status_code == 201
    item = {"station_id": "ps-w", "month": "1960-04", "measures": {"accidents": 2}}
    history = await assessment.client.put("/api/v1/assessment/history", json=[item],
                                          headers=assessment.as_("admin"))
    assert history.json()["created"] == 1
    async with assessment.rt.transaction() as session:
        months = await service._months_with_measures(session, "1955-01", "2199-12")
        await service.change_indicators(session, who=ADMIN, change=IndicatorChangeIn(
            period_from="1900-01", period_to="2199-12", thresholds={"blue": 80, "yellow": 50}))
        dirty = set((await session.execute(select(DirtyPeriod.period))).scalars())
    today = service.utcnow().astimezone(ZoneInfo(assessment.settings.timezone)).date()  # the unit's own measures
    assert [f"{m:%Y-%m}" for m in months if m != today.replace(day=1)] == ["1960-04", "2190-07"]  # history too
    # the records' months and, for the year-on-year indicator, the same months a year on (some may be re-scored
    # already by the background loop); before: every month 1950-03 … 2190-07
    held = {"1950-03", "1951-03", "1960-04", "1961-04", "2190-07", "2191-07", f"{today:%Y-%m}",
            f"{today.year + 1}-{today.month:02d}"}
    assert dirty and dirty <= held and "2000-01" not in dirty


async def test_a_dirty_month_no_period_can_hold_does_not_wedge_re_scoring(assessment: Service) -> None:
    """A month marked before periods were bounded (e.g. from a record dated year 1 or 9999) was retried forever."""
    async with assessment.rt.transaction() as session:
        for label in ("0000-01", "9999-99"):
            session.add(DirtyPeriod(period=label, marked_at=service.utcnow()))
    async with assessment.rt.transaction() as session:
        await service.announce_dirty(session, outbox=assessment.rt.outbox)
        left = set((await session.execute(select(DirtyPeriod.period))).scalars())
    assert not left & {"0000-01", "9999-99"}


@pytest.mark.parametrize("change", [
    {"occurred_at": "9999-12-31T23:00:00+08:00"},
    {"occurred_at": "0001-01-01T00:00:00+00:00"},
    {"value": 1e300},
    {"station_id": "ps\x00a"},
    {"details": {"note": "x" * 201}},
])
async def test_absurd_activities_are_422(assessment: Service, change: dict) -> None:
    body = act("education", "ps-a", "2026-05-01", 1) | change
    assert_problem(await assessment.post("/api/v1/activities", body), 422)


async def test_nan_in_an_activity_or_a_history_item_is_refused(assessment: Service) -> None:
    headers = assessment.as_("admin") | {"content-type": "application/json"}
    raw = json.dumps(act("education", "ps-a", "2026-05-01", 1)).replace('"count": 1', '"count": 1, "value": NaN')
    one = await assessment.client.post("/api/v1/activities", content=raw.encode(), headers=headers)
    history = await assessment.client.put("/api/v1/assessment/history", headers=headers, content=(
        b'[{"station_id": "ps-a", "month": "2024-01", "measures": {"accidents": NaN}},'
        b' {"station_id": "ps-a", "month": "2024-01", "measures": {"accidents": 1e300}},'
        b' {"station_id": "ps-a", "month": "0000-01", "measures": {"accidents": 1}},'
        b' {"station_id": "ps-a", "month": "2024-01", "measures": {"accidents": 3}}]'))
    assert_problem(one, 422)
    assert {r["index"]: r["status"] for r in history.json()["results"]} == {0: 422, 1: 422, 2: 422, 3: 201}


@pytest.mark.parametrize(("path", "params"), [
    ("/api/v1/assessment/scores", {"period": "0001-01"}),
    ("/api/v1/assessment/scores", {"period": "0001-W01"}),
    ("/api/v1/assessment/scores", {"from": "0001-01-01", "until": "0001-01-02"}),
    ("/api/v1/stations/ps-a/score", {"period": "9999-12-31"}),
    ("/api/v1/reports/monthly", {"period": "9999-12"}),
    ("/api/v1/board", {"date": "0001-01-01"}),
    ("/api/v1/assessment/tallies", {"period": "0000-01"}),
    ("/api/v1/activities", {"cursor": base64.urlsafe_b64encode(b'["2026-05-01", "a\\u0000"]').decode()}),
    ("/api/v1/activities", {"station_id": "a\x00b"}),
])
async def test_periods_and_filters_no_calendar_holds_are_422(assessment: Service, path: str, params: dict) -> None:
    await assessment.publish(unit("ps-a"), wait=True)
    assert_problem(await assessment.get(path, role="admin", **params), 422)


async def test_recompute_refuses_a_month_no_calendar_holds(assessment: Service) -> None:
    r = await assessment.client.post("/api/v1/assessment/recompute", params={"period": "0000-01"},
                                     headers=assessment.as_("admin"))
    assert_problem(r, 422)


def test_scores_stay_finite_when_values_overflow() -> None:
    iset = default_set()
    measures = {n for i in iset.indicators for n in (*i.measurement.numerator, *i.measurement.denominator)}
    data = PeriodData(station_ids=["s"], days=1, months=1.0, sums={m: np.array([1e308]) for m in measures},
                      active=np.array([True]), population=np.array([1.0]))
    result = score(iset, data)
    assert np.isinf(result.values).sum() == 0 and np.isinf(result.points).sum() == 0  # overflow: no data, not inf
    assert not np.isnan(result.values).all()  # the ratios (1e308 / 1e308) still count
    assert np.isinf(result.total).sum() == 0


@pytest.mark.parametrize("path", ["/api/v1/indicators", "/api/v1/indicators/versions", "/api/v1/assessment/history",
                                  "/api/v1/assessment/tallies?period=2026-05"])
async def test_a_platform_may_not_read_indicators_tallies_or_history(assessment: Service, path: str) -> None:
    assert_problem(await assessment.client.get(path, headers=assessment.as_("platform")), 403)
    assert (await assessment.client.get(path, headers=assessment.as_("command"))).status_code == 200


async def test_a_workbook_report_survives_control_characters_in_a_station_id(assessment: Service) -> None:
    """The fuzzer's 500 on GET /reports/daily?format=xlsx: openpyxl refuses control characters in a cell. Records
    now refuse such station ids, but unit ids arrive from dispatch's events as they are."""
    await assessment.publish(unit("ps-\x1codd"), wait=True)
    r = await assessment.get("/api/v1/reports/daily", role="admin", period="2026-05-01", format="xlsx")
    refused = await assessment.post("/api/v1/activities", act("education", "ps-\x1codd", "2026-05-01", 1))
    assert r.status_code == 200, r.text
    assert_problem(refused, 422)
