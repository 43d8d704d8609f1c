"""Tracing engine latency per incident with 100,000 earlier incidents in the index, and a full-scan baseline;
the cost of a replica's catch-up with the database.

`.venv/bin/python -m bench.tracing` prints the figures; `run(console)` returns them (no assertions).
The engine is measured alone (all 24 models, the grid index), without database or bus; the baseline runs
the same catalogue with an index that answers by scanning every stored accident.
The catch-up (services/tracing/mirror.py) is measured on a fresh SQLite database (or JIAOZHI_BENCH_DATABASE_URL,
which should point at an empty database): when nothing changed, against a bare `SELECT 1` on the same session as
the floor; and reading 1,000 accidents another replica committed.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from sqlalchemy import text

from services.tracing import changes
from services.tracing.catalogue import Catalogue
from services.tracing.config import HERE
from services.tracing.engine import Sources, accident_of, trace
from services.tracing.index import Hazard, Index, Section, metres
from services.tracing.mirror import Mirror
from services.tracing.models import TracedIncident
from shared.db import ensure_schema, make_engine, make_sessions, utcnow
from shared.events import IncidentReported, Location, PartyFacts, PersonFacts, Severity, VehicleFacts
from shared.migrations import upgrade

CATALOGUE = Path(__file__).resolve().parents[1] / "services" / "tracing" / "catalogue.json"
EARLIER = 100_000
SAMPLES = 2_000
BASELINE_SAMPLES = 100
LAT0, LON0, SPAN = 30.1, 120.45, 0.18  # about 20 km × 17 km
START = dt.datetime(2023, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=8)))


class ScanIndex(Index):
    """The baseline: the same answers by looking at every stored accident."""

    def accidents_near(self, lat: float, lon: float, at: float, radius_m: float, days: float,
                       junction: str | None = None) -> int:
        since = at - days * 86_400
        return sum(1 for a in self.accidents.values() if since <= a.at <= at
                   and (junction is None or a.junction == junction) and metres(lat, lon, a.lat, a.lon) <= radius_m)


def incident(rng: random.Random, n: int, when: dt.datetime) -> IncidentReported:
    """A plausible accident: one or two parties, some with identity hashes, operators and villages."""
    parties = []
    for _ in range(rng.choice((1, 2, 2, 3))):
        kind = rng.choice(("car", "car", "car", "e_bike", "motorcycle", "goods_vehicle", "yellow_plate_truck"))
        person = PersonFacts(id_hash=f"{rng.randrange(20_000):064x}" if rng.random() < 0.7 else None,
                             age=rng.randrange(12, 90), drunk=rng.random() < 0.03,
                             licence_status=rng.choice(("valid", "valid", "valid", "none", None)),
                             helmet=rng.choice((True, False, None)) if kind in ("e_bike", "motorcycle") else None,
                             unprocessed_violations=rng.randrange(0, 5), village_id=f"vil-{rng.randrange(300)}")
        vehicle = VehicleFacts(kind=kind, plate=f"ZJA{rng.randrange(50_000):05d}",  # type: ignore[arg-type]
                               operator_id=f"ent-{rng.randrange(200)}" if kind in ("goods_vehicle",
                                                                                   "yellow_plate_truck") else None)
        parties.append(PartyFacts(role="rider" if kind in ("e_bike", "motorcycle") else "driver", person=person,
                                  vehicle=vehicle))
    return IncidentReported(
        incident_id=f"inc-{n}", external_id=f"ext-{n}", kind="accident", occurred_at=when,
        location=Location(lat=LAT0 + rng.uniform(0, SPAN), lon=LON0 + rng.uniform(0, SPAN)),
        station_id="ps-bench", severity=Severity(deaths=int(rng.random() < 0.05), injuries=rng.randrange(0, 3)),
        parties=parties, lighting=rng.choice(("daylight", "lit", "unlit", None)),
        junction=rng.choice(("none", "none", "signalled", "unsignalled", None)), school_zone=rng.random() < 0.05)


def fill(index: Index, rng: random.Random) -> None:
    """100,000 earlier accidents over three years, 500 open hazards, 200 road sections."""
    for n in range(EARLIER):
        fact = incident(rng, n, START + dt.timedelta(minutes=rng.uniform(0, 3 * 365 * 24 * 60)))
        index.add_accident(accident_of(fact))
    for n in range(500):
        hazard = Hazard(f"hz-{n}", LAT0 + rng.uniform(0, SPAN), LON0 + rng.uniform(0, SPAN))
        index.put_hazard(hazard, hazard_id=hazard.id)
    for n in range(200):
        lat, lon = LAT0 + rng.uniform(0, SPAN), LON0 + rng.uniform(0, SPAN)
        points = [(lat + i * 0.001, lon + i * 0.0015) for i in range(8)]
        index.put_section(Section(f"rs-{n}", [points], lit=rng.random() < 0.5, signalised=rng.random() < 0.5),
                          section_id=f"rs-{n}")


def sources_for(fact: IncidentReported) -> Sources:
    """Registry records as the service would have resolved them (station in deep mode)."""
    return Sources(enterprises={p.vehicle.operator_id: {"registered": True, "inspection_rate": 0.9}
                                for p in fact.parties if p.vehicle and p.vehicle.operator_id},
                   station={"id": "ps-bench", "mode": "deep", "area_type": "rural"})


def measure(index: Index, catalogue: Catalogue, rng: random.Random, samples: int, first: int) -> dict[str, Any]:
    """Latency of trace() per new incident (each is added to the index, as in the service)."""
    latencies, fired = [], 0
    end = START + dt.timedelta(days=3 * 365)
    for n in range(samples):
        fact = incident(rng, first + n, end + dt.timedelta(minutes=n))
        sources = sources_for(fact)
        started = time.perf_counter()
        result = trace(fact, sources=sources, index=index, catalogue=catalogue)
        latencies.append((time.perf_counter() - started) * 1000)
        fired += len(result.fired)
    latencies.sort()
    return {"samples": samples, "p50_ms": round(statistics.median(latencies), 3),
            "p99_ms": round(latencies[int(0.99 * (len(latencies) - 1))], 3), "max_ms": round(latencies[-1], 3),
            "mean_ms": round(statistics.fmean(latencies), 3), "fired_per_incident": round(fired / samples, 2)}


def _percentiles(latencies: list[float]) -> dict[str, float]:
    latencies = sorted(latencies)
    return {"p50_ms": round(statistics.median(latencies), 3),
            "p99_ms": round(latencies[int(0.99 * (len(latencies) - 1))], 3), "max_ms": round(latencies[-1], 3)}


async def measure_catch_up(url: str, catalogue: Catalogue, samples: int = 2_000, rows: int = 1_000,
                           rounds: int = 5) -> dict[str, Any]:
    """A replica's catch-up with nothing new (vs SELECT 1 on the same session), then `rounds` times with `rows` new
    accidents committed by another replica."""
    engine = make_engine(url, schema="tracing")
    try:
        await ensure_schema(engine, "tracing")
        await upgrade(engine, HERE / "migrations", schema="tracing")
        sessions = make_sessions(engine)
        async with sessions() as session:
            mirror = await Mirror.load(session, shipped=catalogue)
        idle, floor = [], []
        async with sessions() as session:
            for _ in range(samples):
                started = time.perf_counter()
                await mirror.catch_up(session)
                idle.append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                await session.execute(text("SELECT 1"))
                floor.append((time.perf_counter() - started) * 1000)
        rng, now, batches, reads = random.Random(3), utcnow(), [], []
        for round_ in range(rounds):
            async with sessions() as session, session.begin():  # another replica traces `rows` accidents at once
                for n in range(rows):
                    fact = incident(rng, round_ * rows + n, now)
                    session.add(TracedIncident(
                        incident_id=fact.incident_id, external_id=fact.external_id, occurred_at=fact.occurred_at,
                        lat=fact.location.lat, lon=fact.location.lon, traced_at=now,
                        persons=[p.person.id_hash for p in fact.parties if p.person.id_hash]))
                changes.touched(session, TracedIncident)
            async with sessions() as session:
                started = time.perf_counter()
                read = await mirror.catch_up(session)
                batches.append((time.perf_counter() - started) * 1000)
                reads.append(read)
        return {"database": engine.dialect.name, "nothing_new": _percentiles(idle) | {"samples": samples},
                "baseline_select_1": _percentiles(floor), "new_accidents_committed": rows, "rows_read": reads,
                "new_accidents_ms": {"median": round(statistics.median(batches), 1), "max": round(max(batches), 1),
                                     "rounds": rounds},
                "new_accidents_per_s": round(rows / statistics.median(batches) * 1000)}
    finally:
        await engine.dispose()


def run(console: Console) -> dict[str, Any]:
    """Build both indexes with the same 100,000 accidents and time the engine on fresh incidents; time catch-up."""
    catalogue = Catalogue.load(CATALOGUE)
    console.print(f"tracing: filling the index with {EARLIER:,} earlier accidents…")
    started = time.perf_counter()
    grid = Index()
    fill(grid, random.Random(1))
    build_s = time.perf_counter() - started
    scan = ScanIndex()
    fill(scan, random.Random(1))
    console.print(f"tracing: {SAMPLES} incidents through the engine (grid), {BASELINE_SAMPLES} (full scan)…")
    result = {
        "earlier_incidents": EARLIER, "models": len(catalogue.models), "index_build_s": round(build_s, 2),
        "engine_grid_index": measure(grid, catalogue, random.Random(2), SAMPLES, EARLIER),
        "baseline_full_scan": measure(scan, catalogue, random.Random(2), BASELINE_SAMPLES, EARLIER),
        "target_p99_ms": 5.0,
    }
    del scan  # the catch-up runs beside one index of 100,000 accidents, as in a replica
    console.print("tracing: a replica's catch-up with the database…")
    with tempfile.TemporaryDirectory() as tmp:
        url = os.environ.get("JIAOZHI_BENCH_DATABASE_URL") or f"sqlite+aiosqlite:///{tmp}/bench-tracing.db"
        result["catch_up"] = asyncio.run(measure_catch_up(url, catalogue))
    console.print(result)
    return result


if __name__ == "__main__":
    print(json.dumps(run(Console(stderr=True)), indent=1))
