"""Resilience as an operator would try it (issue 17): assessment frozen (SIGSTOP) while incidents come in, and
the gateway killed while a client listens to the task stream."""
from __future__ import annotations

import json
import re
import signal
import threading
import time
from dataclasses import dataclass, field

import httpx
import pytest

from deploy.supervisor import System
from shared.auth import Identity, issue_internal_token
from shared.settings import Settings
from tests.e2e.helpers import all_tasks, drunk_incident, login, wait_for

pytestmark = [pytest.mark.system, pytest.mark.xdist_group("resilience")]  # one small_system for the module

FREEZE_S = 12


def _handled(system: System, service: str, subject: str) -> float:
    text = httpx.get(system.url(service) + "/metrics", timeout=10).text
    pattern = rf'events_consumed_total{{outcome="handled",subject="{re.escape(subject)}"}} ([0-9.e+]+)'
    return sum(float(v) for v in re.findall(pattern, text))


def test_with_assessment_frozen_the_api_stays_up_intake_is_routed_and_assessment_catches_up(
        small_system: System) -> None:
    system = small_system
    gateway = system.url("gateway")
    command = login(gateway, "command")
    changed = "dispatch.task.changed.v1"
    with httpx.Client(base_url=gateway, timeout=15) as http:
        before = len(all_tasks(http, command))
        handled_before = _handled(system, "assessment", changed)
        system.procs["assessment"].send_signal(signal.SIGSTOP)
        frozen_at = time.monotonic()
        try:
            ready_took, board_took, posted = [], [], []
            while time.monotonic() - frozen_at < FREEZE_S:
                started = time.perf_counter()
                ready = http.get("/readyz", timeout=5)
                ready_took.append(time.perf_counter() - started)
                assert ready.status_code == 200, ready.text
                started = time.perf_counter()
                board = http.get("/api/v1/board", headers=command, timeout=15)
                board_took.append((time.monotonic() - frozen_at, time.perf_counter() - started, board.status_code))
                incident = http.post("/api/v1/incidents", json=drunk_incident(), headers=command)
                assert incident.status_code == 201, incident.text  # intake never depends on assessment
                posted.append(incident.json()["id"])
                time.sleep(0.5)
        finally:
            system.procs["assessment"].send_signal(signal.SIGCONT)
        # the call in flight at the freeze is cut when the breaker opens (one probe interval and timeout, ~1 s);
        # every later one is a 503 at once
        assert all(status == 503 for _, _, status in board_took), board_took
        assert board_took[0][1] < 1.5, board_took
        settled = [(took, status) for at, took, status in board_took[1:]]
        assert settled and all(took < 1.0 for took, _ in settled), board_took
        assert max(ready_took) < 1.0, ready_took
        wait_for(lambda: len(all_tasks(http, command)) >= before + len(posted), timeout=60)  # routed to orders
        # assessment catches up on what it missed: every order event of the freeze handled
        wait_for(lambda: _handled(system, "assessment", changed) >= handled_before + len(posted), timeout=60)
        wait_for(lambda: http.get("/api/v1/board", headers=command).status_code == 200, timeout=10)
    print(f"\nassessment frozen {FREEZE_S}s: /readyz max {max(ready_took) * 1000:.0f} ms; assessment route "
          f"the call in flight at the freeze: 503 after {board_took[0][1] * 1000:.0f} ms; the {len(settled)} later "
          f"calls: 503 in at most {max(t for t, _ in settled) * 1000:.1f} ms; {len(posted)} incidents accepted and "
          f"routed")


@dataclass
class SseClient:
    """Listens to the task stream through the gateway in a thread; reconnects with Last-Event-ID when cut."""

    gateway: str
    headers: dict[str, str]
    events: list[tuple[str, str, dict]] = field(default_factory=list)  # (id, event, data)
    connections: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        last_id = None
        while not self.stop.is_set():
            headers = self.headers | ({"last-event-id": last_id} if last_id else {})
            try:
                with httpx.stream("GET", self.gateway + "/api/v1/tasks/stream", headers=headers,
                                  timeout=httpx.Timeout(5, read=30)) as response:
                    if response.status_code != 200:
                        time.sleep(0.2)
                        continue
                    self.connections += 1
                    event_id = event = None
                    for line in response.iter_lines():
                        if self.stop.is_set():
                            return
                        if line.startswith("id: "):
                            event_id = line[4:]
                        elif line.startswith("event: "):
                            event = line[7:]
                        elif line.startswith("data: ") and event:
                            self.events.append((event_id or "", event, json.loads(line[6:])))
                            last_id = event_id or last_id
                            event_id = event = None
            except httpx.HTTPError:
                time.sleep(0.2)  # the gateway is away: try again, as EventSource does

    def tasks(self) -> list[str]:
        return [data["task_id"] for _, event, data in self.events if event == "task.changed"]


def test_a_client_listening_through_a_killed_gateway_resumes_and_misses_no_order_event(
        small_system: System) -> None:
    system = small_system
    gateway = system.url("gateway")
    command = login(gateway, "command")
    client = SseClient(gateway, command)
    client.start()
    try:
        wait_for(lambda: client.connections == 1, timeout=20)
        token = issue_internal_token(Settings(), Identity(username="command", role="command"),
                                     key=system.keys().signing)  # as the gateway of this system signs them
        direct = {"authorization": "Bearer " + token}
        with httpx.Client(timeout=15) as http:
            def report(via: str, headers: dict) -> str:
                r = http.post(via + "/api/v1/incidents", json=drunk_incident(), headers=headers)
                assert r.status_code == 201, r.text
                return r.json()["id"]

            def tasks_of(incident_id: str) -> list[str]:
                items = http.get(system.url("dispatch") + "/api/v1/tasks", params={"incident_id": incident_id},
                                 headers=direct).json()["items"]
                return [t["id"] for t in items]

            first = report(gateway, command)
            first_tasks = wait_for(lambda: tasks_of(first), timeout=30)
            wait_for(lambda: set(first_tasks) <= set(client.tasks()), timeout=20)
            system.kill("gateway", signal.SIGKILL)  # the client's connection is cut
            missed = [report(system.url("dispatch"), direct) for _ in range(3)]  # while the gateway is down
            missed_tasks = [t for i in missed for t in wait_for(lambda i=i: tasks_of(i), timeout=30)]
            system.restart("gateway")
            wait_for(lambda: client.connections >= 2, timeout=30)
            after = report(gateway, command)
            after_tasks = wait_for(lambda: tasks_of(after), timeout=30)
            wait_for(lambda: set(missed_tasks + after_tasks) <= set(client.tasks()), timeout=30)
        ids = [int(i) for i, _, _ in client.events]
        assert ids == sorted(ids) and len(set(ids)) == len(ids), ids  # in stream order, none twice
    finally:
        client.stop.set()
