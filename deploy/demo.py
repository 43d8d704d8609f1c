"""Load the demo district into a running system through the public API (idempotent)."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import httpx
from rich.console import Console

DISTRICT = Path(__file__).with_name("demo_district.json")


def load_demo(gateway: str, *, console: Console, password: str | None = None, timeout: float = 30.0) -> None:
    """Units to dispatch, features to classification, one classification run; waits until modes arrive."""
    password = password or os.environ.get("JIAOZHI_DEMO_PASSWORD", "demo")
    district = json.loads(DISTRICT.read_text(encoding="utf-8"))
    with httpx.Client(base_url=gateway, timeout=30) as http:
        token = http.post("/api/v1/auth/token", data={"grant_type": "password", "username": "admin",
                                                      "password": password})
        token.raise_for_status()
        http.headers["authorization"] = "Bearer " + token.json()["access_token"]
        http.post("/api/v1/units", json=district["units"]).raise_for_status()
        deadline = time.monotonic() + timeout
        pending = dict(district["features"])
        while pending:  # classification learns of stations through events: wait for them to arrive
            for station_id, features in list(pending.items()):
                r = http.put(f"/api/v1/stations/{station_id}/features",
                             json={"period": district["period"], "features": features})
                if r.status_code == 204:
                    del pending[station_id]
                elif r.status_code != 404:
                    r.raise_for_status()
            if pending and time.monotonic() > deadline:
                raise TimeoutError(f"classification never learned of {sorted(pending)}")
            if pending:
                time.sleep(0.2)
        run = http.post("/api/v1/classification/runs", json={"period": district["period"]})
        run.raise_for_status()
        stations = {s["id"] for s in district["units"] if s["kind"] == "station"}
        while True:
            moded = {s["id"] for s in http.get("/api/v1/stations").raise_for_status().json() if s["mode"]}
            if stations <= moded or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    sizes = run.json()["sizes"]
    console.print(f"demo district loaded: {len(district['units'])} units, {len(stations)} stations; "
                  f"modes {sizes}; log in as admin, command, platform or a station id (password: demo)")
