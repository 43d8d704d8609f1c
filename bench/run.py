"""`make bench`: every benchmark, each with its baselines measured in the same run on the same machine.

- per service (`bench/<part>.py`, each with its own baseline): classification (40,000 stations),
  tracing (engine with 100,000 stored incidents), dispatch (routing, transitions), assessment
  (province re-scoring, score reads, board), gateway (the hop against a hello-world upstream);
- end to end: incidents through the gateway at a steady rate until their task orders exist, on
  SQLite and PostgreSQL, with raw nats-py JetStream publish/consume as the baseline.

Results go to bench/results/latest.json; a short table is printed. `--parts` picks a subset.
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import importlib
import json
import os
import platform
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.load import incidents_to_tasks, raw_nats
from bench.support import PG_ADMIN_DSN, pg_database
from deploy.demo import load_demo
from deploy.natsd import free_port, free_port_block
from deploy.supervisor import System

RESULTS = Path(__file__).parent / "results"
#: per-service benches: each module `bench.<part>` has `run(console) -> dict`
PARTS = ("classification", "tracing", "dispatch", "assessment", "gateway")

console = Console()


def peak_rss_mb(pid: int) -> float | None:
    """VmHWM (peak resident set) of a live process, in MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def bench_backend(backend: str, database_url: str, args: argparse.Namespace) -> dict:
    """Start the whole system on one backend, load the demo, drive it, measure."""
    with tempfile.TemporaryDirectory(prefix="jz-bench-") as tmp:
        system = System.on_ports(Path(tmp), free_port_block(), free_port())
        # the load comes from one platform client: measure the pipeline, not the per-caller rate limit
        system.env.update({"JIAOZHI_DATABASE_URL": database_url, "JIAOZHI_LOG_LEVEL": "WARNING",
                           "JIAOZHI_RATE_PER_S": "0"})
        # the embedded broker refuses anonymous clients: the bench observes and publishes as a user of its own
        password = system.nats_users.add("bench", {"publish": {"allow": [">"]}, "subscribe": {"allow": [">"]}})
        try:
            system.up()
            load_demo(system.url("gateway"), console=Console(quiet=True))
            nats_url = f"nats://bench:{password}@127.0.0.1:{system.nats_port}"
            console.print(f"[{backend}] incidents at {args.rate}/s for {args.seconds}s through the gateway…")
            e2e = asyncio.run(incidents_to_tasks(system.url("gateway"), nats_url, rate=args.rate,
                                                 seconds=args.seconds))
            result = {"end_to_end": e2e}
            if backend == "sqlite":
                result["raw_nats"] = asyncio.run(raw_nats(nats_url))
            result["peak_rss_mb"] = {name: peak_rss_mb(p.pid) for name, p in system.procs.items()}
            return result
        finally:
            system.down()


def machine() -> dict:
    return {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine()}


def print_table(results: dict) -> None:
    table = Table(title="jiaozhi bench (targets: incident→task p99 < 100 ms at 100/s)")
    for column in ("measure", "sqlite", "postgres"):
        table.add_column(column)
    backends = results["backends"]

    def cell(backend: str, *path: str) -> str:
        value = backends.get(backend, {})
        for key in path:
            value = value.get(key, {}) if isinstance(value, dict) else {}
        return "—" if value in ({}, None) else str(round(value, 2) if isinstance(value, float) else value)

    for label, path in (("incidents accepted", ("end_to_end", "accepted")),
                        ("achieved rate /s", ("end_to_end", "achieved_rate_per_s")),
                        ("tasks lost", ("end_to_end", "lost")),
                        ("incident→task p50 ms", ("end_to_end", "incident_to_task", "p50_ms")),
                        ("incident→task p99 ms", ("end_to_end", "incident_to_task", "p99_ms")),
                        ("POST p99 ms", ("end_to_end", "post_response", "p99_ms"))):
        table.add_row(label, cell("sqlite", *path), cell("postgres", *path))
    console.print(table)
    raw = backends.get("sqlite", {}).get("raw_nats")
    if raw:
        console.print(f"raw NATS: publish {raw['publish_one_by_one_per_s']}/s one by one, "
                      f"{raw['publish_async_per_s']}/s async; fetch+ack {raw['fetch100_ack_per_s']}/s; "
                      f"publish→consume p50 {raw['publish_to_consume']['p50_ms']:.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=100.0, help="incidents per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to offer load")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--parts", default=",".join(("end_to_end", *PARTS)),
                        help="end_to_end and/or the per-service benches: " + ", ".join(PARTS))
    args = parser.parse_args()
    parts = args.parts.split(",")
    results = {"when": dt.datetime.now(dt.UTC).isoformat(), "machine": machine(), "parameters": vars(args),
               "backends": {}}
    for part in PARTS:
        if part in parts:
            console.rule(f"bench.{part}")
            results[part] = importlib.import_module(f"bench.{part}").run(console)
    if "end_to_end" not in parts:
        _write(results)
        return
    for backend in args.backends.split(","):
        if backend == "sqlite":
            results["backends"]["sqlite"] = bench_backend("sqlite", "", args)
            continue
        with pg_database() as url:
            if url is None:
                results["backends"]["postgres"] = {"skipped": f"PostgreSQL not reachable at {PG_ADMIN_DSN}"}
                continue
            results["backends"]["postgres"] = bench_backend("postgres", url, args)
    print_table(results)
    _write(results)


def _write(results: dict) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
    console.print(f"written: {RESULTS / 'latest.json'}")


if __name__ == "__main__":
    main()
