"""Kill -9 a service or nats-server while incidents flow, restart it: every incident gets exactly one P01 task."""
from __future__ import annotations

import collections
import contextlib
import datetime as dt
import signal
import threading
import time
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import httpx
import pytest
from rich.console import Console

from deploy.demo import load_demo
from deploy.natsd import free_port, free_port_block
from deploy.supervisor import System
from tests.e2e.helpers import all_tasks, drunk_incident, login, post_until_accepted, wait_for
from tests.helpers import BACKENDS, fresh_pg_database_sync

pytestmark = pytest.mark.system

INCIDENTS_PER_ROUND = 40


@pytest.fixture(scope="module", params=BACKENDS)
def system(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """The whole system as processes, on SQLite files or on one PostgreSQL database (a schema per service)."""
    with contextlib.ExitStack() as stack:
        database_url = "" if request.param == "sqlite" else stack.enter_context(fresh_pg_database_sync())
        running = System.on_ports(tmp_path_factory.mktemp("crash"), free_port_block(), free_port())
        running.env["JIAOZHI_DATABASE_URL"] = database_url
        stack.callback(running.down)
        running.up()
        load_demo(running.url("gateway"), console=Console(quiet=True), recent_days=0)  # units and modes suffice
        yield running


@pytest.mark.parametrize("victim", ["tracing", "dispatch", "nats", "assessment"])
def test_kill_and_restart_loses_nothing_and_doubles_nothing(system: System, victim: str) -> None:
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
    system.kill(victim, signal.SIGKILL)
    time.sleep(1.0)
    system.restart(victim)
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
