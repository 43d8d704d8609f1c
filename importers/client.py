"""Post mapped records to the gateway in batches, with a progress bar, and account for every record."""
from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

BATCH = 500


@dataclass
class Tally:
    """What happened to every record of one kind: created, already there, rejected (with reasons)."""

    total: int = 0
    created: int = 0
    existing: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    ids: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-able summary."""
        return {"total": self.total, "created": self.created, "existing": self.existing,
                "rejected": sum(self.rejected.values()), "rejected_by_reason": dict(self.rejected)}


def login(base_url: str, username: str, password: str) -> str:
    """A bearer token from the gateway (OAuth2 password grant)."""
    response = httpx.post(f"{base_url}/api/v1/auth/token", timeout=30,
                          data={"grant_type": "password", "username": username, "password": password})
    response.raise_for_status()
    return response.json()["access_token"]


def post_batches(client: httpx.Client, path: str, items: list[tuple[str, dict[str, Any]]], tally: Tally, *,
                 console: Console, label: str) -> None:
    """POST `path` (a :batch endpoint) in chunks; items are (key, body); results go into the tally."""
    with Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, transient=False) as progress:
        task = progress.add_task(label, total=len(items))
        for start in range(0, len(items), BATCH):
            chunk = items[start:start + BATCH]
            response = _post(client, path, [body for _, body in chunk])
            for result in response["results"]:
                key = chunk[result["index"]][0]
                tally.total += 1
                if result["status"] == 201:
                    tally.created += 1
                elif result["status"] == 200:
                    tally.existing += 1
                else:
                    errors = result.get("errors") or [{"loc": [], "msg": "rejected"}]
                    tally.rejected["api: " + "; ".join(f"{'.'.join(map(str, e['loc']))} {e['msg']}"
                                                       for e in errors)[:120]] += 1
                    continue
                if result.get("id"):
                    tally.ids[key] = result["id"]
            progress.advance(task, len(chunk))


def _post(client: httpx.Client, path: str, bodies: list[dict[str, Any]]) -> dict[str, Any]:
    for attempt in range(5):
        try:
            response = client.post(path, json=bodies)
        except httpx.TransportError:
            if attempt == 4:
                raise
            time.sleep(1 + attempt)
            continue
        if response.status_code in (502, 503, 504) and attempt < 4:
            time.sleep(1 + attempt)
            continue
        response.raise_for_status()
        return response.json()
    raise RuntimeError("unreachable")


def reject_all(tally: Tally, reasons: Iterable[str]) -> None:
    """Count records refused before sending, by reason."""
    for reason in reasons:
        tally.total += 1
        tally.rejected[reason] += 1


def coordinates(row: dict[str, str], lat: str, lon: str) -> tuple[float, float] | None:
    """A record's (latitude, longitude) from two columns, or None when missing or unreadable."""
    try:
        return float(row[lat]), float(row[lon])
    except (KeyError, ValueError):
        return None
