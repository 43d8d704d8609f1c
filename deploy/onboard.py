"""`jiaozhi onboard DIR`: a district of one's own, through the public API only (docs/ONBOARDING.md).

Reads the folder (deploy/onboard_read.py) and checks all of it, with the units the system already has,
before sending anything: any problem → every problem is reported (file, row, reason) and nothing changes.
Then, each step comparing with what the system holds and sending only what is new or different (so a
re-run changes nothing, a run with changed data updates and says what changed, and an interrupted run
picks up where it stopped): units (`POST /units:import`), villages (`POST /villages:batch`), accounts
(`/accounts`), features (`POST /classification/features`), history (`PUT /assessment/history`), and — when
features changed or no run exists — the first classification run, whose modes are printed.

Passwords: a new account's password is generated and appended to the passwords file (mode 0600) *before*
the account is created, so an interruption between the two re-uses it; an account that exists is never
given a new one. Every request goes through `importers.client.send` (429 Retry-After, 503, bounded).
"""
from __future__ import annotations

import csv
import math
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from shapely.geometry import shape

from deploy.onboard_read import ACCOUNTS_FILE, FEATURES, District, Problem, read_folder
from deploy.onboard_registries import changes as registry_changes
from importers.client import login, send

BATCH = 200
PASSWORD_COLUMNS = ("username", "role", "unit", "password")


class Refused(Exception):
    """The folder has problems: nothing was sent."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(f"{len(problems)} problem(s)")
        self.problems = problems


class ApiError(RuntimeError):
    """The gateway refused a request the folder's checks should have made safe."""


@dataclass
class Step:
    """What one step did: ids created, ids updated with what changed, how many were already right."""

    created: list[str] = field(default_factory=list)
    updated: dict[str, list[str]] = field(default_factory=dict)
    unchanged: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"created": self.created, "updated": self.updated, "unchanged": self.unchanged}

    def note(self, key: str, changes: list[str] | None) -> bool:
        """Count one item by its comparison (None: new, []: already right); whether it must be sent."""
        if changes is None:
            self.created.append(key)
        elif changes:
            self.updated[key] = changes
        else:
            self.unchanged += 1
        return changes != []


class Api:
    """The gateway as the onboarding uses it: retried requests, pages followed, errors explained."""

    def __init__(self, client: httpx.Client, sleep: Callable[[float], None]) -> None:
        self.client, self.sleep = client, sleep

    def call(self, method: str, path: str, *, ok: tuple[int, ...] = (200, 201), **kwargs: Any) -> httpx.Response:
        response = send(self.client, method, path, sleep=self.sleep, **kwargs)
        if response.status_code not in ok:
            raise ApiError(f"{method} {path}: {response.status_code} {response.text[:400]}")
        return response

    def every(self, path: str, key: str = "items", **params: Any) -> list[dict]:
        items: list[dict] = []
        cursor = None
        while True:
            page = self.call("GET", path, params={**params, "limit": 500, **({"cursor": cursor} if cursor else {})})
            body = page.json()
            items += body[key]
            if not (cursor := body.get("next_cursor")):
                return items


class PasswordFile:
    """username → password, appended as accounts are made; readable by the operator only (0600)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.known: dict[str, str] = {}
        if path.exists():
            os.chmod(path, 0o600)
            with path.open(encoding="utf-8", newline="") as f:
                self.known = {row["username"]: row["password"] for row in csv.DictReader(f) if row.get("username")}

    def password_for(self, account: dict[str, Any]) -> str:
        """The account's password from the file, or a new one written (and synced) to it first."""
        if (known := self.known.get(account["username"])) is not None:
            return known
        password = secrets.token_urlsafe(32 if account["kind"] == "client" else 12)
        new = not self.path.exists()
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f, lineterminator="\n")
            if new:
                writer.writerow(PASSWORD_COLUMNS)
            writer.writerow([account["username"], account["role"], account["unit_id"] or "", password])
            f.flush()
            os.fsync(f.fileno())
        self.known[account["username"]] = password
        return password


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return a == b


def _same_area(a: dict | None, b: dict | None) -> bool:
    if a is None or b is None:
        return a is b
    return shape(a).equals_exact(shape(b), 1e-9)


def unit_changes(wanted: dict, held: dict | None) -> list[str] | None:
    """None for a new unit, else what differs ([] when nothing)."""
    if held is None:
        return None
    names = ("name", "kind", "parent_id") + (("area_type", "population", "area_km2") if wanted["kind"] == "station"
                                             else ())
    changes = [f"{n}: {held.get(n)} → {wanted[n]}" for n in names if not _same(wanted[n], held.get(n))]
    if wanted["kind"] == "station" and not _same_area(wanted.get("area"), held.get("area")):
        changes.append("area redrawn")
    return changes


def held_units(api: Api) -> dict[str, dict]:
    """The units the system has, stations with their attributes and area."""
    units = {u["id"]: dict(u) for u in api.every("/api/v1/units")}
    for feature in api.every("/api/v1/units/areas", key="features"):
        props = feature["properties"]
        units.setdefault(props["id"], {}).update({k: props.get(k) for k in ("area_type", "population", "area_km2")},
                                                 area=feature["geometry"])
    return units


def _feature(unit: dict) -> dict:
    props = {k: v for k, v in unit.items() if k not in ("area",) and v is not None}
    return {"type": "Feature", "properties": props, "geometry": unit.get("area")}


class Onboarding:
    """One run over a checked district."""

    def __init__(self, api: Api, district: District, passwords: PasswordFile, progress: Progress,
                 wait_s: float) -> None:
        self.api, self.district, self.passwords, self.progress = api, district, passwords, progress
        self.wait_s = wait_s

    def _send(self, name: str, todo: list[dict], send: Callable[[list[dict]], None]) -> None:
        """`todo` in chunks of BATCH, with a progress bar."""
        bar = self.progress.add_task(name, total=len(todo) or 1)
        for start in range(0, len(todo), BATCH):
            chunk = todo[start:start + BATCH]
            send(chunk)
            self.progress.advance(bar, len(chunk))
        self.progress.update(bar, completed=len(todo) or 1)

    def units(self, held: dict[str, dict]) -> Step:
        step = Step()
        todo = [u for u in self.district.units if step.note(u["id"], unit_changes(u, held.get(u["id"])))]
        self._send("units", todo, lambda chunk: self.api.call(
            "POST", "/api/v1/units:import",
            json={"type": "FeatureCollection", "features": [_feature(u) for u in chunk]}))
        return step

    def villages(self) -> Step:
        def village_changes(wanted: dict, old: dict | None) -> list[str] | None:
            return None if old is None else [f"{k}: {old.get(k)} → {v}" for k, v in wanted.items()
                                             if k != "id" and old.get(k) != v]
        records = [{k: v for k, v in x.items() if v is not None} for x in self.district.villages]
        return self.records("villages", records, village_changes)

    def registries(self) -> dict[str, Step]:
        return {name: self.records(name, records, registry_changes)
                for name, records in self.district.registries.items()}

    def records(self, registry: str, records: list[dict], compare: Callable[[dict, dict | None], list[str] | None],
                ) -> Step:
        """Registry records sent to `:batch` where new or different from what the registry holds."""
        step = Step()
        if not records:
            return step
        held = {r["id"]: r for r in self.api.every(f"/api/v1/{registry}")}
        todo = [r for r in records if step.note(r["id"], compare(r, held.get(r["id"])))]

        def send(chunk: list[dict]) -> None:
            body = self.api.call("POST", f"/api/v1/{registry}:batch", json=chunk).json()
            if refused := [r for r in body["results"] if r["status"] not in (200, 201)]:
                raise ApiError(f"{registry} refused: {refused[:3]}")

        self._send(registry, todo, send)
        return step

    def accounts(self) -> Step:
        step = Step()
        held = {a["username"]: a for a in self.api.every("/api/v1/accounts")}
        bar = self.progress.add_task("accounts", total=len(self.district.accounts) or 1)
        for account in self.district.accounts:
            old = held.get(account["username"])
            if old is None:
                password = self.passwords.password_for(account)
                self.api.call("POST", "/api/v1/accounts", ok=(201, 409), json={**account, "password": password})
                step.created.append(account["username"])  # 409: made by the run that was interrupted
            elif changes := [f"{k}: {old[k]} → {account[k]}" for k in ("role", "unit_id") if old[k] != account[k]]:
                self.api.call("PATCH", f"/api/v1/accounts/{account['username']}",
                              json={"role": account["role"], "unit_id": account["unit_id"]})
                step.updated[account["username"]] = changes
            else:
                step.unchanged += 1
            self.progress.advance(bar)
        return step

    def features(self) -> Step:
        step, rows = Step(), []
        bar = self.progress.add_task("features", total=len(self.district.features) or 1)
        for (station, period), values in sorted(self.district.features.items()):
            r = self.api.call("GET", f"/api/v1/stations/{station}/features", ok=(200, 404),
                              params={"period": period})
            held = r.json() if r.status_code == 200 else None
            key = f"{station} {period}"
            if held is None or held.get("source") != "import":
                step.created.append(key)
            elif changed := [n for n in FEATURES if not _same(values[n], held["features"].get(n))]:
                step.updated[key] = [f"{n}: {held['features'].get(n)} → {values[n]}" for n in changed]
            else:
                step.unchanged += 1
                self.progress.advance(bar)
                continue
            rows.append([station, period, *(repr(values[n]) for n in FEATURES)])
            self.progress.advance(bar)
        if rows:
            self._send_features(rows)
        return step

    def _send_features(self, rows: list[list[str]]) -> None:
        """Classification learns of new stations through events: retry while some are still unknown to it."""
        lines = [",".join(("station_id", "period", *FEATURES)), *(",".join(r) for r in rows)]
        deadline = time.monotonic() + self.wait_s
        while True:
            r = self.api.call("POST", "/api/v1/classification/features", ok=(200, 422), content="\n".join(lines),
                              headers={"content-type": "text/csv"})
            if r.status_code == 200:
                return
            unknown = "json" in r.headers.get("content-type", "") and r.json().get("unknown")
            if not unknown or time.monotonic() > deadline:
                raise ApiError(f"features refused: {r.text[:400]}")
            self.api.sleep(0.2)

    def history(self) -> Step:
        """Monthly figures from before the system; only new or different values are sent."""
        step = Step()
        if not self.district.history:
            return step
        held = {(r["station_id"], r["month"], r["measure"]): r["value"]
                for r in self.api.every("/api/v1/assessment/history")}
        todo: dict[tuple[str, str], dict[str, float]] = {}
        for (station, month, measure), value in sorted(self.district.history.items()):
            key, old = (station, month, measure), held.get((station, month, measure))
            if old is None:
                step.created.append(" ".join(key))
            elif not _same(old, value):
                step.updated[" ".join(key)] = [f"{old} → {value}"]
            else:
                step.unchanged += 1
                continue
            todo.setdefault((station, month), {})[measure] = value
        items = [{"station_id": s, "month": m, "measures": v} for (s, m), v in todo.items()]
        bar = self.progress.add_task("history", total=len(items) or 1)
        for start in range(0, len(items), BATCH):
            chunk = items[start:start + BATCH]
            body = self.api.call("PUT", "/api/v1/assessment/history", json=chunk).json()
            if refused := [r for r in body["results"] if r["status"] not in (200, 201)]:
                raise ApiError(f"history refused: {refused[:3]}")
            self.progress.advance(bar, len(chunk))
        self.progress.update(bar, completed=len(items) or 1)
        return step

    def classify(self, features: Step, new_stations: bool) -> dict[str, Any] | None:
        """The first run (or a new one when features changed); None when nothing called for one."""
        if not self.district.features:
            return None
        runs = self.api.call("GET", "/api/v1/classification/runs", params={"limit": 1}).json()["items"]
        if runs and not (features.created or features.updated or new_stations):
            return None
        period = max(p for _, p in self.district.features)
        run = self.api.call("POST", "/api/v1/classification/runs", json={"period": period}).json()
        return {"id": run["id"], "period": period, "sizes": run.get("sizes")}

    def modes(self) -> dict[str, str | None]:
        """Each onboarded station's mode as dispatch knows it (waiting a while for a fresh run's to arrive)."""
        wanted = set(self.district.stations)
        deadline = time.monotonic() + self.wait_s
        while True:
            modes = {s["id"]: s.get("mode") for s in self.api.every("/api/v1/stations") if s["id"] in wanted}
            if not self.district.features or all(modes.get(s) for s in wanted) or time.monotonic() > deadline:
                return modes
            self.api.sleep(0.2)


def onboard(folder: Path, gateway: str, username: str, password: str, *, console: Console,
            passwords_file: Path | None = None, transport: httpx.BaseTransport | None = None,
            sleep: Callable[[float], None] = time.sleep, wait_s: float = 60.0) -> dict[str, Any]:
    """Check the folder, then bring the system in line with it; the summary (Refused when the folder has
    problems, with nothing sent)."""
    with httpx.Client(base_url=gateway, timeout=120, transport=transport) as client:
        token = login(gateway, username, password, client=client, sleep=sleep)
        client.headers["authorization"] = f"Bearer {token}"
        api = Api(client, sleep)
        held = held_units(api)
        district, problems = read_folder(folder, {i: u["kind"] for i, u in held.items() if "kind" in u})
        accounts_held = {a["username"]: a["kind"] for a in api.every("/api/v1/accounts")}
        kinds = {"client": "platform client", "user": "officer"}
        problems += [Problem(ACCOUNTS_FILE, district.account_lines.get(a["username"]),
                             f"{a['username']} exists as a {kinds[accounts_held[a['username']]]}: pick another name")
                     for a in district.accounts if accounts_held.get(a["username"], a["kind"]) != a["kind"]]
        if problems:
            raise Refused(problems)
        passwords = PasswordFile(passwords_file or folder / "passwords.csv")
        with Progress(TextColumn("{task.description:<10}"), BarColumn(), MofNCompleteColumn(), console=console,
                      transient=True) as progress:
            run = Onboarding(api, district, passwords, progress, wait_s)
            units = run.units(held)
            villages = run.villages()
            registries = run.registries()
            accounts = run.accounts()
            features = run.features()
            history = run.history()
            new_stations = any(u in district.stations for u in units.created)
            classification = run.classify(features, new_stations)
            modes = run.modes()
    summary: dict[str, Any] = {"units": units.as_dict(), "villages": villages.as_dict(), "accounts": accounts.as_dict(),
                               "features": features.as_dict(), "history": history.as_dict(),
                               **{name: step.as_dict() for name, step in registries.items()}}
    summary["changed"] = bool(classification) or any(s["created"] or s["updated"] for s in summary.values())
    summary |= {"classification": classification, "modes": modes, "passwords_file": str(passwords.path)}
    return summary
