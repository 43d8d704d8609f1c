"""Service counts incidents and task orders from real NATS events per local day, on SQLite and PostgreSQL."""
from __future__ import annotations

import uuid

import pytest

from shared.events import Envelope, IncidentReported, Location, Severity, TaskChanged
from tests.helpers import Service, auth, envelope_of
from tests.services.assessment.helpers import tallies, unit


def incident(station_id: str | None, occurred_at: str, *, deaths: int = 0, injuries: int = 0) -> Envelope:
    return envelope_of(IncidentReported(
        incident_id=f"inc-{uuid.uuid4().hex}", external_id=f"ext-{uuid.uuid4().hex[:8]}", kind="accident",
        occurred_at=occurred_at, location=Location(lat=30.1, lon=120.45), station_id=station_id,
        severity=Severity(deaths=deaths, injuries=injuries)))


def task_changed(station_id: str, at: str, *, old_status: str | None = None, new_status: str = "dispatched"
                 ) -> Envelope:
    return envelope_of(TaskChanged(task_id=f"task-{uuid.uuid4().hex}", incident_id=None, model_id="P01",
                            category="personal_penalty", station_id=station_id, unit_id=station_id,
                            old_status=old_status, new_status=new_status, by="dispatch", at=at))


async def test_an_incident_and_a_new_task_order_are_counted_in_their_month(assessment: Service) -> None:
    await assessment.publish(
        incident("ps-yiqiao", "2024-05-01T08:30:00+08:00", deaths=1, injuries=2),
        task_changed("ps-yiqiao", "2024-05-01T09:00:00+08:00"),
        task_changed("ps-yiqiao", "2024-05-02T09:00:00+08:00", old_status="dispatched", new_status="accepted"),
    )
    await assessment.settle(3)

    may = await tallies(assessment, "2024-05")

    assert may == {"ps-yiqiao": {"mode": None, "incidents": 1, "deaths": 1, "injuries": 2, "tasks_created": 1}}
    assert await tallies(assessment, "2024-04") == {}


async def test_the_same_incident_envelope_delivered_twice_counts_once(assessment: Service) -> None:
    envelope = incident("ps-yiqiao", "2024-05-01T08:30:00+08:00", deaths=1)
    await assessment.publish(envelope, envelope)  # different Nats-Msg-Id: JetStream keeps both copies
    await assessment.settle(2)

    may = await tallies(assessment, "2024-05")

    assert (may["ps-yiqiao"]["incidents"], may["ps-yiqiao"]["deaths"]) == (1, 1)
    assert assessment.rt.metrics.registry.get_sample_value(
        "events_consumed_total", {"subject": IncidentReported.subject, "outcome": "duplicate"}) == 1


async def test_incidents_count_on_their_local_day_in_asia_shanghai(assessment: Service) -> None:
    await assessment.publish(
        incident("ps-heshang", "2024-05-31T23:30:00+08:00"),  # still May 31 locally
        incident("ps-heshang", "2024-05-31T16:30:00Z"),  # June 1, 00:30 in Asia/Shanghai
        incident("ps-heshang", "2024-04-30T16:00:00Z"),  # May 1, 00:00 locally
    )
    await assessment.settle(3)

    may = await tallies(assessment, "2024-05")
    june = await tallies(assessment, "2024-06")

    assert may["ps-heshang"]["incidents"] == 2
    assert june["ps-heshang"]["incidents"] == 1
    assert await tallies(assessment, "2024-04") == {}


async def test_an_incident_outside_every_area_is_not_counted_for_any_station(assessment: Service) -> None:
    await assessment.publish(incident(None, "2024-05-10T10:00:00+08:00", deaths=3),
                             incident("ps-yiqiao", "2024-05-10T10:00:00+08:00"))
    await assessment.settle(2)

    assert set(await tallies(assessment, "2024-05")) == {"ps-yiqiao"}


async def test_a_station_user_sees_only_its_own_row(assessment: Service) -> None:
    await assessment.publish(incident("ps-yiqiao", "2024-05-03T10:00:00+08:00"),
                             incident("ps-heshang", "2024-05-03T11:00:00+08:00", injuries=1))
    await assessment.settle(2)

    as_station = await tallies(assessment, "2024-05", role="station", unit_id="ps-heshang")
    as_command = await tallies(assessment, "2024-05")

    assert list(as_station) == ["ps-heshang"]
    assert as_station["ps-heshang"]["injuries"] == 1
    assert set(as_command) == {"ps-yiqiao", "ps-heshang"}


async def test_a_squadron_user_sees_the_rows_of_its_zone(assessment: Service) -> None:
    await assessment.publish(unit("sq-rural", "squadron"), unit("ps-yiqiao", parent_id="sq-rural"),
                             unit("ps-chengxiang", parent_id="sq-urban"), wait=True)
    await assessment.publish(incident("ps-yiqiao", "2024-05-03T10:00:00+08:00"),
                             incident("ps-chengxiang", "2024-05-03T11:00:00+08:00"), wait=True)

    assert list(await tallies(assessment, "2024-05", role="squadron", unit_id="sq-rural")) == ["ps-yiqiao"]


@pytest.mark.parametrize("period", ["2024-13", "May", "2024-5", "2024-00"])
async def test_a_bad_period_is_a_422_problem(assessment: Service, period: str) -> None:
    response = await assessment.client.get("/api/v1/assessment/tallies", params={"period": period},
                                           headers=auth(assessment.settings, "command"))

    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["status"] == 422
