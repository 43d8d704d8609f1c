"""An assessment service on a real nats-server and database, with helpers to publish other services' events."""
from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.assessment.app import create_app
from services.assessment.config import AssessmentSettings
from shared.bus import Bus
from shared.db import utcnow
from shared.events import (
    Envelope,
    Fact,
    IncidentReported,
    Location,
    Severity,
    StationClassified,
    TaskChanged,
    UnitUpserted,
)
from shared.runtime import Runtime
from tests.helpers import auth, eventually, serving


def wrap(fact: Fact) -> Envelope:
    """An envelope as the owning service would publish it."""
    return Envelope(source=f"jiaozhi/{fact.owner()}", type=fact.subject, time=utcnow(),
                    data=fact.model_dump(mode="json"))


def unit(unit_id: str, kind: str = "station", parent_id: str | None = None, population: int | None = None
         ) -> Envelope:
    return wrap(UnitUpserted(unit_id=unit_id, name=unit_id.upper(), kind=kind, parent_id=parent_id,
                             population=population))


def mode(station_id: str, mode_: str) -> Envelope:
    return wrap(StationClassified(station_id=station_id, mode=mode_, source="model"))


def accident(station_id: str, occurred_at: str, kind: str = "accident") -> Envelope:
    return wrap(IncidentReported(
        incident_id=f"inc-{uuid.uuid4().hex}", external_id=f"ext-{uuid.uuid4().hex[:8]}", kind=kind,
        occurred_at=occurred_at, location=Location(lat=30.1, lon=120.45), station_id=station_id,
        severity=Severity()))


def task(task_id: str, station_id: str, at: str, *, old: str | None = None, new: str = "dispatched",
         category: str = "enterprise_rectification", deadline_at: str | None = None) -> Envelope:
    return wrap(TaskChanged(task_id=task_id, incident_id=None, model_id="E01", category=category,
                            station_id=station_id, unit_id=station_id, old_status=old, new_status=new, by="x",
                            at=at, deadline_at=deadline_at))


@dataclass
class Assessment:
    client: httpx.AsyncClient
    settings: AssessmentSettings
    rt: Runtime
    bus: Bus
    published: int = 0
    seen: set[str] = field(default_factory=set)

    async def publish(self, *envelopes: Envelope) -> None:
        """Publish events as dispatch and classification would, and wait until assessment consumed them."""
        assert self.bus.js is not None
        for envelope in envelopes:
            await self.bus.js.publish(envelope.type, envelope.model_dump_json().encode(),
                                      headers={"Nats-Msg-Id": uuid.uuid4().hex})
            self.published += 1
            self.seen.add(envelope.type)

        async def done() -> bool:
            total = 0.0
            for subject in self.seen:
                for outcome in ("handled", "duplicate"):
                    total += self.rt.metrics.registry.get_sample_value(
                        "events_consumed_total", {"subject": subject, "outcome": outcome}) or 0.0
            return total >= self.published

        await eventually(done, what=f"{self.published} events to be consumed")

    def headers(self, role: str = "command", unit_id: str | None = None) -> dict[str, str]:
        return auth(self.settings, role, unit_id=unit_id)

    async def get(self, path: str, role: str = "command", unit_id: str | None = None, **params: Any
                  ) -> httpx.Response:
        return await self.client.get(path, params=params, headers=self.headers(role, unit_id))

    async def post(self, path: str, body: Any, role: str = "platform", unit_id: str | None = None
                   ) -> httpx.Response:
        return await self.client.post(path, json=body, headers=self.headers(role, unit_id))


@pytest.fixture
async def assessment(database_url: str, nats_url: str, tmp_path: Path) -> AsyncIterator[Assessment]:
    settings = AssessmentSettings(database_url=database_url, nats_url=nats_url, data_dir=tmp_path,
                                  score_debounce_s=0.2, outbox_poll_s=0.1)
    bus = Bus(nats_url, name="test-publisher")
    await bus.connect(wait=5)
    await bus.ensure_stream("dispatch")
    await bus.ensure_stream("classification")
    await bus.ensure_stream("assessment")
    app = create_app(settings)
    try:
        async with serving(app) as client:
            yield Assessment(client, settings, app.state.rt, bus)
    finally:
        await bus.close()
