"""Idempotency-Key on a real task transition through the running system, and a second gateway instance on the
same gateway database: the retry (its answer lost) gets the same answer with one effect."""
from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest

from gateway.app import create_app
from gateway.config import GatewaySettings
from tests.e2e.helpers import drunk_incident
from tests.gateway.conftest import Live
from tests.helpers import assert_problem, serving

pytestmark = [pytest.mark.system, pytest.mark.xdist_group("live")]


async def _task_of(http: httpx.AsyncClient, headers: dict, incident_id: str) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        items = (await http.get("/api/v1/tasks", params={"incident_id": incident_id}, headers=headers)).json()
        if items["items"]:
            return items["items"][0]["id"]
        await asyncio.sleep(0.1)
    raise AssertionError(f"no task order for {incident_id}")


async def test_a_lost_answer_retried_with_the_same_key_on_another_gateway_applies_once(
        live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    command = live.headers["command"]
    async with httpx.AsyncClient(base_url=live.gateway, timeout=30) as http:
        incident = await http.post("/api/v1/incidents", json=drunk_incident(lat=30.10, lon=120.45), headers=command)
        assert incident.status_code == 201, incident.text
        task_id = await _task_of(http, command, incident.json()["id"])
        station = live.headers["station"]  # ps-yiqiao, the receiving unit: only it accepts
        key = station | {"idempotency-key": str(uuid.uuid4())}
        path = f"/api/v1/tasks/{task_id}/transitions"
        first = await http.post(path, json={"action": "accept"}, headers=key)  # its answer "lost" by the caller
        assert first.status_code == 200, first.text
    env = live.system.env_for("gateway")  # the same database and services: a second gateway
    for name, value in env.items():
        if name.startswith("JIAOZHI_"):
            monkeypatch.setenv(name, value)
    async with serving(create_app(GatewaySettings())) as other:
        retry = await other.post(path, json={"action": "accept"}, headers=key)
        assert (retry.status_code, retry.json()) == (first.status_code, first.json())
        assert retry.headers["idempotent-replayed"] == "true"
        refused = await other.post(path, json={"action": "start"}, headers=key)
        assert_problem(refused, 422)
        task = (await other.get(f"/api/v1/tasks/{task_id}", headers=command)).json()
    accepted = [h for h in task["history"] if h["action"] == "accept"]
    assert len(accepted) == 1 and task["status"] == first.json()["status"]
    # without the key the same step again is the service's own 409: the key is what made the retry safe
    async with httpx.AsyncClient(base_url=live.gateway, timeout=30) as http:
        assert_problem(await http.post(path, json={"action": "accept"}, headers=station), 409)
