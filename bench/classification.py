"""Classification at national scale: 40,000 stations' features in → modes stored → events out, on SQLite.

End to end twice, each against its own nats-server: with `sync_interval: always` (the embedded server's
setting: every stored message fsynced before its ack) and with nats-server's default sync (flush every
2 minutes; what a replicated 3-node cluster runs, durability coming from the R3 quorum).
Baselines in the same run: scikit-learn KMeans alone on the same scaled matrix (k=3, the same n_init), and
raw nats-py publishing to each server (one `js.publish` at a time, and `js.publish_async` pipelined).
Run: `.venv/bin/python -m bench.classification`.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import gc
import os
import resource
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import nats
import numpy as np
from rich.console import Console
from sklearn.cluster import KMeans
from sqlalchemy import func, select

from bench.support import GATEWAY_KEY
from deploy.natsd import free_port, nats_server_binary
from services.classification.app import create_app
from services.classification.classifier import CANONICAL_FEATURES, classify, scale
from services.classification.config import ClassificationSettings
from services.classification.models import OUTBOX, Station, StationMode
from shared.auth import Identity, issue_internal_token

STATIONS = 40_000
PROFILES = {  # rough per-type means of the ten canonical features (the demo district's scale)
    "urban": [80, 45, 2.0, 35, 420, 8, 10, 2.6, 0.86, 8000],
    "rural": [45, 52, 9.0, 8, 240, 10, 8, 0.9, 0.86, 12000],
    "fringe": [95, 58, 3.0, 12, 300, 9, 45, 1.6, 0.86, 9500],
}


def national_features(n: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Synthetic features for n stations: three profiles with log-normal noise."""
    rng = np.random.default_rng(seed)
    kinds = rng.choice(list(PROFILES), size=n, p=[0.3, 0.5, 0.2])
    means = np.array([PROFILES[k] for k in kinds], dtype=float)
    noise = rng.lognormal(0, 0.3, size=means.shape)
    values = means * noise
    values[:, 8] = np.clip(rng.normal(0.86, 0.07, n), 0, 1)
    return [f"st-{i:05d}" for i in range(n)], values


#: the year the features describe: this one, so the benchmark does not age with the calendar
PERIOD = str(dt.date.today().year)


def _csv(ids: list[str], values: np.ndarray) -> str:
    lines = ["station_id,period," + ",".join(CANONICAL_FEATURES)]
    lines += [f"{sid},{PERIOD}," + ",".join(f"{v:.6g}" for v in row) for sid, row in zip(ids, values, strict=True)]
    return "\n".join(lines) + "\n"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


SYNCS = {"sync_always": "  sync_interval: always\n", "sync_default": ""}
RAW_ONE_BY_ONE = 2000
RAW_PIPELINED = 20_000


def _start_nats(store: Path, sync: str) -> tuple[subprocess.Popen, int]:
    """A JetStream nats-server on a free port with the given sync setting."""
    store.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = store / "nats-server.conf"
    config.write_text(f'listen: "127.0.0.1:{port}"\njetstream {{\n  store_dir: "{store / "js"}"\n{SYNCS[sync]}}}\n',
                      encoding="utf-8")
    proc = subprocess.Popen([nats_server_binary(), "-c", str(config)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise TimeoutError("nats-server did not start")


async def _raw_publish(url: str) -> dict[str, Any]:
    """nats-py alone: events of the same size to a stream of their own, one by one, then pipelined."""
    nc = await nats.connect(url, connect_timeout=10)
    js = nc.jetstream(timeout=10)
    await js.add_stream(name="RAWBENCH", subjects=["rawbench.>"], duplicate_window=600.0)
    body = b"x" * 330  # about a StationClassified envelope
    t0 = time.perf_counter()
    for _ in range(RAW_ONE_BY_ONE):
        await js.publish("rawbench.one", body, headers={"Nats-Msg-Id": uuid.uuid4().hex})
    one = RAW_ONE_BY_ONE / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    futures = [await js.publish_async("rawbench.many", body, headers={"Nats-Msg-Id": uuid.uuid4().hex})
               for _ in range(RAW_PIPELINED)]
    await asyncio.gather(*futures)
    many = RAW_PIPELINED / (time.perf_counter() - t0)
    await nc.close()
    return {"js_publish_one_at_a_time_per_s": round(one), "js_publish_async_per_s": round(many)}


async def _end_to_end(ids: list[str], values: np.ndarray, tmp: Path, sync: str) -> dict[str, Any]:
    nats_proc, port = _start_nats(tmp / "nats", sync)
    settings = ClassificationSettings(database_url=f"sqlite+aiosqlite:///{tmp / 'bench.db'}",
                                      nats_url=f"nats://127.0.0.1:{port}", data_dir=tmp, outbox_poll_s=0.1,
                                      log_level="WARNING")
    app = create_app(settings)
    headers = {"authorization": "Bearer " + issue_internal_token(settings, Identity(username="bench", role="admin"),
                                                                     key=GATEWAY_KEY)}
    try:
        raw = await _raw_publish(f"nats://127.0.0.1:{port}")
        async with app.router.lifespan_context(app):
            rt = app.state.rt
            async with rt.transaction() as session:  # setup, not timed: the stations dispatch would announce
                await session.execute(Station.__table__.insert(), [
                    {"id": sid, "name": sid, "population": 50_000, "area_km2": 60.0} for sid in ids])
            body = _csv(ids, values)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=120) as client:
                t0 = time.perf_counter()
                imported = await client.post("/api/v1/classification/features", content=body,
                                             headers=headers | {"content-type": "text/csv"})
                imported.raise_for_status()
                t1 = time.perf_counter()
                run = await client.post("/api/v1/classification/runs", json={"period": PERIOD}, headers=headers)
                run.raise_for_status()
                t2 = time.perf_counter()
                while True:
                    async with rt.sessions() as session:
                        if await OUTBOX.pending_count(session) == 0:
                            break
                    await asyncio.sleep(0.05)
                t3 = time.perf_counter()
            async with rt.sessions() as session:
                moded = (await session.execute(select(func.count()).select_from(StationMode)
                                               .where(StationMode.mode.is_not(None)))).scalar_one()
            info = await rt.bus.js.stream_info("CLASSIFICATION")
    finally:
        nats_proc.terminate()
        nats_proc.wait(timeout=10)
    return {"nats": sync, "raw_nats_baseline": raw, "features_in_s": round(t1 - t0, 3), "run_s": round(t2 - t1, 3),
            "events_out_s": round(t3 - t2, 3),
            "end_to_end_s": round(t3 - t0, 3), "modes_stored": int(moded), "events_on_stream": info.state.messages,
            "events_per_s": round(info.state.messages / (t3 - t2)), "sizes": run.json()["sizes"]}


def run(console: Console) -> dict[str, Any]:
    """The benchmark; returns figures (JSON-able)."""
    ids, values = national_features(STATIONS)
    rows = [dict(zip(CANONICAL_FEATURES, map(float, row), strict=True)) for row in values]
    t0 = time.perf_counter()
    result = classify(ids, rows, n_init=10, seed=0)
    clustering_s = time.perf_counter() - t0
    x = scale(values, "log")
    t0 = time.perf_counter()
    KMeans(n_clusters=3, n_init=10, random_state=0).fit(x)
    sklearn_s = time.perf_counter() - t0
    console.print(f"classify() on {STATIONS:,} × 10: {clustering_s:.3f} s (sklearn KMeans alone {sklearn_s:.3f} s)")
    silhouette = result.silhouette
    del result, rows, x  # the service starts from its own data: keep the bench's copies out of its heap
    e2e = {}
    for sync in SYNCS:
        gc.collect()
        with tempfile.TemporaryDirectory() as tmp:
            e2e[sync] = asyncio.run(_end_to_end(ids, values, Path(tmp), sync))
        console.print(f"end to end with nats {sync} (CSV in → run → events relayed): {e2e[sync]}")
    out = {"stations": STATIONS, "classify_s": round(clustering_s, 3), "baseline_sklearn_kmeans_s": round(sklearn_s, 3),
           "silhouette_sampled": silhouette, "end_to_end": e2e, "peak_rss_mb": round(_peak_rss_mb(), 1),
           "load_average_1m": round(os.getloadavg()[0], 2), "cpus": os.cpu_count()}
    console.print(f"peak RSS {out['peak_rss_mb']} MB")
    return out


if __name__ == "__main__":
    import json

    print(json.dumps(run(Console(stderr=True)), indent=1))
