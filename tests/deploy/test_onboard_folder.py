"""The onboarding folder's checks (every problem with file, row and reason), the template it writes, and the client's
retries (429 Retry-After, 503, bounded, one Idempotency-Key per write) — without a running system."""
from __future__ import annotations

import email.utils
import json
import shutil
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from deploy.cli import cli
from deploy.onboard_read import read_folder
from importers.client import GaveUp, send
from services.classification.classifier import classify

DATA = Path(__file__).parent.parent / "data"


def test_the_template_is_a_valid_district_with_three_modes(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["onboard", "--template", str(tmp_path / "mine")])
    assert result.exit_code == 0, result.output
    district, problems = read_folder(tmp_path / "mine")
    assert problems == []
    assert district.stations == ["ps-north", "ps-harbour", "ps-valley"]
    assert len(district.history) == 3 * 12 * 2
    assert {name: len(records) for name, records in district.registries.items()} == {
        "road-sections": 1, "hazards": 1, "enterprises": 1}
    assert {a["role"] for a in district.accounts} == {"command", "squadron", "station", "platform"}
    ids = sorted(s for s, _ in district.features)
    assert set(classify(ids, [district.features[(i, "2026")] for i in ids]).sizes) == {"basic", "deep", "full"}
    (tmp_path / "mine" / "accounts.csv").write_text("mine\n")
    CliRunner().invoke(cli, ["onboard", "--template", str(tmp_path / "mine")])
    assert (tmp_path / "mine" / "accounts.csv").read_text() == "mine\n"  # never overwritten


def test_every_problem_is_reported_with_file_row_and_reason(tmp_path: Path) -> None:
    folder = tmp_path / "d"
    shutil.copytree(DATA / "onboard", folder)
    units = json.loads((folder / "units.geojson").read_text())
    features = units["features"]
    features[0]["properties"]["parent_id"] = "hb-sq-town"  # brigade → squadron → brigade: a loop
    features[4]["properties"]["parent_id"] = "hb-brigade"  # a station straight under the brigade
    features[5]["properties"]["population"] = -3
    features[6]["geometry"]["coordinates"][0] = features[6]["geometry"]["coordinates"][0][:3]  # ring too short
    features[7]["properties"]["colour"] = "red"
    features.append(dict(features[9]))  # the same unit twice
    (folder / "units.geojson").write_text(json.dumps(units))
    (folder / "accounts.csv").write_text("username,role,unit\nhb.x,station,hb-sq-town\nhb y,command,\n"
                                         "hb.z,wizard,\nhb.w,admin,hb-ps-lake\nhb.v,squadron,\n")
    (folder / "features.csv").write_text((folder / "features.csv").read_text().replace("hb-ps-lake,2026,32",
                                                                                      "hb-ps-gone,2026,x"))
    (folder / "history.csv").write_text("station_id,month,measure,value\nhb-ps-east,2025-13,accidents,1\n"
                                        "hb-ps-east,2025-01,happiness,-1\nhb-sq-town,2025-01,deaths,1\n")
    (folder / "hazards.csv").write_text("id,kind,lat,lon,status\nhz-1,bend,29.0,x,open\nhz-2,bend,29.0,121.0,gone\n")
    (folder / "enterprises.csv").write_text("id,inspection_rate\nent-1,1.5,extra,cells\n")
    _, problems = read_folder(folder)
    found = {(p.file, p.row, p.reason.split(":")[0] if p.file == "units.geojson" else p.reason) for p in problems}
    reasons = " | ".join(p.reason for p in problems)
    for expected in ("parent links form a loop", "is a brigade, not a squadron", "population must be",
                     "broken polygon", "unknown properties: colour", "is already feature 10",
                     "unit hb-sq-town is a squadron, not a station", "username must be", "role must be one of",
                     "admin accounts have no unit", "a squadron account needs its unit", "unknown station hb-ps-gone",
                     "security_cases_per_10k must be a number", "month must be YYYY-MM", "unknown measure happiness",
                     "value must be a number", "unknown station hb-sq-town", "lat and lon must be numbers",
                     "status: Input should be 'open' or 'remediated'", "inspection_rate: Input should be less"):
        assert expected in reasons, (expected, reasons)
    assert ("accounts.csv", 2, "unit hb-sq-town is a squadron, not a station") in found
    assert all(p.row is not None for p in problems)


def test_missing_files_and_bad_json_are_problems_too(tmp_path: Path) -> None:
    (tmp_path / "units.geojson").write_text("{not json")
    _, problems = read_folder(tmp_path)
    assert {p.file for p in problems} == {"units.geojson", "accounts.csv"}


def test_send_waits_for_retry_after_and_keeps_one_idempotency_key() -> None:
    keys, answers = [], [429, 503, 409, 201]
    later = email.utils.formatdate(time.time() + 3, usegmt=True)

    def handler(request: httpx.Request) -> httpx.Response:
        keys.append(request.headers.get("idempotency-key"))
        status = answers.pop(0)
        headers = {429: {"Retry-After": later}, 409: {"Retry-After": "1"}}.get(status, {})
        return httpx.Response(status, headers=headers)

    waits: list[float] = []
    with httpx.Client(transport=httpx.MockTransport(handler), base_url="http://gw") as client:
        assert send(client, "POST", "/api/v1/x", json=[], sleep=waits.append).status_code == 201
        assert len(set(keys)) == 1 and keys[0]
        assert 1 <= waits[0] <= 3 and waits[1] == 1.0 and waits[2] == 1.0  # date, back-off, seconds
        answers.append(404)  # any other answer comes back as it is, at once
        assert send(client, "GET", "/api/v1/y", sleep=waits.append).status_code == 404
        assert keys[-1] is None and len(waits) == 3  # no key on a read


def test_send_gives_up_after_a_bounded_number_of_attempts() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(503)

    with httpx.Client(transport=httpx.MockTransport(handler), base_url="http://gw") as client, \
            pytest.raises(GaveUp, match="503 after 4 attempts"):
        send(client, "GET", "/api/v1/x", sleep=lambda s: None, attempts=4)
    assert len(calls) == 4
