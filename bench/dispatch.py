"""Dispatch benchmark, on SQLite and on PostgreSQL: routing, intake, and transition latency through the gateway.

- routing: generated orders handed to the consumer's handler (inbox claim + route + store + history +
  outbox) in transactions of 100, as the bus consumer batches them; baseline in the same run: the
  routing-table lookup alone.
- intake: `POST /incidents:batch` of 500 incidents (place, dispatch, store, events), in-process; and
  single `POST /incidents`, each timed.
- transitions: accept/start/submit/verify on real orders, each request timed, half sent straight to the
  dispatch process and half through the gateway process (same run, same machine): the difference is the hop.

Run: `.venv/bin/python -m bench.dispatch` (a temporary SQLite file and a fresh PostgreSQL database,
an embedded nats-server); `--backends sqlite` for one.
"""
from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from bench.load import just_now, summary_ms
from bench.support import auth, pg_database, serving
from deploy.components import ROOT
from deploy.natsd import free_port, start_nats
from services.dispatch.app import create_app
from services.dispatch.config import DispatchSettings
from services.dispatch.handlers import subscriptions
from services.dispatch.routing import RoutingTable
from services.dispatch.service import apply_classification
from shared.db import utcnow
from shared.events import Envelope, StationClassified, TaskOrderGenerated
from shared.settings import Settings

DEMO = json.loads((ROOT / "deploy" / "demo_district.json").read_text(encoding="utf-8"))
CATEGORIES = ("personal_education", "personal_penalty", "enterprise_rectification", "enterprise_penalty",
              "hazard_remediation")
STATIONS = [u["id"] for u in DEMO["units"] if u["kind"] == "station"]
MODES = ("basic", "deep", "full")


def _order(i: int) -> TaskOrderGenerated:
    return TaskOrderGenerated(
        task_id=f"bench-{uuid.uuid4().hex}", incident_id=f"inc-{i}", model_id="P01", model_version=1,
        source="person", entity_ref=f"person:{i}", category=CATEGORIES[i % 5], station_id=STATIONS[i % len(STATIONS)],
        deadline_at=utcnow() + dt.timedelta(days=7), reason="bench")


async def _routing(tmp: Path, database_url: str, nats_url: str, n: int, n_incidents: int) -> dict[str, Any]:
    settings = DispatchSettings(database_url=database_url, nats_url=nats_url, data_dir=tmp,
                                scheduler_interval_s=3600, log_level="WARNING")
    app = create_app(settings)
    async with serving(app) as client:
        admin = auth(settings, "admin")
        units = await client.post("/api/v1/units", json=DEMO["units"], headers=admin)
        assert units.status_code == 200, units.text
        rt = app.state.rt
        async with rt.transaction() as session:
            for k, station in enumerate(STATIONS):
                await apply_classification(session, fact=StationClassified(station_id=station, mode=MODES[k % 3],
                                                                           source="model"))
        [tracing] = [s for s in subscriptions(rt) if TaskOrderGenerated in s.handlers]
        handler = tracing.handlers[TaskOrderGenerated]
        orders = [_order(i) for i in range(n)]
        envelopes = [Envelope(source="bench", type=f.subject, subject=f.task_id, time=utcnow(),
                              data=f.model_dump(mode="json")) for f in orders]
        started = time.perf_counter()
        for start in range(0, n, 100):
            async with rt.transaction() as session:
                for fact, envelope in zip(orders[start:start + 100], envelopes[start:start + 100], strict=True):
                    await rt.outbox.claim_for(session, consumer=tracing.consumer, event_id=envelope.id)
                    await handler(session, fact, envelope)
        routed_s = time.perf_counter() - started
        table = RoutingTable.load(settings.routing_table)
        started = time.perf_counter()
        for i in range(n * 10):
            table.task_target(category=CATEGORIES[i % 5], mode=MODES[i % 3], model_id="P01")
        lookup_s = time.perf_counter() - started
        intake = await _intake(client, auth(settings, "platform"), auth(settings, "command"), n_incidents)
    return {"routing": {"orders": n, "routed_per_s": round(n / routed_s),
                        "baseline_table_lookups_per_s": round(n * 10 / lookup_s),
                        "ms_per_order": round(routed_s / n * 1000, 3)}, "intake": intake}


async def _intake(client: httpx.AsyncClient, platform: dict[str, str], command: dict[str, str], n: int,
                  ) -> dict[str, Any]:
    """Incidents through the API in-process: batches of 500, then single requests."""
    stations = (await client.get("/api/v1/stations", params={"limit": 500}, headers=command)).json()["items"]
    points = [s["centroid"] for s in stations if s.get("centroid")] + [{"lat": 31.5, "lon": 121.9}]  # one outside
    run = uuid.uuid4().hex[:8]

    def body(i: int) -> dict[str, Any]:
        return {"external_id": f"bench-{run}-{i}", "occurred_at": just_now(),
                "location": points[i % len(points)], "severity": {"injuries": 1},
                "parties": [{"role": "driver", "person": {"id_number": f"3301{i:014d}", "drunk": i % 3 == 0},
                             "vehicle": {"plate": f"ZA{i:05d}", "kind": "car"}}]}

    started = time.perf_counter()
    for start in range(0, n, 500):
        r = await client.post("/api/v1/incidents:batch", json=[body(i) for i in range(start, min(n, start + 500))],
                              headers=platform)
        assert r.status_code == 200 and r.json()["created"] == min(500, n - start), r.text[:300]
    batch_s = time.perf_counter() - started
    singles = []
    for i in range(n, n + 200):
        started = time.perf_counter()
        r = await client.post("/api/v1/incidents", json=body(i), headers=platform)
        singles.append(time.perf_counter() - started)
        assert r.status_code == 201, r.text[:300]
    return {"batch_incidents": n, "batch_incidents_per_s": round(n / batch_s),
            "batch_ms_per_incident": round(batch_s / n * 1000, 3), "single_post": summary_ms(singles)}


@contextlib.contextmanager
def _process(module: str, port: int, env: dict[str, str], log: Path) -> Iterator[str]:
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "--factory", module, "--port", str(port),
                             "--log-level", "warning", "--no-access-log"], cwd=ROOT, env=os.environ | env,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{module} did not start; see {log}")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=15)


async def _publish(nats_url: str, orders: list[TaskOrderGenerated]) -> None:
    import nats

    from shared.events import Envelope
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    with contextlib.suppress(Exception):
        await js.add_stream(name="TRACING", subjects=["tracing.>"])
    for fact in orders:
        envelope = Envelope(source="bench", type=fact.subject, subject=fact.task_id, time=utcnow(),
                            data=fact.model_dump(mode="json"))
        await js.publish(fact.subject, envelope.model_dump_json().encode(), headers={"Nats-Msg-Id": envelope.id})
    await nc.close()


def _transitions(tmp: Path, database_url: str, nats_url: str, n: int) -> dict[str, Any]:
    env = {"JIAOZHI_ENVIRONMENT": "test", "JIAOZHI_NATS_URL": nats_url, "JIAOZHI_LOG_LEVEL": "WARNING",
           "JIAOZHI_DATABASE_URL": database_url, "JIAOZHI_RATE_PER_S": "0",
           "JIAOZHI_SCHEDULER_INTERVAL_S": "3600"}
    dport, gport, dead = free_port(), free_port(), f"http://127.0.0.1:{free_port()}"
    with _process("services.dispatch.app:create_app", dport, env, tmp / "dispatch.log") as direct, \
            _process("gateway.app:create_app", gport, env | {
                "JIAOZHI_DISPATCH_URL": f"http://127.0.0.1:{dport}", "JIAOZHI_TRACING_URL": dead,
                "JIAOZHI_CLASSIFICATION_URL": dead, "JIAOZHI_ASSESSMENT_URL": dead}, tmp / "gateway.log") as gateway, \
            httpx.Client(timeout=30) as http:
        def login(user: str) -> dict[str, str]:
            r = http.post(gateway + "/api/v1/auth/token",
                          data={"grant_type": "password", "username": user, "password": "demo"})
            r.raise_for_status()
            return {"authorization": "Bearer " + r.json()["access_token"]}

        http.post(gateway + "/api/v1/units", json=DEMO["units"], headers=login("admin")).raise_for_status()
        station, command = login("ps-yiqiao"), login("command")
        orders = [TaskOrderGenerated(**(_order(i).model_dump() | {"station_id": "ps-yiqiao",
                                                                  "category": "personal_education"}))
                  for i in range(n)]
        asyncio.run(_publish(nats_url, orders))
        deadline = time.monotonic() + 120
        while len(http.get(gateway + "/api/v1/tasks", params={"limit": 500, "status": "dispatched"},
                           headers=station).json()["items"]) < n:
            if time.monotonic() > deadline:
                raise RuntimeError("orders never arrived")
            time.sleep(0.2)
        timings: dict[str, list[float]] = {"direct": [], "gateway": []}
        internal = Settings(environment="test")  # the direct route carries the internal token the gateway would mint
        for k, fact in enumerate(orders):
            route, base = ("gateway", gateway) if k % 2 else ("direct", direct)
            for action, who in (("accept", station), ("start", station), ("submit", station), ("verify", command)):
                if route == "direct":
                    who = auth(internal, "command") if action == "verify" else auth(internal, "station", "ps-yiqiao")
                started = time.perf_counter()
                r = http.post(f"{base}/api/v1/tasks/{fact.task_id}/transitions", json={"action": action}, headers=who)
                timings[route].append(time.perf_counter() - started)
                r.raise_for_status()
    return {"transitions_per_route": {k: len(v) for k, v in timings.items()},
            "direct": summary_ms(timings["direct"]), "through_gateway": summary_ms(timings["gateway"])}


@contextlib.contextmanager
def _database(backend: str, tmp: Path, name: str) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp / (name + '.db')}"
        return
    with pg_database() as url:
        if url is None:
            raise RuntimeError("PostgreSQL is not reachable")
        yield url


def _backend(backend: str, tmp: Path, nats_url: str, console: Console) -> dict[str, Any]:
    with _database(backend, tmp, "routing") as url:
        console.print(f"dispatch bench ({backend}): routing throughput and intake…")
        routed = asyncio.run(_routing(tmp, url, nats_url, 2000, 2000))
        console.print(f"  {routed}")
    with _database(backend, tmp, "loop") as url:
        console.print(f"dispatch bench ({backend}): transition latency, direct and through the gateway…")
        loop = _transitions(tmp, url, nats_url, 100)
        console.print(f"  {loop}")
    return routed | {"transitions": loop}


def run(console: Console, backends: tuple[str, ...] = ("sqlite", "postgres")) -> dict[str, Any]:
    """The measurements on each backend with an embedded nats-server; JSON-able figures."""
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="jz-bench-dispatch-") as tmp_dir:
        tmp = Path(tmp_dir)
        port = free_port()
        nats_proc = start_nats(tmp / "nats", port, log_file=tmp / "nats.log")
        nats_url = f"nats://127.0.0.1:{port}"
        try:
            for backend in backends:
                (tmp / backend).mkdir()
                results[backend] = _backend(backend, tmp / backend, nats_url, console)
        finally:
            nats_proc.terminate()
            nats_proc.wait(timeout=10)
    return {"backends": results}


if __name__ == "__main__":
    wanted = tuple(sys.argv[sys.argv.index("--backends") + 1].split(",")) if "--backends" in sys.argv \
        else ("sqlite", "postgres")
    print(json.dumps(run(Console(stderr=True), wanted), indent=2))
