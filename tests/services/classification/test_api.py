"""Service's API with stations learned from real NATS events, on SQLite and PostgreSQL: features, runs, modes."""
from __future__ import annotations

import base64
import json
import uuid

from sqlalchemy import select

from services.classification.models import OUTBOX, ClassificationRun, Station
from shared.events import StationClassified
from tests.helpers import Service, assert_problem, eventually, every_item
from tests.services.classification.helpers import (
    DEMO,
    EXPECTED_MODES,
    STATIONS,
    put_demo_features,
)


async def test_only_stations_are_remembered_from_unit_events(classification: Service) -> None:
    async with classification.rt.sessions() as session:
        stations = {s.id: s for s in (await session.execute(select(Station))).scalars()}

    assert set(stations) == set(EXPECTED_MODES)
    for unit in STATIONS:
        row = stations[unit["id"]]
        assert (row.name, row.area_type, row.population, row.area_km2) == (
            unit["name"], unit["area_type"], unit["population"], unit["area_km2"])


async def test_features_of_an_unknown_station_are_refused_with_404(classification: Service) -> None:
    response = await classification.client.put("/api/v1/stations/ps-nowhere/features",
                                               json={"period": "2021", "features": {"accidents_per_10k": 1.0}},
                                               headers=classification.as_("admin"))

    assert_problem(response, 404)


async def test_a_run_over_the_demo_features_assigns_two_stations_to_each_mode_and_announces_them(
        classification: Service) -> None:
    await put_demo_features(classification)

    response = await classification.client.post("/api/v1/classification/runs", json={"period": "2021"},
                                                headers=classification.as_("admin"))

    assert response.status_code == 201, response.text
    run = response.json()
    assert run["status"] == "done" and run["dry_run"] is False and run["period"] == "2021"
    assert run["sizes"] == {"basic": 2, "deep": 2, "full": 2}
    assert {a["station_id"]: a["mode"] for a in run["assignments"]} == EXPECTED_MODES
    assert {c["station_id"]: (c["from"], c["to"]) for c in run["changed"]} == {
        s: (None, m) for s, m in EXPECTED_MODES.items()}

    async def six_announced() -> bool:
        announced = await classification.facts("classification", StationClassified)
        return await classification.relayed() and len(announced) == 6

    await eventually(six_announced, what="six classification.station.classified.v1 events")
    events = await classification.facts("classification", StationClassified)
    assert {e.station_id: e.mode for e in events} == EXPECTED_MODES
    assert all(e.source == "model" and e.run_id == run["id"] and e.previous_mode is None for e in events)

    stored = await classification.client.get(f"/api/v1/classification/runs/{run['id']}",
                                             headers=classification.as_("command"))
    assert stored.status_code == 200
    assert stored.json()["assignments"] == run["assignments"]
    assert stored.json()["sizes"] == run["sizes"]


async def test_running_again_on_the_same_features_changes_nothing_and_announces_nothing(
        classification: Service) -> None:
    await put_demo_features(classification)
    first = await classification.client.post("/api/v1/classification/runs", json={"period": "2021"},
                                             headers=classification.as_("admin"))
    assert first.status_code == 201
    await eventually(classification.relayed, what="the first run's events to be relayed")

    again = await classification.client.post("/api/v1/classification/runs", json={"period": "2021"},
                                             headers=classification.as_("command"))

    assert again.status_code == 201
    assert again.json()["id"] != first.json()["id"]
    assert again.json()["changed"] == []
    assert {a["station_id"]: a["mode"] for a in again.json()["assignments"]} == EXPECTED_MODES
    assert await classification.count(OUTBOX.table) == 6
    assert await classification.relayed()
    assert len(await classification.facts("classification", StationClassified)) == 6
    assert await classification.count(ClassificationRun) == 2


async def test_a_dry_run_over_inline_stations_returns_assignments_and_stores_and_emits_nothing(
        classification: Service) -> None:
    stations = [{"id": sid, "features": f} for sid, f in DEMO["features"].items()]

    response = await classification.client.post("/api/v1/classification/runs",
                                                json={"dry_run": True, "stations": stations},
                                                headers=classification.as_("admin"))

    assert response.status_code == 201, response.text
    run = response.json()
    assert run["dry_run"] is True
    assert {a["station_id"]: a["mode"] for a in run["assignments"]} == EXPECTED_MODES
    assert run["changed"] == []
    assert await classification.count(OUTBOX.table) == 0
    assert await classification.count(ClassificationRun) == 0
    missing = await classification.client.get(f"/api/v1/classification/runs/{run['id']}",
                                              headers=classification.as_("admin"))
    assert_problem(missing, 404)


async def test_a_dry_run_with_two_stations_is_refused(classification: Service) -> None:
    stations = [{"id": sid, "features": f} for sid, f in list(DEMO["features"].items())[:2]]

    response = await classification.client.post("/api/v1/classification/runs",
                                                json={"dry_run": True, "stations": stations},
                                                headers=classification.as_("admin"))

    assert_problem(response, 422)


async def test_a_run_without_stored_features_is_refused(classification: Service) -> None:
    response = await classification.client.post("/api/v1/classification/runs", json={},
                                                headers=classification.as_("admin"))

    assert_problem(response, 422)
    assert await classification.count(ClassificationRun) == 0


async def test_a_station_user_may_neither_import_features_nor_run(classification: Service) -> None:
    station = classification.as_("station", unit_id="ps-yiqiao")
    features = {"period": "2021", "features": DEMO["features"]["ps-yiqiao"]}

    put = await classification.client.put("/api/v1/stations/ps-yiqiao/features", json=features, headers=station)
    run = await classification.client.post("/api/v1/classification/runs", json={"period": "2021"}, headers=station)

    assert_problem(put, 403)
    assert_problem(run, 403)
    assert await classification.count(ClassificationRun) == 0


async def test_a_run_id_that_does_not_exist_is_404(classification: Service) -> None:
    response = await classification.client.get(f"/api/v1/classification/runs/run-{uuid.uuid4().hex[:12]}",
                                               headers=classification.as_("admin"))

    assert_problem(response, 404)


async def test_modes_are_a_page_of_the_callers_stations_and_refused_to_a_platform(classification: Service) -> None:
    c = classification
    seen = [m["station_id"] for m in await every_item(c.client, "/api/v1/classification/modes",
                                                      headers=c.as_("command"), limit=4)]
    zone = (await c.client.get("/api/v1/classification/modes", headers=c.as_("squadron", "sq-fringe"))).json()
    own = (await c.client.get("/api/v1/classification/modes", headers=c.as_("station", "ps-yiqiao"))).json()

    assert seen == sorted(EXPECTED_MODES)
    assert [m["station_id"] for m in zone["items"]] == ["ps-wenyan", "ps-xintang"]
    assert [m["station_id"] for m in own["items"]] == ["ps-yiqiao"] and own["next_cursor"] is None
    assert_problem(await c.client.get("/api/v1/classification/modes", headers=c.as_("platform")), 403)


async def test_run_lists_refuse_a_crafted_cursor_and_a_limit_over_500(classification: Service) -> None:
    c = classification
    text_cursor = base64.urlsafe_b64encode(json.dumps(["seven"]).encode()).decode().rstrip("=")
    for path in ("/api/v1/classification/runs", "/api/v1/classification/modes"):
        problem = assert_problem(await c.client.get(path, params={"cursor": text_cursor if "runs" in path else "!!"},
                                                    headers=c.as_("admin")), 422)
        assert (problem["type"].rsplit("/", 1)[1], problem["parameter"]) == ("invalid-cursor", "cursor")
    await put_demo_features(c)
    run = (await c.client.post("/api/v1/classification/runs", json={"period": "2021"}, headers=c.as_("admin"))).json()
    too_many = assert_problem(await c.client.get(f"/api/v1/classification/runs/{run['id']}", params={"limit": 501},
                                                 headers=c.as_("admin")), 422)
    assert (too_many["type"].rsplit("/", 1)[1], too_many["parameter"]) == ("limit-out-of-range", "limit")
    numeric = base64.urlsafe_b64encode(json.dumps([7]).encode()).decode().rstrip("=")
    assert_problem(await c.client.get(f"/api/v1/classification/runs/{run['id']}", params={"cursor": numeric},
                                      headers=c.as_("admin")), 422)
