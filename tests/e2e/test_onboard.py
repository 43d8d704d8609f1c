"""`jiaozhi onboard` against the whole system started without the demo (no demo accounts either: the first admin
comes from `jiaozhi accounts add-user`): a broken folder is refused whole, an interrupted run resumes through a
gateway answering 429 and 503 for a while, a second run changes nothing, a changed folder updates what changed;
then the district works: station users log in, an incident becomes its station's task order, the board and the
scores list exactly the onboarded stations. Data: tests/data/onboard/ (hand-written, six stations, three modes)."""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import shutil
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from rich.console import Console
from typer.testing import CliRunner

from deploy.cli import cli
from deploy.natsd import free_port, free_port_block
from deploy.onboard import Refused, onboard
from deploy.supervisor import System
from tests.e2e.helpers import drunk_incident, wait_for

# one system for the module: both tests on one xdist worker (neither depends on the other's order)
pytestmark = [pytest.mark.system, pytest.mark.xdist_group("onboard")]

DATA = Path(__file__).parent.parent / "data"
STATIONS = {"hb-ps-east", "hb-ps-west", "hb-ps-dock", "hb-ps-mill", "hb-ps-pine", "hb-ps-lake"}
ADMIN, ADMIN_PASSWORD = "root", "root-password-1"


class Interrupted(Exception):
    """Stands for Ctrl-C or a lost connection in the middle of a run."""


class Flaky(httpx.BaseTransport):
    """In front of the real gateway: answers 429 (Retry-After: 1) and 503 for a while, loses the answer to some
    writes it did forward (503 after the fact), or interrupts the run after `stop_after` writes."""

    def __init__(self, refuse: int = 0, lose: int = 0, stop_after: int | None = None) -> None:
        self.inner = httpx.HTTPTransport()
        self.refuse, self.lose, self.stop_after = refuse, lose, stop_after
        self.writes = 0
        self.answered: dict[int, int] = {429: 0, 503: 0}

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        write = request.method != "GET" and request.url.path != "/api/v1/auth/token"
        if self.refuse > 0:
            self.refuse -= 1
            status = 429 if self.refuse % 2 else 503
            self.answered[status] += 1
            return httpx.Response(status, headers={"Retry-After": "1"} if status == 429 else {})
        if write and self.stop_after is not None and self.writes >= self.stop_after:
            raise Interrupted
        response = self.inner.handle_request(request)
        if write:
            self.writes += 1
            if self.lose > 0 and response.status_code < 300:
                self.lose -= 1
                response.read()
                self.answered[503] += 1
                return httpx.Response(503)  # applied, but the answer never arrived
        return response


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    system = System.on_ports(tmp_path_factory.mktemp("onboard"), free_port_block(), free_port())
    system.env.update({"JIAOZHI_ENVIRONMENT": "test", "JIAOZHI_DEMO_ACCOUNTS": "false", "JIAOZHI_LOG_LEVEL": "WARNING",
                       "JIAOZHI_DATABASE_URL": "", "JIAOZHI_RATE_PER_S": "100000", "JIAOZHI_RATE_BURST": "100000",
                       "JIAOZHI_LOGIN_RATE_PER_MIN": "100000"})
    made = CliRunner().invoke(cli, ["accounts", "add-user", ADMIN, "--role", "admin", "--password", ADMIN_PASSWORD],
                              env=system.env_for("gateway"))
    assert made.exit_code == 0, made.output
    try:
        system.up()
        yield system
    finally:
        system.down()


def _run(system: System, folder: Path, **kw: object) -> dict:
    waits: list[float] = kw.pop("waits", [])  # type: ignore[assignment]

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(min(seconds, 0.05))

    return onboard(folder, system.url("gateway"), ADMIN, ADMIN_PASSWORD, console=_quiet(), sleep=sleep,
                   wait_s=30, **kw)  # type: ignore[arg-type]


def _quiet() -> Console:
    return Console(file=io.StringIO())


def _get(system: System, path: str, headers: dict, **params: object) -> dict:
    r = httpx.get(system.url("gateway") + path, headers=headers, params=params, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def _login(system: System, username: str, password: str) -> dict[str, str]:
    r = httpx.post(system.url("gateway") + "/api/v1/auth/token", timeout=10,
                   data={"grant_type": "password", "username": username, "password": password})
    assert r.status_code == 200, (username, r.text)
    return {"authorization": "Bearer " + r.json()["access_token"]}


def _passwords(path: Path) -> dict[str, str]:
    with path.open(encoding="utf-8") as f:
        return {row["username"]: row["password"] for row in csv.DictReader(f)}


def test_a_broken_folder_is_refused_whole(system: System, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(DATA / "onboard-broken", broken)
    admin = _login(system, ADMIN, ADMIN_PASSWORD)
    before = {path: _get(system, path, admin, limit=500)["items"] for path in ("/api/v1/units", "/api/v1/accounts")}
    result = CliRunner().invoke(cli, ["onboard", str(broken), "--gateway", system.url("gateway"),
                                      "--username", ADMIN, "--password", ADMIN_PASSWORD],
                                env={"COLUMNS": "250"})
    assert result.exit_code == 2, result.output
    assert "3 problem(s)" in result.output
    with pytest.raises(Refused) as refused:
        _run(system, broken)
    problems = [(p.file, p.row, p.reason) for p in refused.value.problems]
    assert [(file, row) for file, row, _ in problems] == [("units.geojson", 5), ("units.geojson", 6),
                                                          ("accounts.csv", 4)]
    for (_, _, reason), expected in zip(problems, ("broken polygon: Self-intersection", "unknown parent hb-sq-nowhere",
                                                   "duplicate username hb.command"), strict=True):
        assert expected in reason
    assert {path: _get(system, path, admin, limit=500)["items"] for path in before} == before  # nothing stored
    assert not (broken / "passwords.csv").exists()


def test_onboarding_resumes_through_429_and_503_and_a_second_run_changes_nothing(system: System,
                                                                                 tmp_path: Path) -> None:
    folder = tmp_path / "district"
    shutil.copytree(DATA / "onboard", folder)
    with pytest.raises(Interrupted):  # units, villages and the 3 registries in, then 3 accounts, then it stops
        _run(system, folder, transport=Flaky(stop_after=8))
    first = _passwords(folder / "passwords.csv")
    assert len(first) == 4  # written before each account was created: the fourth never got there

    flaky, waits = Flaky(refuse=6, lose=3), []
    summary = _run(system, folder, transport=flaky, waits=waits)
    assert flaky.answered == {429: 3, 503: 3 + 3} and flaky.lose == 0
    assert waits.count(1.0) >= 3  # Retry-After honoured
    assert summary["units"]["created"] == [] and summary["units"]["unchanged"] == 10
    assert len(summary["accounts"]["created"]) == 11 - 3 and summary["accounts"]["unchanged"] == 3
    assert len(summary["history"]["created"]) == 24
    assert [summary[r]["unchanged"] for r in ("road-sections", "hazards", "enterprises")] == [2, 2, 1]  # sent before
    assert summary["classification"]["sizes"] == {"basic": 2, "deep": 2, "full": 2}
    assert set(summary["modes"]) == STATIONS and set(summary["modes"].values()) == {"basic", "deep", "full"}

    passwords = _passwords(folder / "passwords.csv")
    assert len(passwords) == 11 and {k: passwords[k] for k in first} == first
    assert stat.S_IMODE((folder / "passwords.csv").stat().st_mode) == 0o600
    admin = _login(system, ADMIN, ADMIN_PASSWORD)
    assert len(_get(system, "/api/v1/units", admin, limit=500)["items"]) == 10  # nothing doubled
    assert len(_get(system, "/api/v1/accounts", admin, limit=500)["items"]) == 12
    assert len(_get(system, "/api/v1/villages", admin, limit=500)["items"]) == 3
    assert len(_get(system, "/api/v1/classification/runs", admin, limit=500)["items"]) == 1
    assert len(_get(system, "/api/v1/assessment/history", admin, limit=500)["items"]) == 24
    assert len(_get(system, "/api/v1/hazards", admin, limit=500)["items"]) == 2

    again = _run(system, folder)
    assert not again["changed"], again
    assert again["units"]["unchanged"] == 10 and again["accounts"]["unchanged"] == 11
    assert again["history"]["unchanged"] == 24 and again["features"]["unchanged"] == 6
    assert [again[r]["unchanged"] for r in ("villages", "road-sections", "hazards", "enterprises")] == [3, 2, 2, 1]
    assert _passwords(folder / "passwords.csv") == passwords

    # changed data: attributes are updated and reported, passwords untouched
    units = json.loads((folder / "units.geojson").read_text())
    units["features"][8]["properties"]["population"] = 60000
    (folder / "units.geojson").write_text(json.dumps(units))
    rows = (folder / "accounts.csv").read_text().replace("hb.command,command,", "hb.command,admin,")
    (folder / "accounts.csv").write_text(rows)
    history = (folder / "history.csv").read_text()
    (folder / "history.csv").write_text(history.replace("pine,2025-01,accidents,6", "pine,2025-01,accidents,16"))
    hazards = (folder / "hazards.csv").read_text()
    (folder / "hazards.csv").write_text(hazards.replace("hb-rd-pass,2026-10-03T09:00:00+08:00,", "hb-rd-pass,"
                                                        "2026-10-03T09:00:00+08:00,2026-11-20T12:00:00+08:00")
                                        .replace("急弯无警示,29.08,121.25,open", "急弯无警示,29.08,121.25,remediated"))
    changed = _run(system, folder)
    assert changed["units"]["updated"] == {"hb-ps-pine": ["population: 52000 → 60000"]}
    assert changed["accounts"]["updated"] == {"hb.command": ["role: command → admin"]}
    assert changed["history"]["updated"] == {"hb-ps-pine 2025-01 incident.accident": ["6.0 → 16.0"]}
    assert changed["hazards"]["updated"] == {"hb-hz-1": ["status: open → remediated",
                                                         "remediated_at: None → 2026-11-20T12:00:00+08:00"]}
    assert changed["classification"] is None  # the features did not change
    assert _passwords(folder / "passwords.csv") == passwords
    assert _get(system, "/api/v1/accounts/hb.command", admin)["role"] == "admin"

    _the_district_works(system, passwords)


def _the_district_works(system: System, passwords: dict[str, str]) -> None:
    """Every station user logs in; an incident in Pine's area is Pine's task order; the board and the scores list
    exactly the onboarded stations."""
    station_users = {f"hb.{s.removeprefix('hb-ps-')}": s for s in STATIONS}
    headers = {user: _login(system, user, passwords[user]) for user in station_users}
    for user, station in station_users.items():
        assert _get(system, "/api/v1/me", headers[user])["unit_id"] == station
    platform = httpx.post(system.url("gateway") + "/api/v1/auth/token", timeout=10,
                          data={"grant_type": "client_credentials", "client_id": "hb-platform",
                                "client_secret": passwords["hb-platform"]})
    assert platform.status_code == 200, platform.text
    incident = drunk_incident(lat=29.05, lon=121.25) | {"occurred_at": dt.datetime.now(dt.UTC).isoformat()}
    posted = httpx.post(system.url("gateway") + "/api/v1/incidents", json=incident, timeout=10,
                        headers={"authorization": "Bearer " + platform.json()["access_token"]})
    assert posted.status_code == 201, posted.text
    assert posted.json()["station_id"] == "hb-ps-pine"
    pine = headers["hb.pine"]
    tasks = wait_for(lambda: _get(system, "/api/v1/tasks", pine, incident_id=posted.json()["id"])["items"], 20)
    assert {t["unit_id"] for t in tasks} == {"hb-ps-pine"}
    command = _login(system, "hb.command", passwords["hb.command"])
    board = wait_for(lambda: {s["station_id"] for s in _get(system, "/api/v1/board", command)["stations"]}
                     == STATIONS or None, 20)
    assert board
    scores = wait_for(lambda: {s["station_id"] for s in _get(system, "/api/v1/assessment/scores", command)["stations"]}
                      == STATIONS or None, 20)
    assert scores
