"""Bulk CSV import, overrides across re-runs, run versions with diffs, and features computed from events."""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from deploy.demo_district import features_of
from services.classification.classifier import CANONICAL_FEATURES
from shared.events import ActivityRecorded, IncidentReported, Location, Severity, StationClassified
from tests.helpers import Service, assert_problem, eventually
from tests.services.classification.helpers import (
    DEMO,
    EXPECTED_MODES,
    STATIONS,
    put_demo_features,
)

CSV = "text/csv"


def demo_csv(period: str = "2021") -> str:
    names = sorted(next(iter(DEMO["features"].values())))
    lines = ["station_id,period," + ",".join(names)]
    lines += [f"{sid},{period}," + ",".join(str(f[n]) for n in names) for sid, f in DEMO["features"].items()]
    return "\n".join(lines) + "\n"


async def run(c: Service, body: dict | None = None, role: str = "admin") -> dict:
    response = await c.client.post("/api/v1/classification/runs", json=body or {"period": "2021"}, headers=c.as_(role))
    assert response.status_code == 201, response.text
    return response.json()


async def test_a_bulk_csv_import_feeds_a_run(classification: Service) -> None:
    c = classification
    response = await c.client.post("/api/v1/classification/features", content=demo_csv(),
                                   headers=c.as_("command") | {"content-type": CSV})

    assert response.status_code == 200, response.text
    assert response.json()["rows"] == 6 and response.json()["periods"] == ["2021"]
    result = await run(c)
    assert {a["station_id"]: a["mode"] for a in result["assignments"]} == EXPECTED_MODES
    assert result["feature_sources"] == {"import": 6, "events": 0}
    assert all(a["distinctive"] and a["distinctive"][0]["feature"] for a in result["assignments"])


async def test_bad_csv_is_refused_with_a_clear_4xx(classification: Service) -> None:
    c = classification
    headers = c.as_("admin") | {"content-type": CSV}
    bad_number = "station_id,period,deaths_per_100k\nps-yiqiao,2021,lots\n"
    unknown = "station_id,period,deaths_per_100k\nps-nowhere,2021,3\n"
    bad_header = "station,period,deaths_per_100k\nps-yiqiao,2021,3\n"
    negative = "station_id,period,deaths_per_100k\nps-yiqiao,2021,-3\n"

    for body, needle in ((bad_number, "line 2: deaths_per_100k = 'lots' is not a number"),
                         (unknown, "ps-nowhere"), (bad_header, "header"), (negative, "negative")):
        problem = assert_problem(await c.client.post("/api/v1/classification/features", content=body,
                                                     headers=headers), 422)
        assert needle in problem["detail"]
    assert_problem(await c.client.post("/api/v1/classification/features", content=unknown,
                                       headers=c.as_("admin") | {"content-type": "text/plain"}), 415)
    assert_problem(await c.client.post("/api/v1/classification/features", content=demo_csv(),
                                       headers=c.as_("station", "ps-yiqiao") | {"content-type": CSV}), 403)


async def test_an_override_survives_re_runs_and_is_shown_beside_the_model(classification: Service) -> None:
    c = classification
    await put_demo_features(c)
    first = await run(c)
    override = await c.client.put("/api/v1/stations/ps-yiqiao/mode-override",
                                  json={"mode": "full", "reason": "one-stop station opened in 2022"},
                                  headers=c.as_("command"))
    assert override.status_code == 200, override.text
    assert override.json() | {"override_at": None} == {
        "station_id": "ps-yiqiao", "mode": "full", "mode_source": "override", "model_mode": "deep",
        "run_id": first["id"], "override_mode": "full", "override_reason": "one-stop station opened in 2022",
        "override_by": "command", "override_at": None}

    second = await run(c)

    assert second["changed"] == []  # the override stays in force
    yiqiao = next(a for a in second["assignments"] if a["station_id"] == "ps-yiqiao")
    assert (yiqiao["mode"], yiqiao["mode_in_force"]) == ("deep", "full")
    mine = await c.client.get("/api/v1/stations/ps-yiqiao/mode-override", headers=c.as_("station", "ps-yiqiao"))
    assert (mine.json()["mode"], mine.json()["model_mode"]) == ("full", "deep")
    assert_problem(await c.client.get("/api/v1/stations/ps-heshang/mode-override",
                                      headers=c.as_("station", "ps-yiqiao")), 404)

    removed = await c.client.delete("/api/v1/stations/ps-yiqiao/mode-override", headers=c.as_("admin"))
    assert removed.status_code == 200 and removed.json()["mode"] == "deep"
    assert removed.json()["mode_source"] == "model"

    async def all_announced() -> bool:
        return await c.relayed() and len(await c.facts("classification", StationClassified)) == 8

    await eventually(all_announced, what="6 model events, the override and its removal")
    yiqiao_events = [(e.mode, e.previous_mode, e.source) for e in await c.facts("classification", StationClassified)
                     if e.station_id == "ps-yiqiao"]
    assert yiqiao_events == [("deep", None, "model"), ("full", "deep", "override"), ("deep", "full", "model")]


async def test_override_guard_rails(classification: Service) -> None:
    c = classification
    assert_problem(await c.client.put("/api/v1/stations/ps-yiqiao/mode-override",
                                      json={"mode": "fastest", "reason": "because"}, headers=c.as_("admin")), 422)
    assert_problem(await c.client.put("/api/v1/stations/ps-nowhere/mode-override",
                                      json={"mode": "deep", "reason": "because"}, headers=c.as_("admin")), 404)
    assert_problem(await c.client.put("/api/v1/stations/ps-yiqiao/mode-override",
                                      json={"mode": "deep", "reason": "because"},
                                      headers=c.as_("station", "ps-yiqiao")), 403)
    assert_problem(await c.client.delete("/api/v1/stations/ps-yiqiao/mode-override", headers=c.as_("admin")), 404)


async def test_runs_are_versioned_listed_newest_first_and_diffed(classification: Service) -> None:
    c = classification
    await put_demo_features(c)
    first = await run(c)
    changed = dict(DEMO["features"]["ps-wenyan"])  # make a fringe station look rural
    changed.update(deaths_per_100k=40.0, disorder_complaints_per_10k=5.0)
    put = await c.client.put("/api/v1/stations/ps-wenyan/features", json={"period": "2021", "features": changed},
                             headers=c.as_("admin"))
    assert put.status_code == 204
    second = await run(c)

    assert (first["version"], second["version"]) == (1, 2)
    assert first["diff"]["previous_run_id"] is None
    assert second["diff"]["previous_run_id"] == first["id"]
    moved = {m["station_id"]: (m["from"], m["to"]) for m in second["diff"]["moved"]}
    assert moved.get("ps-wenyan", ("full", None))[0] == "full"
    assert second["diff"]["adjusted_rand_index"] is not None
    page = (await c.client.get("/api/v1/classification/runs", params={"limit": 1}, headers=c.as_("command"))).json()
    assert [r["id"] for r in page["items"]] == [second["id"]] and page["next_cursor"]
    rest = (await c.client.get("/api/v1/classification/runs", params={"limit": 1, "cursor": page["next_cursor"]},
                               headers=c.as_("command"))).json()
    assert [r["id"] for r in rest["items"]] == [first["id"]] and rest["next_cursor"] is None
    paged = (await c.client.get(f"/api/v1/classification/runs/{first['id']}", params={"limit": 4},
                                headers=c.as_("admin"))).json()
    assert len(paged["assignments"]) == 4 and paged["assignments_total"] == 6 and paged["assignments_next_cursor"]
    assert_problem(await c.client.get("/api/v1/classification/runs", params={"cursor": "!!"},
                                      headers=c.as_("admin")), 422)
    assert_problem(await c.client.get("/api/v1/classification/runs", headers=c.as_("station", "ps-yiqiao")), 403)


async def test_dry_run_guard_rails(classification: Service) -> None:
    c = classification
    base = [{"id": s["id"], "features": dict(DEMO["features"][s["id"]])} for s in STATIONS]
    constant = [{"id": s["id"], "features": {"congestion_alarms_per_10k": 1.0, "deaths_per_100k": 1.0}}
                for s in STATIONS]
    missing = [dict(s, features={k: v for k, v in s["features"].items() if k != "deaths_per_100k"}) for s in base]
    text = [dict(base[0], features=dict(base[0]["features"], deaths_per_100k="many"))] + base[1:]
    for stations, status in ((constant, 422), (missing, 422), (text, 422), (base[:2], 422)):
        assert_problem(await c.client.post("/api/v1/classification/runs", json={"dry_run": True, "stations": stations},
                                           headers=c.as_("admin")), status)
    assert_problem(await c.client.post("/api/v1/classification/runs",
                                       json={"dry_run": True, "stations": base, "k": 4}, headers=c.as_("admin")), 422)


async def test_features_computed_from_events_agree_with_the_generator_aggregation(
        classification: Service) -> None:
    c = classification
    tz = ZoneInfo("Asia/Shanghai")
    at = dt.datetime(2021, 6, 1, 9, tzinfo=tz)
    incidents = [
        {"kind": "accident", "station_id": "ps-yiqiao", "occurred_at": at, "severity": {"deaths": 1, "injuries": 2}},
        {"kind": "accident", "station_id": "ps-yiqiao", "occurred_at": at, "severity": {"deaths": 0, "injuries": 1}},
        {"kind": "congestion_alarm", "station_id": "ps-chengxiang", "occurred_at": at,
         "severity": {"deaths": 0, "injuries": 0}},
        {"kind": "disorder_complaint", "station_id": "ps-yiqiao", "occurred_at": at + dt.timedelta(days=200),
         "severity": {"deaths": 0, "injuries": 0}},
        {"kind": "security_case", "station_id": "ps-yiqiao", "occurred_at": at - dt.timedelta(days=30),
         "severity": {"deaths": 0, "injuries": 0}},  # May 2021: inside the 2021 window
    ]
    activities = [
        {"kind": "violation", "station_id": "ps-yiqiao", "occurred_at": at, "count": 5,
         "details": {"type": "drunk_driving"}},
        {"kind": "violation", "station_id": "ps-yiqiao", "occurred_at": at, "count": 7, "details": {"type": "helmet"}},
        {"kind": "education", "station_id": "ps-yiqiao", "occurred_at": at, "count": 300, "details": {}},
        {"kind": "hazard_remediation", "station_id": "ps-yiqiao", "occurred_at": at, "count": 3,
         "details": {"found": 4}},
        {"kind": "education", "station_id": "ps-yiqiao", "occurred_at": dt.datetime(2020, 12, 31, 23, tzinfo=tz),
         "count": 999, "details": {}},  # before the window
    ]
    facts = [IncidentReported(incident_id=f"i{n}", external_id=f"e{n}", kind=r["kind"], occurred_at=r["occurred_at"],
                              location=Location(lat=30.1, lon=120.45), station_id=r["station_id"],
                              severity=Severity(**r["severity"])) for n, r in enumerate(incidents)]
    facts += [ActivityRecorded(activity_id=f"a{n}", external_id=f"x{n}", kind=r["kind"], station_id=r["station_id"],
                               occurred_at=r["occurred_at"], count=r["count"], details=r["details"])
              for n, r in enumerate(activities)]
    await c.publish(*facts)
    expected = features_of(DEMO["units"], incidents, activities, "2021")

    async def counted() -> bool:
        r = await c.client.get("/api/v1/stations/ps-yiqiao/features", params={"period": "2021"},
                               headers=c.as_("admin"))
        return r.status_code == 200 and r.json()["tallies"].get("hazards_found") == 4

    await eventually(counted, what="the events to be counted")
    got = (await c.client.get("/api/v1/stations/ps-yiqiao/features", params={"period": "2021"},
                              headers=c.as_("station", "ps-yiqiao"))).json()
    assert got["source"] == "events"
    assert got["features"] == expected["ps-yiqiao"]
    assert set(got["features"]) == set(CANONICAL_FEATURES)
    assert got["tallies"]["education_people"] == 300 and got["tallies"]["drunk_driving"] == 5

    # no imports: features come from events, and only two stations have any: too few for three clusters
    too_few = await c.client.post("/api/v1/classification/runs", json={"period": "2021"}, headers=c.as_("admin"))
    assert "need at least 3 stations with features, got 2" in assert_problem(too_few, 422)["detail"]
