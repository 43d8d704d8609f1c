"""Load the calibrated demo district into a running system through the public API (idempotent).

Units go to dispatch; the year's features go to classification as one bulk CSV (computed from the
generated records with the service's own aggregation) and a run classifies the stations; the last
`recent_days` of records go in as detail: incidents via `POST /incidents:batch` with their dispatch and
arrival times (the back-fill fields), activities via `POST /activities:batch`. See docs/DEMO.md.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import os
import random
import time
import zlib
from typing import Any

import httpx
from rich.console import Console
from rich.progress import Progress

from deploy.demo_activities import daily_work, load_history
from deploy.demo_district import District, generate
from services.classification.classifier import CANONICAL_FEATURES

BATCH = 200  # items per batch request (the endpoints take up to 1000; smaller keeps each request short)
DEFAULT_SEED = 2021


def _iso(moment: dt.datetime) -> str:
    return moment.isoformat(timespec="seconds")


def features_csv(district: District) -> str:
    """The district's features as the bulk import takes them."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["station_id", "period", *CANONICAL_FEATURES])
    for sid, features in sorted(district.features.items()):
        writer.writerow([sid, district.period, *(repr(round(features[n], 6)) for n in CANONICAL_FEATURES)])
    return out.getvalue()


def _login(http: httpx.Client, password: str) -> None:
    token = http.post("/api/v1/auth/token", data={"grant_type": "password", "username": "admin", "password": password})
    token.raise_for_status()
    http.headers["authorization"] = "Bearer " + token.json()["access_token"]


def _already_loaded(http: httpx.Client) -> bool:
    runs = http.get("/api/v1/classification/runs", params={"limit": 1})
    return runs.status_code == 200 and bool(runs.json()["items"])


def _import_features(http: httpx.Client, district: District, deadline: float) -> None:
    """Classification learns of stations through events: retry while some are still unknown to it."""
    body = features_csv(district)
    while True:
        r = http.post("/api/v1/classification/features", content=body, headers={"content-type": "text/csv"})
        if r.status_code == 200:
            return
        # the problem's `unknown` member lists them (its detail is in the caller's language: never match text)
        unknown = r.status_code == 422 and "json" in r.headers.get("content-type", "") and r.json().get("unknown")
        if not unknown or time.monotonic() > deadline:
            raise RuntimeError(f"feature import failed: {r.status_code} {r.text[:300]}")
        time.sleep(0.2)


def _incident_body(record: dict[str, Any], arrival_rate: float) -> dict[str, Any]:
    """An incident as a back-fill: reported, dispatched at once, and arrived after a drawn delay
    (within 5 minutes with probability `arrival_rate`, the station's rate)."""
    rng = random.Random(zlib.crc32(record["external_id"].encode()) + 1)
    reported = record["occurred_at"] + dt.timedelta(seconds=rng.randint(30, 180))
    delay = rng.uniform(60, 295) if rng.random() < arrival_rate else rng.uniform(310, 1800)
    body = {"external_id": record["external_id"], "kind": record["kind"], "occurred_at": _iso(record["occurred_at"]),
            "reported_at": _iso(reported), "dispatched_at": _iso(reported),
            "arrived_at": _iso(reported + dt.timedelta(seconds=delay)),
            "location": record["location"], "severity": record["severity"]}
    if record.get("parties"):
        body["parties"] = record["parties"]
    return body


def _post_batches(http: httpx.Client, path: str, items: list[dict], console: Console,
                  progress: Progress, label: str) -> list[dict] | None:
    """POST items in batches; per-item results, or None (with a warning) if the endpoint is missing."""
    results: list[dict] = []
    task = progress.add_task(label, total=len(items))
    for i in range(0, len(items), BATCH):
        try:
            r = http.post(path, json=items[i:i + BATCH], timeout=120)
        except httpx.HTTPError as exc:
            r = None
            reason = type(exc).__name__
        if r is None or r.status_code != 200:
            reason = reason if r is None else f"{r.status_code} {r.text[:200]}"
            console.print(f"[yellow]warning:[/yellow] {path} failed ({reason}); {len(items) - i} of {len(items)} "
                          "demo records not loaded")
            progress.remove_task(task)
            return results or None
        results += r.json()["results"]
        progress.advance(task, min(BATCH, len(items) - i))
    return results


def load_demo(gateway: str, *, console: Console, password: str | None = None, timeout: float = 60.0,
              seed: int | None = None, recent_days: int = 30, anchor: dt.datetime | None = None) -> dict[str, Any]:
    """Load the demo district; without a `seed`, a system that already has a run is left as it is."""
    password = password or os.environ.get("JIAOZHI_DEMO_PASSWORD", "demo")
    deadline = time.monotonic() + timeout
    summary: dict[str, Any] = {}
    with Progress(console=console, transient=True) as progress:
        generating = progress.add_task("generating the demo district", total=26)
        district = generate(seed or DEFAULT_SEED, anchor=anchor, tick=lambda: progress.advance(generating))
        progress.update(generating, completed=26)
        with httpx.Client(base_url=gateway, timeout=60) as http:
            _login(http, password)
            http.post("/api/v1/units", json=district.units).raise_for_status()
            if seed is None and _already_loaded(http):
                console.print("demo district already loaded (a classification run exists); "
                              "`jiaozhi demo --seed N` loads a new one")
                return {"skipped": True}
            _import_features(http, district, deadline)
            run = http.post("/api/v1/classification/runs", json={"period": district.period})
            run.raise_for_status()
            summary["run"] = {"id": run.json()["id"], "sizes": run.json()["sizes"]}
            incidents, activities = district.recent(recent_days)
            bodies = [_incident_body(r, district.arrival_rates[r["station_id"]]) for r in incidents]
            results = _post_batches(http, "/api/v1/incidents:batch", bodies, console, progress,
                                    f"incidents with arrivals, last {recent_days} days")
            if results is not None:
                summary["incidents"] = {k: sum(1 for r in results if r.get("status") == s)
                                        for k, s in (("created", 201), ("existing", 200), ("rejected", 422))}
            acts = [a | {"occurred_at": _iso(a["occurred_at"])} for a in activities] + daily_work(district, recent_days)
            act_results = _post_batches(http, "/api/v1/activities:batch", acts, console, progress,
                                        f"activities, last {recent_days} days")
            if act_results is not None:
                summary["activities"] = len(act_results)
            summary["history"] = _load_history(http, district, console)
            _wait_for_modes(http, district, deadline)
    stations = sum(1 for u in district.units if u["kind"] == "station")
    console.print(f"demo district loaded (seed {district.seed}, {district.draws} draw(s)): "
                  f"{len(district.units)} units, {stations} stations; period {district.period}; "
                  f"modes {summary['run']['sizes']}; log in as "
                  "admin, command, platform or a station id (password: demo)")
    return summary


def _load_history(http: httpx.Client, district: District, console: Console) -> dict[str, int] | None:
    """Monthly accident figures for the year before the anchor month, so year-on-year indicators have a base."""
    try:
        return load_history(http, district, district.anchor)
    except httpx.HTTPError as exc:
        console.print(f"[yellow]warning:[/yellow] historical figures not loaded ({exc})")
        return None


def _wait_for_modes(http: httpx.Client, district: District, deadline: float) -> None:
    stations = {u["id"] for u in district.units if u["kind"] == "station"}
    while time.monotonic() < deadline:
        r = http.get("/api/v1/stations", params={"limit": 500})  # the demo has 26
        if r.status_code == 200 and stations <= {s["id"] for s in r.json()["items"] if s.get("mode")}:
            return
        time.sleep(0.2)
