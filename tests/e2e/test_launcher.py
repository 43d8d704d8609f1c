"""`jiaozhi up` as a user runs it: start, demo loaded, the first slice end to end, Ctrl-C, restart keeps data."""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx
import pytest

from deploy.natsd import free_port, free_port_block
from tests.e2e.helpers import all_tasks, drunk_incident, login, wait_for
from tests.e2e.launcher import Launcher, start_launcher

pytestmark = pytest.mark.system

#: generous bound on start + the calibrated demo (30 days of detail) on a loaded 2-core CI machine
DEMO_LOADED_WITHIN_S = 240
ISO_WITH_OFFSET = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?[+-]\d\d:\d\d")


def wait_demo_loaded(gateway: str, launcher: Launcher, timeout: float = DEMO_LOADED_WITHIN_S) -> None:
    """Until the gateway is ready and the launcher says the demo district is loaded (or already was)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert launcher.proc.poll() is None, f"launcher exited early:\n{launcher.output}"
        if "demo district loaded" in launcher.output or "demo district already loaded" in launcher.output:
            try:
                if httpx.get(gateway + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
        time.sleep(0.3)
    raise TimeoutError(f"system not up with the demo district in {timeout}s:\n{launcher.output[-3000:]}")


def p01_of(http: httpx.Client, headers: dict, incident_id: str) -> list[dict]:
    return [t for t in all_tasks(http, headers) if t["incident_id"] == incident_id and t["model_id"] == "P01"]


def test_up_runs_the_first_slice_and_a_restart_keeps_the_data(tmp_path: Path) -> None:
    base, nats_port = free_port_block(), free_port()
    gateway = f"http://127.0.0.1:{base}"
    launcher = start_launcher(tmp_path, base, nats_port)
    try:
        wait_demo_loaded(gateway, launcher)
        platform, station = login(gateway, "platform"), login(gateway, "ps-yiqiao")
        other_station = login(gateway, "ps-heshang")
        with httpx.Client(base_url=gateway) as http:
            # the demo's month of incidents is still being traced and routed: wait until that backlog is through
            warm = http.post("/api/v1/incidents", json=drunk_incident(), headers=platform).json()
            wait_for(lambda: p01_of(http, station, warm["id"]), timeout=180, interval=0.5)

            body = drunk_incident()
            posted_at = time.monotonic()
            first = http.post("/api/v1/incidents", json=body, headers=platform)
            assert first.status_code == 201, first.text
            incident = first.json()
            assert incident["station_id"] == "ps-yiqiao" and incident["handling_unit_id"] == "ps-yiqiao"

            tasks = wait_for(lambda: p01_of(http, station, incident["id"]), timeout=5, interval=0.02)
            assert time.monotonic() - posted_at < 2.0, "P01 task took longer than 2 s to reach the station"
            assert len(tasks) == 1
            assert tasks[0]["unit_id"] == "ps-yiqiao" and tasks[0]["routing_reason"]
            assert not [t for t in all_tasks(http, other_station) if t["incident_id"] == incident["id"]]

            again = http.post("/api/v1/incidents", json=body, headers=platform)
            assert again.status_code == 200 and again.json()["id"] == incident["id"]
            time.sleep(1.0)
            assert len(p01_of(http, station, incident["id"])) == 1
    finally:
        out = launcher.stop()
    # an operator follows the incident through the logs by the trace id its answer carried (up's defaults)
    trace_id = first.headers["traceparent"].split("-")[1]
    for name in ("gateway", "dispatch", "tracing"):
        lines = (tmp_path / "logs" / f"{name}.log").read_text().splitlines()
        assert any(f'"trace_id": "{trace_id}"' in line for line in lines), f"{name}'s log lacks the incident's trace"
        assert not [x for x in lines if "\x1b[" in x], f"{name}'s log holds terminal colour codes"
        stamped = [json.loads(x)["time"] for x in lines if x.startswith("{")]
        assert stamped and all(ISO_WITH_OFFSET.fullmatch(t) for t in stamped), f"{name}: a time without offset"
    assert launcher.proc.returncode == 130, out  # Ctrl-C
    assert "stopped" in out and "Traceback" not in out
    assert launcher.processes() == [] and launcher.taken_ports() == []
    violations = [x for x in (tmp_path / "logs" / "nats.log").read_text().splitlines() if "Violation" in x]
    assert violations == [], "a service needed a NATS permission it was not given (deploy/nats_auth.py)"

    launcher = start_launcher(tmp_path, base, nats_port)
    try:
        wait_demo_loaded(gateway, launcher, timeout=240)  # the whole demo; slow on a loaded machine
        assert "demo district already loaded" in launcher.output  # a restart keeps the district, adds nothing
        with httpx.Client(base_url=gateway) as http:
            kept = http.get(f"/api/v1/incidents/{incident['id']}", headers=login(gateway, "command"))
            assert kept.status_code == 200 and kept.json()["external_id"] == body["external_id"]
            assert len(p01_of(http, login(gateway, "ps-yiqiao"), incident["id"])) == 1
            units = http.get("/api/v1/units", params={"limit": 500}, headers=login(gateway, "command")).json()["items"]
            assert units and len(units) == len({u["id"] for u in units})
    finally:
        launcher.stop()
