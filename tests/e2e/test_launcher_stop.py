"""Ctrl-C or SIGTERM to `jiaozhi up` at any moment stops every component within 10 s, without a traceback;
even a SIGKILL of the launcher leaves no component behind. All runs share one set of ports: each test
starting proves the previous one freed them."""
from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from deploy.natsd import free_port, free_port_block
from tests.e2e.helpers import login, wait_for
from tests.e2e.launcher import Launcher, start_launcher

pytestmark = pytest.mark.system

STOP_WITHIN_S = 10.0  # the issue's bound; Kubernetes' grace period is 20 s
UP_WITHIN_S = 120  # start on a loaded 2-core CI machine


@pytest.fixture(scope="module")
def ports() -> tuple[int, int]:
    return free_port_block(), free_port()


@pytest.fixture
def run(tmp_path: Path, ports: tuple[int, int]) -> Iterator:
    """Start `jiaozhi up` in a fresh data dir on the module's ports; kill whatever a failed test left."""
    started: list[Launcher] = []

    def start(*args: str, **env: str) -> Launcher:
        started.append(start_launcher(tmp_path, *ports, *args, **env))
        return started[-1]

    yield start
    for launcher in started:
        if launcher.proc.poll() is None:
            launcher.proc.kill()
            launcher.proc.wait()
        for pid in launcher.processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def assert_stopped(launcher: Launcher, took: float, code: int, moment: str) -> None:
    """Exited with `code` within the bound, no traceback, nothing left running, every port free again."""
    out = launcher.output
    print(f"\n{moment}: launcher exited {took:.2f} s after the signal")  # noqa: T201 - the measured figure
    assert launcher.proc.returncode == code, out
    assert took < STOP_WITHIN_S, f"stop took {took:.1f} s:\n{out}"
    assert "Traceback" not in out and "Error" not in out, out
    assert "stopped" in out, out
    assert launcher.processes() == [], "components outlived the launcher"
    assert launcher.taken_ports() == []


def test_ctrl_c_before_the_system_is_ready(run) -> None:  # noqa: ANN001
    launcher = run()
    wait_for(lambda: len(launcher.processes()) >= 7, timeout=UP_WITHIN_S)  # launcher, nats-server, 5 components
    assert "loading the demo district" not in launcher.output  # still starting
    took = launcher.interrupt(signal.SIGINT)
    assert_stopped(launcher, took, 130, "Ctrl-C before ready")


def test_ctrl_c_during_the_demo_load(run, ports: tuple[int, int]) -> None:  # noqa: ANN001
    """The issue's case: Ctrl-C a few seconds after the gateway is ready, while the demo is loading."""
    launcher = run()
    launcher.wait_output("loading the demo district", UP_WITHIN_S)
    gateway = f"http://127.0.0.1:{ports[0]}"
    admin = login(gateway, "admin")
    with httpx.Client(base_url=gateway, headers=admin, timeout=10) as http:  # the load is posting through the API
        wait_for(lambda: (r := http.get("/api/v1/units")).status_code == 200 and r.json()["items"], timeout=UP_WITHIN_S,
                 interval=0.2)
    assert "demo district loaded" not in launcher.output
    took = launcher.interrupt(signal.SIGINT)
    assert_stopped(launcher, took, 130, "Ctrl-C during the demo load")
    assert "demo district loaded" not in launcher.output  # it was interrupted, not finished


def test_ctrl_c_when_running(run) -> None:  # noqa: ANN001
    launcher = run("--no-demo")
    launcher.wait_output("jiaozhi is running", UP_WITHIN_S)
    took = launcher.interrupt(signal.SIGINT)
    assert_stopped(launcher, took, 130, "Ctrl-C when running")
    assert "killed after the stop deadline" not in launcher.output  # each component ended by itself in time


def test_sigterm_stops_a_multi_worker_gateway_too(run) -> None:  # noqa: ANN001
    launcher = run("--no-demo", JIAOZHI_GATEWAY_WORKERS="2")
    launcher.wait_output("jiaozhi is running", UP_WITHIN_S)
    wait_for(lambda: len(launcher.processes()) >= 9, timeout=30)  # + the gateway's two worker processes
    took = launcher.interrupt(signal.SIGTERM)
    assert_stopped(launcher, took, 143, "SIGTERM when running (2 gateway workers)")
    # Not asserted here, unlike one worker: that the gateway ended by itself. uvicorn's multi-process master asks
    # each worker for a health ping (blocking, up to 5 s each) and handles no signal meanwhile; on a loaded
    # machine that held its SIGTERM past the 7.5 s grace (seen in CI), and the supervisor's SIGKILL ended it,
    # still within the 10 s bound asserted above, nothing left running.
    killed = [x.split(":", 1)[1].strip() for x in launcher.output.splitlines() if "killed after the stop deadline" in x]
    assert set(killed) <= {"gateway"}, killed  # never a service


def test_no_component_outlives_a_killed_launcher(run) -> None:  # noqa: ANN001
    """SIGKILL gives the launcher no chance to stop anything: the kernel signals its children (PDEATHSIG)."""
    launcher = run("--no-demo")
    launcher.wait_output("jiaozhi is running", UP_WITHIN_S)
    children = [pid for pid in launcher.processes() if pid != launcher.proc.pid]
    assert len(children) >= 6
    killed_at = time.monotonic()
    launcher.proc.kill()
    launcher.proc.wait()
    wait_for(lambda: not launcher.processes(), timeout=STOP_WITHIN_S, interval=0.05)
    print(f"\nSIGKILL of the launcher: its last child ended after {time.monotonic() - killed_at:.2f} s")  # noqa: T201
    assert launcher.taken_ports() == []
