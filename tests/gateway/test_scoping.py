"""Done-when of issue 7 on the running system: a station user cannot see or touch another station's incidents or
task orders by any route — lists, list filters, pages, single objects, traces, transitions, the event stream."""
from __future__ import annotations

import threading
import time

import httpx
import pytest

from tests.gateway.conftest import INSIDE, OUTSIDE, Live, _first_task, _incident

# runs against the whole system started as processes; one per xdist worker, so its users stay together
pytestmark = [pytest.mark.system, pytest.mark.xdist_group("live")]


def _all(client: httpx.Client, path: str, headers: dict, **params: str) -> list[dict]:
    items, cursor = [], None
    while True:
        page = client.get(path, params=params | {"limit": "1"} | ({"cursor": cursor} if cursor else {}),
                          headers=headers)
        assert page.status_code == 200, page.text
        items += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if not cursor:
            return items


def test_station_lists_and_pages_hold_only_its_own(live: Live) -> None:
    inside, outside = live.objects["inside"], live.objects["outside"]
    with httpx.Client(base_url=live.gateway, timeout=30) as client:
        station = live.headers["station"]
        incidents = _all(client, "/api/v1/incidents", station)
        tasks = _all(client, "/api/v1/tasks", station)
        by_incident = client.get("/api/v1/tasks", params={"incident_id": outside["incident_id"]}, headers=station)
        everything = _all(client, "/api/v1/incidents", live.headers["command"])
    assert inside["incident_id"] in {i["id"] for i in incidents}
    assert {i["station_id"] for i in incidents} == {INSIDE}
    assert inside["task_id"] in {t["id"] for t in tasks}
    assert outside["task_id"] not in {t["id"] for t in tasks}
    assert by_incident.json()["items"] == []
    assert outside["incident_id"] in {i["id"] for i in everything}  # the control: it exists


def test_station_cannot_reach_another_stations_objects(live: Live) -> None:
    outside = live.objects["outside"]
    station = live.headers["station"]
    with httpx.Client(base_url=live.gateway, timeout=30) as client:
        before = client.get(f"/api/v1/tasks/{outside['task_id']}", headers=live.headers["admin"]).json()
        for path in (f"/api/v1/incidents/{outside['incident_id']}", f"/api/v1/tasks/{outside['task_id']}",
                     f"/api/v1/incidents/{outside['incident_id']}/trace",
                     f"/api/v1/tracing/incidents/{outside['incident_id']}/fired",
                     f"/api/v1/stations/{OUTSIDE}/score", f"/api/v1/stations/{OUTSIDE}/features"):
            assert client.get(path, headers=station).status_code == 404, path
        for path, body in ((f"/api/v1/tasks/{outside['task_id']}/transitions", {"action": "accept"}),
                           (f"/api/v1/incidents/{outside['incident_id']}/arrival",
                            {"arrived_at": "2030-01-01T00:00:00+08:00"})):
            assert client.post(path, json=body, headers=station).status_code == 404, path
        after = client.get(f"/api/v1/tasks/{outside['task_id']}", headers=live.headers["admin"]).json()
    assert after["status"] == before["status"]  # untouched
    assert after["history"] == before["history"]


def test_station_event_stream_carries_only_its_own_orders(live: Live) -> None:
    """Open the station's stream, then make one order outside and one inside: only the inside one arrives."""
    received: list[str] = []
    opened = threading.Event()
    stop = threading.Event()

    statuses: list[int] = []

    def listen() -> None:
        try:
            with httpx.Client(base_url=live.gateway, timeout=httpx.Timeout(30, read=60)) as client, \
                    client.stream("GET", "/api/v1/tasks/stream", headers=live.headers["station"]) as response:
                statuses.append(response.status_code)
                opened.set()
                for line in response.iter_lines():
                    received.append(line)
                    if stop.is_set():
                        return
        except httpx.HTTPError:
            if not stop.is_set():
                raise  # a broken stream before the test is done is a failure (reported by pytest)

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    assert opened.wait(30), "the stream did not open"
    assert statuses == [200]
    time.sleep(0.5)  # the feed follows new messages only: let the subscription settle
    with httpx.Client(base_url=live.gateway, timeout=30) as client:
        out = client.post("/api/v1/incidents", json=_incident(OUTSIDE), headers=live.headers["command"]).json()
        inn = client.post("/api/v1/incidents", json=_incident(INSIDE), headers=live.headers["platform"]).json()
        out_task = _first_task(client, live.headers["admin"], out["id"])
        # one the station holds: the incident may fire several models whose orders go to other units too
        in_task = _first_task(client, live.headers["station"], inn["id"])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not any(in_task in line for line in received):
        time.sleep(0.05)
    stop.set()
    assert any(in_task in line for line in received), f"own order never streamed: {received[-5:]}"
    assert not any(out_task in line for line in received)
    assert not any(out["id"] in line for line in received)
