"""`jiaozhi up` as a user runs it: start, demo loaded, the first slice end to end, Ctrl-C, restart keeps data."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from deploy.components import ROOT
from deploy.natsd import free_port, free_port_block
from tests.e2e.helpers import all_tasks, drunk_incident, login, wait_for

pytestmark = pytest.mark.system


def start_launcher(data_dir: Path, base: int, nats_port: int) -> subprocess.Popen:
    env = dict(os.environ, JIAOZHI_DATA_DIR=str(data_dir), JIAOZHI_BASE_PORT=str(base),
               JIAOZHI_EMBEDDED_NATS_PORT=str(nats_port))
    env.pop("JIAOZHI_DATABASE_URL", None)
    return subprocess.Popen([sys.executable, "-m", "deploy.cli", "up"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_demo_loaded(gateway: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    """Until the gateway is ready and every demo station has its mode."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"launcher exited early:\n{proc.stdout.read() if proc.stdout else ''}"
        try:
            if httpx.get(gateway + "/readyz", timeout=2).status_code == 200:
                stations = httpx.get(gateway + "/api/v1/stations", headers=login(gateway, "command"), timeout=5)
                if stations.status_code == 200 and stations.json() and all(s["mode"] for s in stations.json()):
                    return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError("system not up with the demo district in time")


def stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    return out


def test_up_runs_the_first_slice_and_a_restart_keeps_the_data(tmp_path: Path) -> None:
    base, nats_port = free_port_block(), free_port()
    gateway = f"http://127.0.0.1:{base}"
    proc = start_launcher(tmp_path, base, nats_port)
    try:
        started = time.monotonic()
        wait_demo_loaded(gateway, proc)
        assert time.monotonic() - started < 60
        platform, station = login(gateway, "platform"), login(gateway, "ps-yiqiao")
        other_station = login(gateway, "ps-heshang")
        body = drunk_incident()
        with httpx.Client(base_url=gateway) as http:
            posted_at = time.monotonic()
            first = http.post("/api/v1/incidents", json=body, headers=platform)
            assert first.status_code == 201, first.text
            incident = first.json()
            assert incident["station_id"] == "ps-yiqiao" and incident["handling_unit_id"] == "ps-yiqiao"

            def p01_visible() -> list[dict]:
                return [t for t in all_tasks(http, station) if t["incident_id"] == incident["id"]]

            tasks = wait_for(p01_visible, timeout=5, interval=0.02)
            assert time.monotonic() - posted_at < 2.0, "P01 task took longer than 2 s to reach the station"
            assert [t["model_id"] for t in tasks] == ["P01"]
            assert tasks[0]["unit_id"] == "ps-yiqiao" and tasks[0]["routing_reason"]
            assert not [t for t in all_tasks(http, other_station) if t["incident_id"] == incident["id"]]

            again = http.post("/api/v1/incidents", json=body, headers=platform)
            assert again.status_code == 200 and again.json()["id"] == incident["id"]
            time.sleep(1.0)
            assert len(p01_visible()) == 1
    finally:
        out = stop(proc)
    assert proc.returncode == 0, out
    assert "stopped" in out
    leftovers = subprocess.run(["pgrep", "-f", f"JIAOZHI_DATA_DIR={tmp_path}"], capture_output=True, text=True)
    assert leftovers.stdout.strip() == ""

    proc = start_launcher(tmp_path, base, nats_port)
    try:
        wait_demo_loaded(gateway, proc)
        with httpx.Client(base_url=gateway) as http:
            kept = http.get(f"/api/v1/incidents/{incident['id']}", headers=login(gateway, "command"))
            assert kept.status_code == 200 and kept.json()["external_id"] == body["external_id"]
            tasks = [t for t in all_tasks(http, login(gateway, "ps-yiqiao")) if t["incident_id"] == incident["id"]]
            assert len(tasks) == 1
            units = http.get("/api/v1/units", headers=login(gateway, "command")).json()
            assert len(units) == len({u["id"] for u in units})
    finally:
        stop(proc)
