"""Assessment benchmark: re-score a province (3,000 stations × 9 indicators × 12 months), the board's latency.

Run: `.venv/bin/python -m bench.assessment`. Baselines are measured in the same run: the same scoring rule
as plain Python loops (`scoring.score_naive` + a sort per mode) against the vectorised engine.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from rich.console import Console

from services.assessment import scoring
from services.assessment.catalogue import default_set
from services.assessment.scoring import PeriodData

STATIONS, MONTHS = 3000, 12
MODES = np.array(["basic", "deep", "full"])
MEASURES = ["incident.accident", "post_hours", "helmet_worn", "helmet_rated", "dissuasion", "violation.helmet",
            "violation.other", "hazards_remediated", "hazards_found", "education", "map.red", "map.yellow",
            "tasks_created.enterprise_rectification", "tasks_completed.enterprise_rectification"]


def province(seed: int = 1) -> dict[str, Any]:
    """Synthetic monthly sums for every station and month (about 10 % of cells missing)."""
    rng = np.random.default_rng(seed)
    shape = (MONTHS, STATIONS)
    sums = {m: rng.integers(0, 400, shape).astype(float) for m in MEASURES}
    sums["helmet_worn"] = np.minimum(sums["helmet_worn"], sums["helmet_rated"])
    for m in MEASURES:
        sums[m][rng.random(shape) < 0.1] = np.nan
    return {"sums": sums, "population": rng.integers(20_000, 300_000, STATIONS).astype(float),
            "modes": MODES[rng.integers(0, 3, STATIONS)],
            "first": rng.integers(20, 60, shape).astype(float), "last": rng.integers(0, 60, shape).astype(float)}


def rescore_vectorised(p: dict[str, Any]) -> np.ndarray:
    """Every month: score each mode's stations, rank within mode, colour. Returns totals (months × stations)."""
    iset = default_set()
    totals = np.full((MONTHS, STATIONS), np.nan)
    for month in range(MONTHS):
        for mode in MODES:
            idx = np.flatnonzero(p["modes"] == mode)
            data = PeriodData(
                station_ids=[str(i) for i in idx], days=30, months=1.0,
                sums={m: v[month, idx] for m, v in p["sums"].items()}, active=np.ones(len(idx), bool),
                population=p["population"][idx],
                last_year={"incident.accident": p["sums"]["incident.accident"][month - 1, idx]},
                last_year_active=np.ones(len(idx), bool),
                first_last={("map.red", "map.yellow"): (p["first"][month, idx], p["last"][month, idx],
                                                        np.full(len(idx), 2.0))})
            result = scoring.score(iset, data)
            scoring.ranks_within_fast(np.full(len(idx), mode), result.total)
            np.select([result.total >= iset.thresholds["blue"], result.total >= iset.thresholds["yellow"]],
                      ["blue", "yellow"], "red")
            totals[month, idx] = result.total
    return totals


def rescore_naive(p: dict[str, Any]) -> np.ndarray:
    """The same rule as plain loops over per-station dicts, ranks by sorting each mode."""
    iset = default_set()
    totals = np.full((MONTHS, STATIONS), np.nan)
    for month in range(MONTHS):
        rows = []
        for s in range(STATIONS):
            row = {m: float(v[month, s]) for m, v in p["sums"].items() if not np.isnan(v[month, s])}
            ly = p["sums"]["incident.accident"][month - 1, s]
            row.update(population=float(p["population"][s]), active=1.0, last_year_active=1.0,
                       first=float(p["first"][month, s]), last=float(p["last"][month, s]), census_days=2)
            if not np.isnan(ly):
                row["ly:incident.accident"] = float(ly)
            rows.append(row)
        month_totals = scoring.score_naive(iset, rows, days=30, months=1.0)
        for mode in MODES:
            members = sorted((t, s) for s in range(STATIONS) if p["modes"][s] == mode
                             and (t := month_totals[s]) is not None)
            members.reverse()
            _ranks = {s: rank for rank, (_, s) in enumerate(members, start=1)}
            _colours = [scoring.colour(t, iset.thresholds) for t, _ in members]
        totals[month] = [np.nan if t is None else t for t in month_totals]
    return totals


def _best_of(fn: Any, arg: Any, repeat: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn(arg)
        best = min(best, time.perf_counter() - t0)
    return best, out


async def board_latency(requests: int = 200) -> dict[str, Any]:
    """GET /api/v1/board in-process (ASGI, real nats-server and SQLite on free ports/temp dirs), 6 stations."""
    from bench.support import GATEWAY_KEY
    from deploy.natsd import free_port, start_nats
    from services.assessment.app import create_app
    from services.assessment.config import AssessmentSettings
    from shared.auth import Identity, issue_internal_token

    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        nats = start_nats(Path(tmp) / "nats", port, log_file=Path(tmp) / "nats.log")
        try:
            settings = AssessmentSettings(database_url=f"sqlite+aiosqlite:///{tmp}/a.db",
                                          nats_url=f"nats://127.0.0.1:{port}", data_dir=Path(tmp))
            app = create_app(settings)
            token = issue_internal_token(settings, Identity(username="bench", role="command"), key=GATEWAY_KEY)
            headers = {"authorization": "Bearer " + token}
            day = dt.date.today() - dt.timedelta(days=1)
            async with app.router.lifespan_context(app):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://a", headers=headers) as http:
                    batch = [{"external_id": f"b-{s}-{k}-{i}", "kind": k, "station_id": f"ps-{s}",
                              "occurred_at": f"{day}T10:00:00+08:00", "count": 5 + i,
                              "details": {"type": "speeding"} if k == "violation" else {}}
                             for s in range(6) for k in ("education", "dissuasion", "violation", "drunk_driving_check")
                             for i in range(5)]
                    r = await http.post("/api/v1/activities:batch", json=batch)
                    assert r.status_code == 200, r.text
                    times = []
                    for _ in range(requests):
                        t0 = time.perf_counter()
                        (await http.get("/api/v1/board", params={"date": day.isoformat()})).raise_for_status()
                        times.append((time.perf_counter() - t0) * 1000)
                    t0 = time.perf_counter()
                    (await http.get("/api/v1/reports/monthly", params={"format": "xlsx"})).raise_for_status()
                    xlsx_ms = (time.perf_counter() - t0) * 1000
        finally:
            nats.terminate()
            nats.wait(timeout=10)
    times.sort()
    return {"requests": requests, "stations": 6, "p50_ms": round(statistics.median(times), 2),
            "p95_ms": round(times[int(len(times) * 0.95) - 1], 2), "monthly_xlsx_report_ms": round(xlsx_ms, 1),
            "path": "in-process ASGI (no gateway hop)"}


READ_STATIONS, READ_DAYS = 3000, (5, 20)


def _read_rows(month: dt.date, rng: np.random.Generator) -> list[dict[str, Any]]:
    """Daily measure rows for every station on a few days of a month (tallies inserted directly)."""
    out = []
    for s in range(READ_STATIONS):
        for d in READ_DAYS:
            day = month.replace(day=d)
            for m in MEASURES:
                out.append({"station_id": f"ps-{s:04d}", "day": day, "measure": m,
                            "value": float(rng.integers(0, 60 if m != "incident.accident" else 3))})
    return out


async def score_reads(requests: int = 5) -> dict[str, Any]:
    """GET /assessment/scores and /stations/{id}/score for 3,000 stations and one month, in-process (ASGI, SQLite,
    real nats-server); tallies (month, previous month, a year earlier) inserted straight into the bench's database.
    Baseline in the same run: the pure scoring step (engine + ranks + colours) on the same aggregated data."""
    from sqlalchemy import insert

    from bench.support import GATEWAY_KEY
    from deploy.natsd import free_port, start_nats
    from services.assessment import periods, service, stations
    from services.assessment.app import create_app
    from services.assessment.config import AssessmentSettings
    from services.assessment.models import Measure, UnitCopy
    from shared.auth import Identity, issue_internal_token
    from shared.db import utcnow

    rng = np.random.default_rng(3)
    month = dt.date(2024, 5, 1)
    rows = [r for m in (month, dt.date(2024, 4, 1), dt.date(2023, 5, 1)) for r in _read_rows(m, rng)]
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        nats = start_nats(Path(tmp) / "nats", port, log_file=Path(tmp) / "nats.log")
        try:
            settings = AssessmentSettings(database_url=f"sqlite+aiosqlite:///{tmp}/a.db",
                                          nats_url=f"nats://127.0.0.1:{port}", data_dir=Path(tmp), score_debounce_s=0)
            app = create_app(settings)
            async with app.router.lifespan_context(app):
                rt = app.state.rt
                now = utcnow()
                async with rt.transaction() as session:
                    await session.execute(insert(UnitCopy.__table__), [  # type: ignore[attr-defined]
                        {"id": f"ps-{s:04d}", "name": f"PS {s}", "kind": "station", "parent_id": None,
                         "population": int(rng.integers(20_000, 300_000)), "mode": str(MODES[s % 3]),
                         "updated_at": now}
                        for s in range(READ_STATIONS)])
                    for i in range(0, len(rows), 50_000):
                        await session.execute(insert(Measure.__table__), rows[i:i + 50_000])  # type: ignore[attr-defined]
                period = periods.month("2024-05")
                async with rt.sessions() as session:
                    known = await stations.stations(session)
                    t0 = time.perf_counter()
                    datas = {}
                    for mode in MODES:
                        infos = [i for i in known.values() if i.mode == mode]
                        datas[mode] = await service.load_period(
                            session, period=period, station_ids=[i.id for i in infos],
                            populations=[i.population for i in infos], sets=[default_set()])
                    load_ms = (time.perf_counter() - t0) * 1000
                iset = default_set()
                pure = []
                for _ in range(20):
                    t0 = time.perf_counter()
                    for mode, data in datas.items():
                        result = scoring.score(iset, data)
                        scoring.ranks_within_fast(np.full(len(data.station_ids), mode), result.total)
                        [scoring.colour(float(t), iset.thresholds) for t in result.total]
                    pure.append((time.perf_counter() - t0) * 1000)
                token = issue_internal_token(settings, Identity(username="b", role="command"), key=GATEWAY_KEY)
                headers = {"authorization": "Bearer " + token}
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://a", headers=headers,
                                             timeout=120) as http:
                    all_ms, one_ms, size = [], [], 0
                    for _ in range(requests):
                        t0 = time.perf_counter()
                        r = await http.get("/api/v1/assessment/scores", params={"period": "2024-05"})
                        all_ms.append((time.perf_counter() - t0) * 1000)
                        r.raise_for_status()
                        size = len(r.content)
                        assert len(r.json()["stations"]) == READ_STATIONS
                        t0 = time.perf_counter()
                        (await http.get("/api/v1/stations/ps-0042/score", params={"period": "2024-05"})
                         ).raise_for_status()
                        one_ms.append((time.perf_counter() - t0) * 1000)
        finally:
            nats.terminate()
            nats.wait(timeout=10)
    return {"stations": READ_STATIONS, "measure_rows": len(rows), "requests": requests,
            "scores_all_p50_ms": round(statistics.median(all_ms), 1), "scores_all_max_ms": round(max(all_ms), 1),
            "scores_all_bytes": size, "station_score_p50_ms": round(statistics.median(one_ms), 1),
            "station_score_max_ms": round(max(one_ms), 1), "aggregate_month_ms": round(load_ms, 1),
            "pure_scoring_p50_ms": round(statistics.median(pure), 2),
            "path": "in-process ASGI, SQLite (no gateway hop); a read scores the month and the previous one (trend)"}


def run(console: Console) -> dict[str, Any]:
    """Re-score the province both ways and measure the board; JSON-able figures."""
    p = province()
    fast_s, fast = _best_of(rescore_vectorised, p, 3)
    naive_s, naive = _best_of(rescore_naive, p, 1)
    agree = bool(np.allclose(fast, naive, equal_nan=True))
    console.print(f"re-score {STATIONS} stations × 9 indicators × {MONTHS} months: vectorised {fast_s:.3f} s, "
                  f"plain loops {naive_s:.3f} s (×{naive_s / fast_s:.1f}); same totals: {agree}")
    board = asyncio.run(board_latency())
    console.print(f"board ({board['stations']} stations, {board['path']}): p50 {board['p50_ms']} ms, "
                  f"p95 {board['p95_ms']} ms; monthly XLSX report {board['monthly_xlsx_report_ms']} ms")
    reads = asyncio.run(score_reads())
    console.print(f"score reads, {reads['stations']} stations, one month ({reads['path']}): all scores p50 "
                  f"{reads['scores_all_p50_ms']} ms, one station p50 {reads['station_score_p50_ms']} ms; "
                  f"aggregating the month {reads['aggregate_month_ms']} ms; pure scoring step "
                  f"{reads['pure_scoring_p50_ms']} ms")
    return {"rescore": {"stations": STATIONS, "indicators": 9, "months": MONTHS, "vectorised_s": round(fast_s, 4),
                        "naive_s": round(naive_s, 4), "speedup": round(naive_s / fast_s, 1), "target_s": 1.0,
                        "same_totals": agree},
            "board": board, "score_reads": reads}


if __name__ == "__main__":
    import json

    print(json.dumps(run(Console()), indent=2))
