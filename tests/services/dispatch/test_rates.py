"""The 5-minute arrival rate on a hand-checked example in the demo district, per unit, station, mode, district."""
from __future__ import annotations

import datetime as dt

import pytest

from tests.helpers import assert_problem
from tests.services.dispatch.support import IN_HESHANG, IN_YIQIAO, OUTSIDE, Svc, incident, set_modes

MAY = {"since": "2024-05-01T00:00:00+08:00", "until": "2024-06-01T00:00:00+08:00"}


def backfill(external_id: str, location: dict, response_s: int | None, *, day: int = 1, month: int = 5) -> dict:
    """An incident dispatched at 08:31 local; the unit arrived `response_s` later (None: no arrival)."""
    dispatched = dt.datetime(2024, month, day, 8, 31, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    body = incident(external_id, location=location, occurred_at=f"2024-{month:02d}-{day:02d}T08:30:00+08:00",
                    dispatched_at=dispatched.isoformat())
    if response_s is not None:
        body["arrived_at"] = (dispatched + dt.timedelta(seconds=response_s)).isoformat()
    return body


@pytest.fixture
async def district(svc: Svc) -> Svc:
    """Yiqiao deep (station handles), Heshang basic (sq-rural handles), Chengxiang full (station handles).

    By hand, for May: Yiqiao 4 dispatched (120 s, 300 s, 301 s, no arrival) → 2 within 5 min;
    Heshang → sq-rural 2 dispatched (200 s, 400 s) → 1; Chengxiang 1 dispatched (60 s, reported live) → 1;
    one incident outside every area (never dispatched) and one Yiqiao incident in June (10 s) do not count.
    """
    await set_modes(svc, {"ps-yiqiao": "deep", "ps-heshang": "basic", "ps-chengxiang": "full"})
    listed = (await svc.client.get("/api/v1/stations", headers=svc.as_("admin"))).json()["items"]
    stations = {s["id"]: s for s in listed}
    in_chengxiang = stations["ps-chengxiang"]["centroid"]
    items = [
        backfill("y1", IN_YIQIAO, 120), backfill("y2", IN_YIQIAO, 300), backfill("y3", IN_YIQIAO, 301),
        backfill("y4", IN_YIQIAO, None), backfill("h1", IN_HESHANG, 200), backfill("h2", IN_HESHANG, 400),
        backfill("c1", in_chengxiang, None), backfill("out", OUTSIDE, 30), backfill("june", IN_YIQIAO, 10, month=6),
    ]
    body = (await svc.client.post("/api/v1/incidents:batch", json=items, headers=svc.as_("platform"))).json()
    assert body["created"] == 9, body
    c1 = body["results"][6]
    assert c1["station_id"] == "ps-chengxiang"
    arrived = await svc.client.post(f"/api/v1/incidents/{c1['id']}/arrival",
                                    json={"arrived_at": "2024-05-01T08:32:00+08:00"},
                                    headers=svc.station("ps-chengxiang"))
    assert arrived.status_code == 200, arrived.text
    return svc


async def rates(svc: Svc, group_by: str, headers: dict[str, str], **params: str) -> dict[str, tuple]:
    response = await svc.client.get("/api/v1/arrival-rates", params={"group_by": group_by} | params, headers=headers)
    assert response.status_code == 200, response.text
    return {g["key"]: (g["dispatched"], g["arrived"], g["within_5_min"], g["rate"]) for g in response.json()["groups"]}


async def test_district_rate_for_may_is_four_of_seven(district: Svc) -> None:
    assert await rates(district, "district", district.as_("command"), **MAY) == {"district": (7, 6, 4, 0.5714)}


async def test_rate_per_unit_counts_the_squadron_for_the_basic_station(district: Svc) -> None:
    assert await rates(district, "unit", district.as_("command"), **MAY) == {
        "ps-chengxiang": (1, 1, 1, 1.0), "ps-yiqiao": (4, 3, 2, 0.5), "sq-rural": (2, 2, 1, 0.5)}


async def test_rate_per_station_and_per_mode(district: Svc) -> None:
    command = district.as_("command")
    assert await rates(district, "station", command, **MAY) == {
        "ps-chengxiang": (1, 1, 1, 1.0), "ps-heshang": (2, 2, 1, 0.5), "ps-yiqiao": (4, 3, 2, 0.5)}
    assert await rates(district, "mode", command, **MAY) == {
        "basic": (2, 2, 1, 0.5), "deep": (4, 3, 2, 0.5), "full": (1, 1, 1, 1.0)}


async def test_without_a_period_every_month_counts(district: Svc) -> None:
    assert await rates(district, "district", district.as_("command")) == {"district": (8, 7, 5, 0.625)}


async def test_rates_are_scoped_to_the_caller(district: Svc) -> None:
    assert await rates(district, "district", district.station("ps-yiqiao"), **MAY) == {"district": (4, 3, 2, 0.5)}
    assert await rates(district, "station", district.as_("squadron", "sq-rural"), **MAY) == {
        "ps-heshang": (2, 2, 1, 0.5), "ps-yiqiao": (4, 3, 2, 0.5)}


async def test_an_empty_period_has_no_rate(district: Svc) -> None:
    params = {"since": "2023-01-01T00:00:00Z", "until": "2023-02-01T00:00:00Z"}
    assert await rates(district, "district", district.as_("command"), **params) == {"district": (0, 0, 0, None)}
    assert await rates(district, "unit", district.as_("command"), **params) == {}


@pytest.mark.parametrize("params", [{"group_by": "galaxy"}, {"since": "2024-05-01T00:00:00"},
                                    {"since": "2024-06-01T00:00:00Z", "until": "2024-05-01T00:00:00Z"}])
async def test_bad_rate_queries_are_422(svc: Svc, params: dict[str, str]) -> None:
    response = await svc.client.get("/api/v1/arrival-rates", params=params, headers=svc.as_("command"))
    assert_problem(response, 422)
