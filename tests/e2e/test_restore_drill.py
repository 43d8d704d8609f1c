"""The restore drill, as an operator runs it: load, back up while events are in flight, post more, restore into
fresh databases and a fresh JetStream store, start: the backup's data is all there once, new incidents still
become task orders, nothing is doubled, and an account made before the backup logs in."""
from __future__ import annotations

import collections
import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from deploy.components import ROOT
from deploy.demo import load_demo
from deploy.natsd import free_port, free_port_block
from deploy.supervisor import System
from tests.e2e.helpers import all_tasks, drunk_incident, login, post_until_accepted, wait_for
from tests.e2e.test_crash import counted_incidents
from tests.helpers import BACKENDS, fresh_pg_database_sync

pytestmark = pytest.mark.system

SETTLED, IN_FLIGHT, AFTER = 8, 12, 5


def jiaozhi(system: System, *args: str) -> str:
    """Run the `jiaozhi` command with the environment the system runs with (as an operator on its host would)."""
    done = subprocess.run([sys.executable, "-m", "deploy.cli", *args], cwd=ROOT, env=system.env_for("gateway"),
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def all_incidents(http: httpx.Client, headers: dict) -> list[dict]:
    """Every incident the caller sees, following cursors."""
    items, cursor = [], None
    while True:
        params = {"limit": 500} | ({"cursor": cursor} if cursor else {})
        page = http.get("/api/v1/incidents", params=params, headers=headers, timeout=10).raise_for_status().json()
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return items


def p01_per_incident(http: httpx.Client, headers: dict, incidents: set[str]) -> collections.Counter:
    return collections.Counter(t["incident_id"] for t in all_tasks(http, headers)
                               if t["model_id"] == "P01" and t["incident_id"] in incidents)


def steady_tally(gateway: str, headers: dict) -> int:
    """Incidents assessment counts at ps-yiqiao this month, once the count has stopped moving for a second."""
    last = counted_incidents(gateway, headers)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = counted_incidents(gateway, headers)
        if now == last and now >= 0:
            return now
        last = now
    raise TimeoutError("assessment's count never settled")


@pytest.fixture(params=BACKENDS)
def databases(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """(before, after) database URLs: "" for SQLite files in each system's data directory, else two fresh
    PostgreSQL databases (the restore goes into the second)."""
    if request.param == "sqlite":
        yield "", ""
        return
    with fresh_pg_database_sync() as before, fresh_pg_database_sync() as after:
        yield before, after


def test_backup_post_more_restore_fresh_start(databases: tuple[str, str], tmp_path: Path) -> None:
    before_url, after_url = databases
    with contextlib.ExitStack() as stack:
        first = System.on_ports(tmp_path / "before", free_port_block(), free_port())
        first.env["JIAOZHI_DATABASE_URL"] = before_url
        stack.callback(first.down)
        first.up()
        gateway = first.url("gateway")
        load_demo(gateway, console=Console(quiet=True), recent_days=1)
        jiaozhi(first, "accounts", "add-user", "drill-officer", "--role", "command", "--password", "drill-pass-1")
        platform, command = login(gateway, "platform"), login(gateway, "command")
        with httpx.Client(base_url=gateway) as http:
            settled = {post_until_accepted(http, drunk_incident(), platform)["id"] for _ in range(SETTLED)}
            wait_for(lambda: set(p01_per_incident(http, command, settled)) == settled, timeout=60, interval=0.3)
            in_flight = {post_until_accepted(http, drunk_incident(), platform)["id"] for _ in range(IN_FLIGHT)}
            jiaozhi(first, "backup", str(tmp_path / "backup"))  # right away: some of these still travel
            backed_up = {i["id"] for i in all_incidents(http, command)}
            later = {post_until_accepted(http, drunk_incident(), platform)["id"] for _ in range(AFTER)}
            wait_for(lambda: set(p01_per_incident(http, command, later)) == later, timeout=60, interval=0.3)
            tally = steady_tally(gateway, command)  # what assessment counts once everything has arrived
        assert settled | in_flight <= backed_up and not later & backed_up
        first.down()

        second = System.on_ports(tmp_path / "after", free_port_block(), free_port())
        second.env["JIAOZHI_DATABASE_URL"] = after_url
        stack.callback(second.down)
        started = time.monotonic()
        out = jiaozhi(second, "restore", str(tmp_path / "backup"))
        assert "outbox rows to re-send" in out
        second.up()
        gateway = second.url("gateway")
        command = login(gateway, "drill-officer", "drill-pass-1")  # an account made before the backup
        platform = login(gateway, "platform")
        with httpx.Client(base_url=gateway) as http:
            assert {i["id"] for i in all_incidents(http, command)} == backed_up
            wait_for(lambda: set(p01_per_incident(http, command, settled | in_flight)) == settled | in_flight,
                     timeout=60, interval=0.3)
            resumed_after_s = time.monotonic() - started
            fresh = {post_until_accepted(http, drunk_incident(), platform)["id"] for _ in range(AFTER)}
            wait_for(lambda: set(p01_per_incident(http, command, fresh)) == fresh, timeout=60, interval=0.3)
            time.sleep(1.5)  # let any straggling re-sent event land before counting
            per_incident = p01_per_incident(http, command, settled | in_flight | fresh)
            per_key = collections.Counter((t["incident_id"], t["model_id"], t["entity_ref"])
                                          for t in all_tasks(http, command))
            assert {i["id"] for i in all_incidents(http, command)} == backed_up | fresh
        assert max(per_incident.values()) == 1, f"doubled: {[i for i, n in per_incident.items() if n > 1]}"
        assert max(per_key.values()) == 1, "a task order doubled"
        # assessment counted each restored incident once (the re-sent incident events were skipped): `later` is
        # gone with the restore and as many `fresh` ones came instead
        assert steady_tally(gateway, command) == tally, "assessment miscounted after the restore"
        print(f"restore + start + in-flight orders delivered: {resumed_after_s:.1f}s")
