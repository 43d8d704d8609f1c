"""Assessment counts incidents and task orders from real NATS events per local day, on SQLite and PostgreSQL."""
from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.assessment.app import create_app
from services.assessment.config import AssessmentSettings
from shared.bus import Bus
from shared.db import utcnow
from shared.events import Envelope, Fact, IncidentReported, Location, Severity, TaskChanged
from shared.runtime import Runtime
from tests.helpers import auth, eventually, serving


def wrap(fact: Fact) -> Envelope:
    return Envelope(source="jiaozhi/dispatch", type=fact.subject, time=utcnow(), data=fact.model_dump(mode="json"))


def incident(station_id: str | None, occurred_at: str, *, deaths: int = 0, injuries: int = 0) -> Envelope:
    return wrap(IncidentReported(
        incident_id=f"inc-{uuid.uuid4().hex}", external_id=f"ext-{uuid.uuid4().hex[:8]}", kind="accident",
        occurred_at=occurred_at, location=Location(lat=30.1, lon=120.45), station_id=station_id,
        severity=Severity(deaths=deaths, injuries=injuries)))


def task_changed(station_id: str, at: str, *, old_status: str | None = None, new_status: str = "dispatched"
                 ) -> Envelope:
    return wrap(TaskChanged(task_id=f"task-{uuid.uuid4().hex}", incident_id=None, model_id="P01",
                            category="personal_penalty", station_id=station_id, unit_id=station_id,
                            old_status=old_status, new_status=new_status, by="dispatch", at=at))


@dataclass
class Assessment:
    client: httpx.AsyncClient
    settings: AssessmentSettings
    rt: Runtime
    bus: Bus

    async def publish(self, *envelopes: Envelope) -> None:
        assert self.bus.js is not None
        for envelope in envelopes:
            await self.bus.js.publish(envelope.type, envelope.model_dump_json().encode(),
                                      headers={"Nats-Msg-Id": uuid.uuid4().hex})

    def consumed(self) -> float:
        """How many dispatch events the consumer has finished with (handled or duplicate)."""
        total = 0.0
        for subject in (IncidentReported.subject, TaskChanged.subject):
            for outcome in ("handled", "duplicate"):
                total += self.rt.metrics.registry.get_sample_value(
                    "events_consumed_total", {"subject": subject, "outcome": outcome}) or 0.0
        return total

    async def settle(self, expected: int) -> None:
        async def done() -> bool:
            return self.consumed() >= expected

        await eventually(done, what=f"{expected} events to be consumed")

    async def tallies(self, period: str, role: str = "command", unit_id: str | None = None) -> dict[str, Any]:
        response = await self.client.get("/api/v1/assessment/tallies", params={"period": period},
                                         headers=auth(self.settings, role, unit_id=unit_id))
        assert response.status_code == 200, response.text
        assert response.json()["period"] == period
        return {row.pop("station_id"): row for row in response.json()["stations"]}


@pytest.fixture
async def assessment(database_url: str, nats_url: str, tmp_path: Path) -> AsyncIterator[Assessment]:
    settings = AssessmentSettings(database_url=database_url, nats_url=nats_url, data_dir=tmp_path)
    bus = Bus(nats_url, name="test-dispatch")
    await bus.connect(wait=5)
    await bus.ensure_stream("dispatch")
    app = create_app(settings)
    try:
        async with serving(app) as client:
            yield Assessment(client, settings, app.state.rt, bus)
    finally:
        await bus.close()


async def test_an_incident_and_a_new_task_order_are_counted_in_their_month(assessment: Assessment) -> None:
    await assessment.publish(
        incident("ps-yiqiao", "2024-05-01T08:30:00+08:00", deaths=1, injuries=2),
        task_changed("ps-yiqiao", "2024-05-01T09:00:00+08:00"),
        task_changed("ps-yiqiao", "2024-05-02T09:00:00+08:00", old_status="dispatched", new_status="accepted"),
    )
    await assessment.settle(3)

    may = await assessment.tallies("2024-05")

    assert may == {"ps-yiqiao": {"mode": None, "incidents": 1, "deaths": 1, "injuries": 2, "tasks_created": 1}}
    assert await assessment.tallies("2024-04") == {}


async def test_the_same_incident_envelope_delivered_twice_counts_once(assessment: Assessment) -> None:
    envelope = incident("ps-yiqiao", "2024-05-01T08:30:00+08:00", deaths=1)
    await assessment.publish(envelope, envelope)  # different Nats-Msg-Id: JetStream keeps both copies
    await assessment.settle(2)

    may = await assessment.tallies("2024-05")

    assert (may["ps-yiqiao"]["incidents"], may["ps-yiqiao"]["deaths"]) == (1, 1)
    assert assessment.rt.metrics.registry.get_sample_value(
        "events_consumed_total", {"subject": IncidentReported.subject, "outcome": "duplicate"}) == 1


async def test_incidents_count_on_their_local_day_in_asia_shanghai(assessment: Assessment) -> None:
    await assessment.publish(
        incident("ps-heshang", "2024-05-31T23:30:00+08:00"),  # still May 31 locally
        incident("ps-heshang", "2024-05-31T16:30:00Z"),  # June 1, 00:30 in Asia/Shanghai
        incident("ps-heshang", "2024-04-30T16:00:00Z"),  # May 1, 00:00 locally
    )
    await assessment.settle(3)

    may = await assessment.tallies("2024-05")
    june = await assessment.tallies("2024-06")

    assert may["ps-heshang"]["incidents"] == 2
    assert june["ps-heshang"]["incidents"] == 1
    assert await assessment.tallies("2024-04") == {}


async def test_an_incident_outside_every_area_is_not_counted_for_any_station(assessment: Assessment) -> None:
    await assessment.publish(incident(None, "2024-05-10T10:00:00+08:00", deaths=3),
                             incident("ps-yiqiao", "2024-05-10T10:00:00+08:00"))
    await assessment.settle(2)

    assert set(await assessment.tallies("2024-05")) == {"ps-yiqiao"}


async def test_a_station_user_sees_only_its_own_row(assessment: Assessment) -> None:
    await assessment.publish(incident("ps-yiqiao", "2024-05-03T10:00:00+08:00"),
                             incident("ps-heshang", "2024-05-03T11:00:00+08:00", injuries=1))
    await assessment.settle(2)

    as_station = await assessment.tallies("2024-05", role="station", unit_id="ps-heshang")
    as_command = await assessment.tallies("2024-05")

    assert list(as_station) == ["ps-heshang"]
    assert as_station["ps-heshang"]["injuries"] == 1
    assert set(as_command) == {"ps-yiqiao", "ps-heshang"}


@pytest.mark.parametrize("period", ["2024-13", "May", "2024-5", "2024-00"])
async def test_a_bad_period_is_a_422_problem(assessment: Assessment, period: str) -> None:
    response = await assessment.client.get("/api/v1/assessment/tallies", params={"period": period},
                                           headers=auth(assessment.settings, "command"))

    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["status"] == 422
