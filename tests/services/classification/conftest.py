"""Fixtures for classification's tests: the service on SQLite and PostgreSQL with stations learned from NATS."""
from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from services.classification.app import create_app
from services.classification.config import ClassificationSettings
from services.classification.models import OUTBOX, Station
from shared.bus import Bus
from shared.db import utcnow
from shared.events import Envelope, Fact, StationClassified, UnitUpserted
from shared.runtime import Runtime
from tests.conftest import auth, serving
from tests.support import eventually

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


async def publish(bus: Bus, facts: list[Fact]) -> None:
    """Publish facts as their owners' relays would."""
    assert bus.js is not None
    for fact in facts:
        envelope = Envelope(source=f"jiaozhi/{fact.owner()}", type=fact.subject, time=utcnow(),
                            data=fact.model_dump(mode="json"))
        await bus.js.publish(fact.subject, envelope.model_dump_json().encode(), headers={"Nats-Msg-Id": envelope.id})


def unit_facts(units: list[dict[str, Any]]) -> list[Fact]:
    """UnitUpserted facts for units shaped like `POST /api/v1/units` bodies."""
    return [UnitUpserted(unit_id=u["id"], name=u["name"], kind=u["kind"], parent_id=u.get("parent_id"),
                         area_type=u.get("area_type"), population=u.get("population"), area_km2=u.get("area_km2"))
            for u in units]


async def announce_units(bus: Bus, units: list[dict[str, Any]]) -> None:
    """Publish UnitUpserted events as dispatch's relay would."""
    await publish(bus, unit_facts(units))


@pytest.fixture
async def classification(database_url: str, nats_url: str, tmp_path: Path) -> AsyncIterator[Classification]:
    settings = ClassificationSettings(database_url=database_url, nats_url=nats_url, data_dir=tmp_path,
                                      outbox_poll_s=0.2)
    bus = Bus(nats_url, name="test-dispatch")
    await bus.connect(wait=5)
    await bus.ensure_stream("dispatch")
    await bus.ensure_stream("assessment")
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


