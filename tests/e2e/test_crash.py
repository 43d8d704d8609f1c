"""Kill -9 a service, the gateway or nats-server, or crash-restart PostgreSQL, while incidents flow: every incident
gets exactly one P01 task and services reconnect by themselves."""
from __future__ import annotations

import collections
import contextlib
import datetime as dt
import signal
import threading
import time
from collections.abc import Callable, Iterator
from zoneinfo import ZoneInfo

import httpx
import pytest
from rich.console import Console

from deploy.demo import load_demo
from deploy.natsd import free_port, free_port_block
from deploy.supervisor import System
from tests.e2e.helpers import all_tasks, drunk_incident, login, post_until_accepted, wait_for
from tests.e2e.private_pg import BIN as PG_BIN
from tests.e2e.private_pg import PrivatePostgres, private_postgres
from tests.helpers import IN_CI

pytestmark = pytest.mark.system
# one system per database for every victim, the two databases' systems on two xdist workers side by side
ON_SQLITE = pytest.param("sqlite", marks=pytest.mark.xdist_group("crash-sqlite"))
ON_POSTGRES = pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.xdist_group("crash-postgres")])

INCIDENTS_PER_ROUND = 40


@pytest.fixture(scope="module", params=[ON_SQLITE, ON_POSTGRES])
def system(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """The whole system as processes, on SQLite files or on one PostgreSQL database (a schema per service) in
    a private cluster of our own, which the test may restart (`system.postgres`)."""
    with contextlib.ExitStack() as stack:
        postgres = None if request.param == "sqlite" else stack.enter_context(private_cluster())
        running = System.on_ports(tmp_path_factory.mktemp("crash"), free_port_block(), free_port())
        running.env["JIAOZHI_DATABASE_URL"] = postgres.url if postgres else ""
        running.postgres = postgres  # type: ignore[attr-defined]
        stack.callback(running.down)
        running.up()
        load_demo(running.url("gateway"), console=Console(quiet=True), recent_days=0)  # units and modes suffice
        yield running


def private_cluster() -> contextlib.AbstractContextManager[PrivatePostgres]:
    """Our own cluster (the shared server on 5432 is never restarted); a failure in CI if it cannot run here."""
    if not (PG_BIN / "initdb").exists():
        message = f"no PostgreSQL server binaries in {PG_BIN} (set JIAOZHI_PG_BIN)"
        pytest.fail(message) if IN_CI else pytest.skip(message)
    return private_postgres()


@pytest.mark.parametrize("victim", ["tracing", "dispatch", "nats", "assessment", "gateway"])
def test_kill_and_restart_loses_nothing_and_doubles_nothing(system: System, victim: str) -> None:
    def kill_and_restart() -> None:
        system.kill(victim, signal.SIGKILL)
        time.sleep(1.0)
        system.restart(victim)

    incidents_flow_through(system, kill_and_restart)


@pytest.mark.parametrize("system", [ON_POSTGRES], indirect=True)
def test_postgres_crash_restart_mid_stream_loses_nothing_and_doubles_nothing(system: System) -> None:
    postgres: PrivatePostgres = system.postgres  # type: ignore[attr-defined]
    incidents_flow_through(system, lambda: postgres.restart("immediate", down_s=2.0))  # a crash: no checkpoint
    for name in system.procs:
        assert system.procs[name].poll() is None, f"{name} ended instead of reconnecting"


def incidents_flow_through(system: System, disrupt: Callable[[], None]) -> None:
    """Post incidents from a thread, `disrupt` a third of the way in, and check every one ends with one P01."""
    gateway = system.url("gateway")
    platform, command = login(gateway, "platform"), login(gateway, "command")
    posted: list[str] = []
    counted_before = counted_incidents(gateway, command)

    def post_all() -> None:
        with httpx.Client(base_url=gateway) as http:
            for i in range(INCIDENTS_PER_ROUND):
                posted.append(post_until_accepted(http, drunk_incident(), platform)["id"])
                time.sleep(0.02 if i % 2 else 0.0)

    poster = threading.Thread(target=post_all)
    poster.start()
    wait_for(lambda: len(posted) >= INCIDENTS_PER_ROUND // 3, timeout=30)
    disrupt()
    poster.join(timeout=120)
    assert not poster.is_alive() and len(posted) == INCIDENTS_PER_ROUND

    with httpx.Client(base_url=gateway) as http:
        def every_incident_has_its_task() -> bool:
            try:
                ours = [t for t in all_tasks(http, command) if t["incident_id"] in set(posted)]
            except httpx.HTTPError:
                return False
            return {t["incident_id"] for t in ours if t["model_id"] == "P01"} == set(posted)

        wait_for(every_incident_has_its_task, timeout=60, interval=0.5)
        time.sleep(1.5)  # let any straggling redelivery land before counting
        ours = [t for t in all_tasks(http, command) if t["incident_id"] in set(posted)]
    # the same drunk driver crashing again and again at one spot also fires other models (a person's earlier
    # accidents, an accident cluster); each (incident, model, entity) must still hold exactly one order
    per_incident = collections.Counter(t["incident_id"] for t in ours if t["model_id"] == "P01")
    assert set(per_incident) == set(posted), "an incident lost its P01 task"
    assert max(per_incident.values()) == 1, f"doubled: {[i for i, n in per_incident.items() if n > 1]}"
    per_key = collections.Counter((t["incident_id"], t["model_id"], t["entity_ref"]) for t in ours)
    assert max(per_key.values()) == 1, f"doubled: {[k for k, n in per_key.items() if n > 1]}"
    assert len(set(posted)) == INCIDENTS_PER_ROUND, "an incident was stored twice"
    wait_for(lambda: counted_incidents(gateway, command) >= counted_before + INCIDENTS_PER_ROUND, timeout=30)
    time.sleep(1.0)
    assert counted_incidents(gateway, command) == counted_before + INCIDENTS_PER_ROUND, "assessment miscounted"


def counted_incidents(gateway: str, headers: dict) -> int:
    """Incidents assessment has counted at ps-yiqiao in the month the test incidents occur in."""
    try:
        period = dt.datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m")  # the incidents occur now
        r = httpx.get(gateway + "/api/v1/assessment/tallies", params={"period": period}, headers=headers)
    except httpx.HTTPError:
        return -1
    if r.status_code != 200:
        return -1
    return sum(row["incidents"] for row in r.json()["stations"] if row["station_id"] == "ps-yiqiao")
