"""Driving a running system over HTTP as its users would."""
from __future__ import annotations

import datetime as dt
import time
import uuid

import httpx


def login(gateway: str, username: str, password: str = "demo") -> dict[str, str]:
    """A bearer header for a demo account."""
    r = httpx.post(gateway + "/api/v1/auth/token",
                   data={"grant_type": "password", "username": username, "password": password}, timeout=10)
    r.raise_for_status()
    return {"authorization": "Bearer " + r.json()["access_token"]}


def drunk_incident(external_id: str | None = None, lat: float = 30.10, lon: float = 120.45) -> dict:
    """A drunk-driving accident (in ps-yiqiao's area by default)."""
    return {
        "external_id": external_id or f"e2e-{uuid.uuid4().hex}",
        "occurred_at": dt.datetime.now(dt.UTC).isoformat(),  # recent: older accidents are back-fills (no task)
        "location": {"lat": lat, "lon": lon},
        "severity": {"deaths": 0, "injuries": 1},
        "parties": [{"role": "driver", "person": {"id_number": "330109199001011234", "drunk": True},
                     "vehicle": {"plate": "浙A12345", "kind": "car"}}],
    }


def post_until_accepted(client: httpx.Client, body: dict, headers: dict, deadline_s: float = 60) -> dict:
    """POST an incident, retrying (same external_id) through outages, as an integrating platform would."""
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            r = client.post("/api/v1/incidents", json=body, headers=headers, timeout=5)
            if r.status_code in (200, 201):
                return r.json()
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"incident {body['external_id']} never accepted")
        time.sleep(0.2)


def get_politely(client: httpx.Client, path: str, deadline_s: float = 30, **kwargs: object) -> httpx.Response:
    """A GET that, as an integrating client should, waits out a 503's Retry-After (a service restarting) until a
    deadline; any other answer is raised or returned at once."""
    deadline = time.monotonic() + deadline_s
    while True:
        r = client.get(path, timeout=10, **kwargs)  # type: ignore[arg-type]
        if r.status_code != 503 or time.monotonic() > deadline:
            return r.raise_for_status()
        time.sleep(min(float(r.headers.get("retry-after", 1)), 5))


def all_tasks(client: httpx.Client, headers: dict) -> list[dict]:
    """Every task order visible to the caller, following cursors."""
    items, cursor = [], None
    while True:
        params = {"limit": 500} | ({"cursor": cursor} if cursor else {})
        page = get_politely(client, "/api/v1/tasks", params=params, headers=headers).json()
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return items


def wait_for(predicate, timeout: float, interval: float = 0.05):  # noqa: ANN001, ANN201
    """Poll until predicate() is truthy; return its value or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout}s")
        time.sleep(interval)
