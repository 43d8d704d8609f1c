"""The closed loop through the gateway as its users would drive it: platform, station, squadron, command.

Dispatch runs behind a real HTTP server on a free port, the gateway in-process in front of it; the task
order arrives over NATS as tracing would publish it. Runs on SQLite and PostgreSQL.
"""
from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

import httpx
import nats

from deploy.natsd import free_port
from gateway.app import create_app as create_gateway
from gateway.config import GatewaySettings
from services.dispatch.models import TaskOrder
from shared.db import utcnow
from shared.events import Envelope, Milestone, TaskOrderGenerated
from tests.helpers import assert_problem, eventually, serving
from tests.services.dispatch.support import DEMO, IN_YIQIAO, served, set_modes, settings_for


async def login(gateway: httpx.AsyncClient, username: str) -> dict[str, str]:
    response = await gateway.post("/api/v1/auth/token", data={"grant_type": "password", "username": username,
                                                               "password": "demo"})
    assert response.status_code == 200, response.text
    return {"authorization": "Bearer " + response.json()["access_token"]}


async def publish_order(nats_url: str, incident_id: str) -> str:
    """Publish a generated order on the tracing stream, as tracing would."""
    now = utcnow()
    fact = TaskOrderGenerated(
        task_id=f"task-e2e-{incident_id}", incident_id=incident_id, model_id="P01", model_version=1, source="person",
        entity_ref="person:e2e", category="personal_penalty", station_id="ps-yiqiao",
        deadline_at=now + dt.timedelta(days=3),
        milestones=[Milestone(name="interview", due_at=now + dt.timedelta(days=1))],
        reason="drunk driver")
    envelope = Envelope(source="jiaozhi/tracing", type=fact.subject, subject=fact.task_id, time=now,
                        data=fact.model_dump(mode="json"))
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        try:
            await js.add_stream(name="TRACING", subjects=["tracing.>"])
        except Exception:  # noqa: BLE001, S110 - dispatch's consumer may have created it already
            pass
        await js.publish(fact.subject, envelope.model_dump_json().encode(), headers={"Nats-Msg-Id": envelope.id})
    finally:
        await nc.close()
    return fact.task_id


async def test_a_station_runs_the_loop_through_the_gateway_and_illegal_steps_are_refused(
        database_url: str, nats_url: str, tmp_path: Path) -> None:
    async with served(settings_for(database_url, nats_url, tmp_path)) as (dispatch_url, app):
        dead = f"http://127.0.0.1:{free_port()}"
        gateway_settings = GatewaySettings(
            environment="test", database_url=f"sqlite+aiosqlite:///{tempfile.mkdtemp(prefix='jz-gw-')}/gw.db",
            nats_url=nats_url, dispatch_url=dispatch_url, classification_url=dead, tracing_url=dead,
            assessment_url=dead, log_level="WARNING")
        async with serving(create_gateway(gateway_settings)) as gw:
            admin = await login(gw, "admin")
            assert (await gw.post("/api/v1/units", json=DEMO["units"], headers=admin)).status_code == 200

            await set_modes(app.state.rt, {"ps-yiqiao": "deep"})

            platform, station = await login(gw, "platform"), await login(gw, "ps-yiqiao")
            squadron, command = await login(gw, "sq-rural"), await login(gw, "command")
            reported = await gw.post("/api/v1/incidents", headers=platform, json={
                "external_id": "e2e-loop-1", "occurred_at": dt.datetime.now(dt.UTC).isoformat(),
                "location": IN_YIQIAO})
            assert reported.status_code == 201, reported.text
            incident = reported.json()
            assert incident["handling_unit_id"] == "ps-yiqiao"
            arrived_at = (dt.datetime.fromisoformat(incident["dispatched_at"]) + dt.timedelta(seconds=200))
            arrival = await gw.post(f"/api/v1/incidents/{incident['id']}/arrival", headers=station,
                                    json={"arrived_at": arrived_at.isoformat()})
            assert arrival.status_code == 200, arrival.text
            assert arrival.json()["within_5_min"] is True

            task_id = await publish_order(nats_url, incident["id"])

            async def station_sees_it() -> bool:
                page = await gw.get("/api/v1/tasks", headers=station)
                return any(t["id"] == task_id for t in page.json()["items"])

            await eventually(station_sees_it, what="the order reaching ps-yiqiao through the bus", timeout=20)

            async def step(headers: dict[str, str], action: str, **body: object) -> httpx.Response:
                return await gw.post(f"/api/v1/tasks/{task_id}/transitions", headers=headers,
                                     json={"action": action} | body)

            assert_problem(await step(station, "submit"), 409)
            assert (await step(station, "accept", note="received")).status_code == 200
            assert (await step(station, "start")).status_code == 200
            assert (await step(station, "complete_milestone", milestone="interview",
                               evidence=["photo://interview-1"])).status_code == 200
            assert (await step(station, "submit", note="penalty issued")).status_code == 200
            assert_problem(await step(station, "verify"), 403)
            assert_problem(await step(await login(gw, "ps-heshang"), "accept"), 404)
            verified = await step(squadron, "verify", note="checked")
            assert verified.status_code == 200, verified.text
            assert_problem(await step(station, "start"), 409)

            final = (await gw.get(f"/api/v1/tasks/{task_id}", headers=station)).json()
            assert final["status"] == "verified"
            assert [h["by"] for h in final["history"]][2:] == ["ps-yiqiao"] * 4 + ["sq-rural"]
            rates = await gw.get("/api/v1/arrival-rates", params={"group_by": "station"}, headers=command)
            assert rates.json()["groups"] == [{"key": "ps-yiqiao", "dispatched": 1, "arrived": 1, "within_5_min": 1,
                                               "rate": 1.0, "mean_response_s": 200.0}]
            async with app.state.rt.sessions() as session:
                assert (await session.get(TaskOrder, task_id)).version == len(final["history"])
