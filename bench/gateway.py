"""The gateway hop: one endpoint called directly and through the gateway (auth + rate limit + role + scoping +
forward), with 1 and with 32 connections, in the same run.

Like with like: the upstream is one uvicorn process (the hello-world FastAPI app of bench/hello.py,
the cheapest possible endpoint, so the hop's cost is as visible as it can be), and the same
closed-loop aiohttp load generator drives both. Direct calls carry an internal token, as the
gateway's own calls do; the gateway's rate limit is raised so the bench measures cost, not policy.
The gateway runs as `python -m gateway` (uvicorn, uvloop, httptools) with 1 and with 2 worker
processes (`JIAOZHI_GATEWAY_WORKERS`); the upstream stays one process either way.

Targets (issue 7): p50 added ≤ 1 ms with one connection; ≥ 50 % of direct throughput with 32.
Run: `.venv/bin/python -m bench.gateway [--seconds 5]`.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

import httpx
from rich.console import Console

from bench.load import closed_loop
from bench.support import GATEWAY_KEY
from deploy.components import ROOT
from deploy.natsd import free_port
from shared.auth import Identity, issue_internal_token
from shared.settings import Settings


def _wait(url: str, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited with {proc.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code < 500:
                return
        time.sleep(0.1)
    raise TimeoutError(url)


@contextlib.contextmanager
def _process(command: list[str], env: dict[str, str], ready_url: str) -> Iterator[subprocess.Popen]:
    proc = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)
    try:
        _wait(ready_url, proc)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def hello_upstream() -> Iterator[str]:
    """The hello-world upstream, one process."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "uvicorn", "bench.hello:app", "--port", str(port), "--log-level", "warning",
               "--no-access-log"]
    with _process(command, dict(os.environ), url + "/api/v1/hello"):
        yield url


@contextlib.contextmanager
def gateway(hello: str, workers: int, data_dir: str) -> Iterator[str]:
    """A gateway routing /api/v1/hello to the upstream, demo accounts, high rate limits."""
    port = free_port()
    dead = f"http://127.0.0.1:{free_port()}"
    env = dict(os.environ) | {
        "JIAOZHI_ENVIRONMENT": "demo", "JIAOZHI_DATA_DIR": data_dir, "JIAOZHI_LOG_LEVEL": "WARNING",
        "JIAOZHI_EXTRA_ROUTES": json.dumps([["^/api/v1/hello$", hello]]), "JIAOZHI_RATE_PER_S": "1000000",
        "JIAOZHI_RATE_BURST": "1000000", **{f"JIAOZHI_{s.upper()}_URL": dead for s in
                                            ("classification", "tracing", "dispatch", "assessment")}}
    url = f"http://127.0.0.1:{port}"
    env |= {"JIAOZHI_PORT": str(port), "JIAOZHI_GATEWAY_WORKERS": str(workers)}
    with _process([sys.executable, "-m", "gateway"], env, url + "/healthz"):
        yield url


def _login(url: str) -> str:
    r = httpx.post(url + "/api/v1/auth/token", data={"grant_type": "password", "username": "command",
                                                     "password": "demo"}, timeout=10)
    r.raise_for_status()
    return r.json()["access_token"]


async def _pair(direct_url: str, direct_headers: dict, via_url: str, via_headers: dict, connections: int,
                seconds: float) -> dict:
    direct = await closed_loop(direct_url, connections=connections, seconds=seconds, headers=direct_headers)
    via = await closed_loop(via_url, connections=connections, seconds=seconds, headers=via_headers)
    return {"direct": direct, "gateway": via, "added_p50_ms": round(via["p50_ms"] - direct["p50_ms"], 3),
            "throughput_ratio": round(via["throughput_per_s"] / direct["throughput_per_s"], 3)}


def run(console: Console, *, seconds: float = 5.0, workers: tuple[int, ...] = (1, 2)) -> dict:
    """Measure the hop for each gateway worker count; direct is measured again beside each."""
    command = Identity(username="command", role="command")
    internal = {"authorization": "Bearer " + issue_internal_token(Settings(), command, key=GATEWAY_KEY)}
    out: dict = {"upstream": "bench/hello.py, one uvicorn process", "seconds_per_measure": seconds,
                 "targets": {"c1_added_p50_ms_max": 1.0, "c32_throughput_ratio_min": 0.5}}
    with hello_upstream() as hello, tempfile.TemporaryDirectory(prefix="jz-bench-gw-") as tmp:
        for count in workers:
            with gateway(hello, count, f"{tmp}/w{count}") as gw:
                via_headers = {"authorization": "Bearer " + _login(gw)}
                result = {}
                for connections in (1, 32):
                    console.print(f"  gateway hop: {count} worker(s), {connections} connection(s)…")
                    result[f"c{connections}"] = asyncio.run(_pair(hello + "/api/v1/hello", internal,
                                                                  gw + "/api/v1/hello", via_headers, connections,
                                                                  seconds))
                result["meets_targets"] = (result["c1"]["added_p50_ms"] <= 1.0
                                           and result["c32"]["throughput_ratio"] >= 0.5)
                out[f"workers_{count}"] = result
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--workers", default="1,2", help="gateway worker counts to measure")
    args = parser.parse_args()
    console = Console()
    results = run(console, seconds=args.seconds, workers=tuple(int(w) for w in args.workers.split(",")))
    for key, value in results.items():
        if key.startswith("workers_"):
            c1, c32 = value["c1"], value["c32"]
            console.print(f"{key}: +{c1['added_p50_ms']} ms p50 (1 conn: {c1['direct']['p50_ms']:.3f} → "
                          f"{c1['gateway']['p50_ms']:.3f}); 32 conns {c32['gateway']['throughput_per_s']}/s vs "
                          f"{c32['direct']['throughput_per_s']}/s direct (ratio {c32['throughput_ratio']}); "
                          f"meets targets: {value['meets_targets']}")
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
