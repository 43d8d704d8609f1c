"""Classification's API with stations learned from real NATS events, on SQLite and PostgreSQL: features, runs, modes."""
from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from services.classification.app import create_app
from services.classification.config import ClassificationSettings
from services.classification.models import OUTBOX, ClassificationRun, Station
from shared.bus import Bus
from shared.db import utcnow
from shared.events import Envelope, StationClassified, UnitUpserted
from shared.runtime import Runtime
from tests.conftest import auth, serving
from tests.support import assert_problem, eventually

DEMO = json.loads((Path(__file__).resolve().parents[3] / "deploy" / "demo_district.json").read_text())
STATIONS = [u for u in DEMO["units"] if u["kind"] == "station"]
EXPECTED_MODES = {"ps-chengxiang": "basic", "ps-beigan": "basic", "ps-yiqiao": "deep", "ps-heshang": "deep",
                  "ps-xintang": "full", "ps-wenyan": "full"}


@dataclass
class Classification:
    client: httpx.AsyncClient
    settings: ClassificationSettings
    rt: Runtime
    bus: Bus

    def as_(self, role: str, unit_id: str | None = None) -> dict[str, str]:
        return auth(self.settings, role, unit_id=unit_id)

    async def count(self, table: Any) -> int:
        async with self.rt.sessions() as session:
            return int((await session.execute(select(func.count()).select_from(table))).scalar_one())

    async def classified_events(self) -> list[StationClassified]:
        """Every StationClassified on the CLASSIFICATION stream so far."""
        assert self.bus.js is not None
        info = await self.bus.js.stream_info("CLASSIFICATION")
        facts: list[StationClassified] = []
        if info.state.messages == 0:
            return facts
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            msg = await self.bus.js.get_msg("CLASSIFICATION", seq)
            if msg.subject == StationClassified.subject:
                facts.append(StationClassified.model_validate(Envelope.model_validate_json(msg.data).data))
        return facts

    async def relayed(self) -> bool:
        async with self.rt.sessions() as session:
            return await OUTBOX.pending_count(session) == 0


async def announce_units(bus: Bus, units: list[dict[str, Any]]) -> None:
    """Publish UnitUpserted events as dispatch's relay would."""
    assert bus.js is not None
    for unit in units:
        fact = UnitUpserted(unit_id=unit["id"], name=unit["name"], kind=unit["kind"], parent_id=unit.get("parent_id"),
                            area_type=unit.get("area_type"), population=unit.get("population"),
                            area_km2=unit.get("area_km2"))
        envelope = Envelope(source="jiaozhi/dispatch", type=fact.subject, subject=fact.unit_id, time=utcnow(),
                            data=fact.model_dump(mode="json"))
        await bus.js.publish(fact.subject, envelope.model_dump_json().encode(), headers={"Nats-Msg-Id": envelope.id})


@pytest.fixture
async def classification(database_url: str, nats_url: str, tmp_path: Path) -> AsyncIterator[Classification]:
    settings = ClassificationSettings(database_url=database_url, nats_url=nats_url, data_dir=tmp_path,
                                      outbox_poll_s=0.2)
    bus = Bus(nats_url, name="test-dispatch")
    await bus.connect(wait=5)
    await bus.ensure_stream("dispatch")
    await announce_units(bus, DEMO["units"])  # stations, squadrons and the brigade
    app = create_app(settings)
    try:
        async with serving(app) as client:
            c = Classification(client, settings, app.state.rt, bus)

            async def stations_known() -> bool:
                return await c.count(Station) == len(STATIONS)

            await eventually(stations_known, what="the six stations to arrive from dispatch")
            await bus.ensure_stream("classification")
            yield c
    finally:
        await bus.close()


async def put_demo_features(c: Classification) -> None:
    for station_id, features in DEMO["features"].items():
        response = await c.client.put(f"/api/v1/stations/{station_id}/features",
                                      json={"period": DEMO["period"], "features": features}, headers=c.as_("admin"))
        assert response.status_code == 204, response.text


async def test_only_stations_are_remembered_from_unit_events(classification: Classification) -> None:
    async with classification.rt.sessions() as session:
        stations = {s.id: s for s in (await session.execute(select(Station))).scalars()}

    assert set(stations) == set(EXPECTED_MODES)
    for unit in STATIONS:
        row = stations[unit["id"]]
        assert (row.name, row.area_type, row.population, row.area_km2) == (
            unit["name"], unit["area_type"], unit["population"], unit["area_km2"])


async def test_features_of_an_unknown_station_are_refused_with_404(classification: Classification) -> None:
    response = await classification.client.put("/api/v1/stations/ps-nowhere/features",
                                               json={"period": "2021", "features": {"accidents_per_10k": 1.0}},
                                               headers=classification.as_("admin"))

    assert_problem(response, 404)


async def test_a_run_over_the_demo_features_assigns_two_stations_to_each_mode_and_announces_them(
        classification: Classification) -> None:
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
        return await classification.relayed() and len(await classification.classified_events()) == 6

    await eventually(six_announced, what="six classification.station.classified.v1 events")
    events = await classification.classified_events()
    assert {e.station_id: e.mode for e in events} == EXPECTED_MODES
    assert all(e.source == "model" and e.run_id == run["id"] and e.previous_mode is None for e in events)

    stored = await classification.client.get(f"/api/v1/classification/runs/{run['id']}",
                                             headers=classification.as_("command"))
    assert stored.status_code == 200
    assert stored.json()["assignments"] == run["assignments"]
    assert stored.json()["sizes"] == run["sizes"]


async def test_running_again_on_the_same_features_changes_nothing_and_announces_nothing(
        classification: Classification) -> None:
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
    assert len(await classification.classified_events()) == 6
    assert await classification.count(ClassificationRun) == 2


async def test_a_dry_run_over_inline_stations_returns_assignments_and_stores_and_emits_nothing(
        classification: Classification) -> None:
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


async def test_a_dry_run_with_two_stations_is_refused(classification: Classification) -> None:
    stations = [{"id": sid, "features": f} for sid, f in list(DEMO["features"].items())[:2]]

    response = await classification.client.post("/api/v1/classification/runs",
                                                json={"dry_run": True, "stations": stations},
                                                headers=classification.as_("admin"))

    assert_problem(response, 422)


async def test_a_run_without_stored_features_is_refused(classification: Classification) -> None:
    response = await classification.client.post("/api/v1/classification/runs", json={},
                                                headers=classification.as_("admin"))

    assert_problem(response, 422)
    assert await classification.count(ClassificationRun) == 0


async def test_a_station_user_may_neither_import_features_nor_run(classification: Classification) -> None:
    station = classification.as_("station", unit_id="ps-yiqiao")
    features = {"period": "2021", "features": DEMO["features"]["ps-yiqiao"]}

    put = await classification.client.put("/api/v1/stations/ps-yiqiao/features", json=features, headers=station)
    run = await classification.client.post("/api/v1/classification/runs", json={"period": "2021"}, headers=station)

    assert_problem(put, 403)
    assert_problem(run, 403)
    assert await classification.count(ClassificationRun) == 0


async def test_a_run_id_that_does_not_exist_is_404(classification: Classification) -> None:
    response = await classification.client.get(f"/api/v1/classification/runs/run-{uuid.uuid4().hex[:12]}",
                                               headers=classification.as_("admin"))

    assert_problem(response, 404)
