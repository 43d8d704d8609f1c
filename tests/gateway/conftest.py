"""A running system (nats-server, four services, the gateway as processes) with two stations' objects, shared
by the authorization matrix and the schemathesis run: started once per session, on free ports."""
from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from deploy.components import ROOT
from deploy.natsd import free_port, free_port_block
from deploy.supervisor import System
from shared.auth import Identity, issue_internal_token
from shared.settings import Settings
from tests.e2e.helpers import drunk_incident

INSIDE, OUTSIDE = "ps-yiqiao", "ps-chengxiang"  # the station user's own station, and one in another squadron
SQUADRON = "sq-rural"  # ps-yiqiao's squadron
UNITS = ("brigade", "case-squadron", "order-squadron", "sq-urban", "sq-fringe", "sq-rural", "ps-chengxiang",
         "ps-yiqiao")
POINTS = {INSIDE: (30.10, 120.45), OUTSIDE: (30.10, 120.25)}
USERS = {"admin": "admin", "command": "command", "squadron": SQUADRON, "station": INSIDE, "platform": "platform"}


@dataclass
class Live:
    """The running system, a token per role, and the objects inside and outside the station user's jurisdiction."""

    system: System
    gateway: str
    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    objects: dict[str, dict[str, str]] = field(default_factory=dict)  # "inside"/"outside" → name → id

    def service_headers(self, role: str) -> dict[str, str]:
        """What the gateway would pass a service for this role's user (to call a service directly)."""
        identity = Identity(username=USERS[role], role=role,  # type: ignore[arg-type]
                            unit_id=USERS[role] if role in ("station", "squadron") else None)
        key = self.system.keys().signing  # the launched system's gateway key (its data dir's)
        return {"authorization": "Bearer " + issue_internal_token(Settings(), identity, key=key)}


def _incident(station: str) -> dict:
    lat, lon = POINTS[station]
    body = drunk_incident(f"matrix-{station}-{uuid.uuid4().hex[:8]}", lat=lat, lon=lon)
    return body | {"occurred_at": dt.datetime.now(dt.UTC).isoformat()}  # an old one is history: no task orders


def _login(http: httpx.Client, username: str) -> dict[str, str]:
    for _ in range(50):  # unit logins need dispatch to know the unit: it may take a moment after the upsert
        r = http.post("/api/v1/auth/token", data={"grant_type": "password", "username": username, "password": "demo"})
        if r.status_code == 200:
            return {"authorization": "Bearer " + r.json()["access_token"]}
        time.sleep(0.1)
    raise AssertionError(f"cannot log in as {username}: {r.text}")


def _first_task(http: httpx.Client, headers: dict, incident_id: str) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        r = http.get("/api/v1/tasks", params={"incident_id": incident_id}, headers=headers)
        if r.status_code == 200 and r.json()["items"]:
            return r.json()["items"][0]["id"]
        time.sleep(0.1)
    raise AssertionError(f"no task order for incident {incident_id}: {r.status_code} {r.text[:300]}")


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """The whole system on free ports, with units, two incidents (one per station) and their task orders."""
    data = tmp_path_factory.mktemp("live")
    system = System.on_ports(Path(data), free_port_block(), free_port())
    system.env.update({"JIAOZHI_ENVIRONMENT": "test", "JIAOZHI_LOG_LEVEL": "WARNING",
                       "JIAOZHI_RATE_PER_S": "100000", "JIAOZHI_RATE_BURST": "100000",
                       "JIAOZHI_LOGIN_RATE_PER_MIN": "100000"})
    try:
        system.up()
        gateway = system.url("gateway")
        live = Live(system, gateway)
        units = [u for u in json.loads((ROOT / "deploy" / "demo_district.json").read_text())["units"]
                 if u["id"] in UNITS]
        with httpx.Client(base_url=gateway, timeout=30) as http:
            admin = _login(http, "admin")
            http.post("/api/v1/units", json=units, headers=admin).raise_for_status()
            live.headers = {role: _login(http, user) for role, user in USERS.items()}
            inside = http.post("/api/v1/incidents", json=_incident(INSIDE), headers=live.headers["platform"])
            outside = http.post("/api/v1/incidents", json=_incident(OUTSIDE), headers=live.headers["command"])
            assert inside.status_code == 201, inside.text
            assert outside.status_code == 201, outside.text
            for name, incident in (("inside", inside.json()), ("outside", outside.json())):
                assert incident["station_id"] == (INSIDE if name == "inside" else OUTSIDE), incident
                live.objects[name] = {
                    "incident_id": incident["id"], "station_id": incident["station_id"],
                    "unit_id": incident["station_id"],
                    "task_id": _first_task(http, live.headers["admin"], incident["id"]),
                }
        yield live
    finally:
        system.down()
