"""Talk to the gateway as a well-behaved client: retries and batches, with a progress bar, every record counted.

`send` is the one way a request goes out: a `429` waits for its `Retry-After` (capped), a `502/503/504` or a
broken connection backs off, each a bounded number of times, and a write carries one `Idempotency-Key` over
all its attempts (the gateway answers a repeat from its record), so a retry never doubles anything. The
STATS19 and FARS importers (`run.py`) and `jiaozhi onboard` use it.
"""
from __future__ import annotations

import email.utils
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

BATCH = 500
ATTEMPTS = 8  # tries per request before giving up
RETRY_AFTER_MAX_S = 60.0  # a longer Retry-After is waited for only this long
RETRIED = frozenset({429, 502, 503, 504})
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class GaveUp(RuntimeError):
    """The gateway kept answering 429/5xx (or could not be reached) for every attempt."""


def retry_after_s(response: httpx.Response, attempt: int) -> float:
    """How long to wait before trying again: the answer's `Retry-After` (seconds or an HTTP date), capped, else
    an exponential back-off (0.5 s, 1 s, 2 s … up to 8 s)."""
    value = response.headers.get("retry-after", "").strip()
    if value:
        try:
            return min(RETRY_AFTER_MAX_S, max(0.0, float(value)))
        except ValueError:
            when = email.utils.parsedate_to_datetime(value) if value else None
            if when is not None:
                return min(RETRY_AFTER_MAX_S, max(0.0, when.timestamp() - time.time()))
    return min(8.0, 0.5 * 2 ** attempt)


def send(client: httpx.Client, method: str, path: str, *, attempts: int = ATTEMPTS,
         sleep: Callable[[float], None] = time.sleep, **kwargs: Any) -> httpx.Response:
    """One request, retried on 429 (after Retry-After), 502/503/504 and connection errors, at most `attempts`
    times; a write keeps one Idempotency-Key across its attempts (a 409 with Retry-After — the same key still in
    flight — is waited for too). Any other answer is returned as it is."""
    if method.upper() in WRITES:
        headers = dict(kwargs.pop("headers", None) or {})
        headers.setdefault("idempotency-key", uuid.uuid4().hex)
        kwargs["headers"] = headers
    for attempt in range(attempts):
        try:
            response = client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            if attempt == attempts - 1:
                raise GaveUp(f"{method} {path}: {type(exc).__name__} on every one of {attempts} attempts") from exc
            sleep(min(8.0, 0.5 * 2 ** attempt))
            continue
        in_flight = response.status_code == 409 and "retry-after" in response.headers  # our key's first try
        if response.status_code not in RETRIED and not in_flight:
            return response
        if attempt == attempts - 1:
            raise GaveUp(f"{method} {path}: still {response.status_code} after {attempts} attempts")
        sleep(retry_after_s(response, attempt))
    raise AssertionError("unreachable")


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


def login(base_url: str, username: str, password: str, *, client: httpx.Client | None = None,
          sleep: Callable[[float], None] = time.sleep) -> str:
    """A bearer token from the gateway (OAuth2 password grant; a 429 waits for Retry-After)."""
    data = {"grant_type": "password", "username": username, "password": password}
    if client is not None:
        response = send(client, "POST", "/api/v1/auth/token", data=data, sleep=sleep)
    else:
        with httpx.Client(base_url=base_url, timeout=30) as own:
            response = send(own, "POST", "/api/v1/auth/token", data=data, sleep=sleep)
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
    response = send(client, "POST", path, json=bodies)
    response.raise_for_status()
    return response.json()


def reject_all(tally: Tally, reasons: Iterable[str]) -> None:
    """Count records refused before sending, by reason."""
    for reason in reasons:
        tally.total += 1
        tally.rejected[reason] += 1


@dataclass
class Mapped:
    """What an importer read: incidents to send (with their external ids), why others were refused, and the
    villages (communities) their parties live in."""

    items: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    villages: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, body: dict[str, Any] | None, reason: str | None, village_name: Callable[[str], str]) -> None:
        """One crash as mapped: kept with the villages it names, or refused with why."""
        if body is None:
            self.rejected.append(reason or "unknown")
            return
        self.items.append((body["external_id"], body))
        for party in body["parties"]:
            if village := party["person"].get("village_id"):
                self.villages[village] = {"id": village, "name": village_name(village), "kind": "community"}

    def result(self) -> tuple[list[tuple[str, dict[str, Any]]], list[str], dict[str, dict[str, Any]]]:
        return self.items, self.rejected, self.villages


def coordinates(row: dict[str, str], lat: str, lon: str) -> tuple[float, float] | None:
    """A record's (latitude, longitude) from two columns, or None when missing or unreadable."""
    try:
        return float(row[lat]), float(row[lon])
    except (KeyError, ValueError):
        return None
