"""Dispatch's HTTP API in-process against real NATS, on SQLite and PostgreSQL: units, incidents, scopes, outbox."""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from nats.js.errors import NotFoundError
from sqlalchemy import select

from services.dispatch.app import create_app
from services.dispatch.config import DispatchSettings
from services.dispatch.models import OUTBOX, Incident
from shared.events import Envelope, IncidentReported
from shared.pagination import encode_cursor
from shared.runtime import Runtime
from tests.helpers import assert_problem, auth, serving

DEMO = json.loads((Path(__file__).resolve().parents[3] / "deploy" / "demo_district.json").read_text())
ID_NUMBER = "330102199001011234"
IN_YIQIAO = {"lat": 30.1, "lon": 120.45}
IN_HESHANG = {"lat": 30.2, "lon": 120.45}
OUTSIDE = {"lat": 31.5, "lon": 121.9}


@dataclass
class Dispatch:
    client: httpx.AsyncClient
    settings: DispatchSettings
    rt: Runtime
    nats_url: str

    def as_(self, role: str, unit_id: str | None = None) -> dict[str, str]:
        return auth(self.settings, role, unit_id=unit_id)


@pytest.fixture
async def dispatch(database_url: str, nats_url: str, tmp_path: Path) -> AsyncIterator[Dispatch]:
    settings = DispatchSettings(database_url=database_url, nats_url=nats_url, data_dir=tmp_path, outbox_poll_s=0.2)
    app = create_app(settings)
    async with serving(app) as client:
        response = await client.post("/api/v1/units", json=DEMO["units"], headers=auth(settings, "admin"))
        assert response.status_code == 200, response.text
        yield Dispatch(client, settings, app.state.rt, nats_url)


def incident(external_id: str, *, location: dict[str, float] | None = None,
             occurred_at: str = "2024-05-01T08:30:00+08:00", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"external_id": external_id, "occurred_at": occurred_at,
                            "location": location or IN_YIQIAO}
    body.update(extra)
    return body


async def report(d: Dispatch, body: dict[str, Any], *, role: str = "platform") -> httpx.Response:
    return await d.client.post("/api/v1/incidents", json=body, headers=d.as_(role))


async def list_all(d: Dispatch, headers: dict[str, str]) -> list[dict[str, Any]]:
    response = await d.client.get("/api/v1/incidents", params={"limit": 500}, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["next_cursor"] is None
    return response.json()["items"]


# --- units ---------------------------------------------------------------------------------------

async def test_units_load_from_the_demo_district_and_stations_get_a_centroid(dispatch: Dispatch) -> None:
    response = await dispatch.client.get("/api/v1/stations", headers=dispatch.as_("command"))

    assert response.status_code == 200
    stations = {s["id"]: s for s in response.json()["items"]}
    assert set(stations) == {u["id"] for u in DEMO["units"] if u["kind"] == "station"}
    yiqiao = stations["ps-yiqiao"]
    assert 30.05 < yiqiao["centroid"]["lat"] < 30.15 and 120.4 < yiqiao["centroid"]["lon"] < 120.5
    units: list[dict] = []
    cursor = None
    while True:  # pages of 3: every unit once, in id order
        page = (await dispatch.client.get("/api/v1/units", params={"limit": 3} | ({"cursor": cursor} if cursor else {}),
                                          headers=dispatch.as_("command"))).json()
        units += page["items"]
        if not (cursor := page["next_cursor"]):
            break
    assert [u["id"] for u in units] == sorted(u["id"] for u in DEMO["units"])


async def test_a_platform_may_not_read_units_or_stations(dispatch: Dispatch) -> None:
    for path in ("/api/v1/units", "/api/v1/units/ps-yiqiao", "/api/v1/stations"):
        assert_problem(await dispatch.client.get(path, headers=dispatch.as_("platform")), 403)


async def test_station_areas_come_as_geojson_pages_in_id_order(dispatch: Dispatch) -> None:
    stations = {u["id"]: u for u in DEMO["units"] if u["kind"] == "station"}
    features, cursor, pages = [], None, 0
    while True:
        params = {"limit": 10} | ({"cursor": cursor} if cursor else {})
        response = await dispatch.client.get("/api/v1/units/areas", params=params,
                                             headers=dispatch.as_("station", unit_id="ps-heshang"))
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/geo+json"
        page = response.json()
        assert page["type"] == "FeatureCollection" and len(page["features"]) <= 10
        features += page["features"]
        pages += 1
        cursor = page["next_cursor"]
        if not cursor:
            break

    assert pages == -(-len(stations) // 10)
    assert [f["id"] for f in features] == sorted(stations)
    yiqiao = next(f for f in features if f["id"] == "ps-yiqiao")
    assert yiqiao["type"] == "Feature" and yiqiao["geometry"]["type"] in ("Polygon", "MultiPolygon")
    assert yiqiao["geometry"]["coordinates"] == stations["ps-yiqiao"]["area"]["coordinates"]
    assert yiqiao["properties"]["name"] == stations["ps-yiqiao"]["name"]
    assert yiqiao["properties"]["parent_id"] == stations["ps-yiqiao"]["parent_id"]


async def test_station_areas_refuse_a_platform_and_a_foreign_cursor(dispatch: Dispatch) -> None:
    refused = await dispatch.client.get("/api/v1/units/areas", headers=dispatch.as_("platform"))
    assert_problem(refused, 403)
    foreign = await dispatch.client.get("/api/v1/units/areas", params={"cursor": encode_cursor("x", 1)},
                                        headers=dispatch.as_("command"))
    assert_problem(foreign, 422)
    too_many = await dispatch.client.get("/api/v1/units/areas", params={"limit": 501}, headers=dispatch.as_("command"))
    assert_problem(too_many, 422)


async def test_a_station_user_may_not_change_units(dispatch: Dispatch) -> None:
    unit = {"id": "ps-new", "name": "New", "kind": "brigade"}
    response = await dispatch.client.post("/api/v1/units", json=unit,
                                          headers=dispatch.as_("station", unit_id="ps-heshang"))

    assert_problem(response, 403)
    assert (await dispatch.client.get("/api/v1/units/ps-new", headers=dispatch.as_("admin"))).status_code == 404


# --- incidents -----------------------------------------------------------------------------------

async def test_an_incident_is_placed_in_the_station_whose_area_holds_it(dispatch: Dispatch) -> None:
    response = await report(dispatch, incident("ext-1"))

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["station_id"] == "ps-yiqiao"
    assert body["outside_area"] is False
    assert body["handling_unit_id"] and body["dispatched_at"]
    assert "ps-yiqiao" in body["dispatch_reason"]


async def test_the_same_external_id_again_returns_the_first_incident_and_stores_no_second(dispatch: Dispatch) -> None:
    first = await report(dispatch, incident("ext-dup"))
    again = await report(dispatch, incident("ext-dup", location=IN_HESHANG))

    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["station_id"] == "ps-yiqiao"
    assert [i["id"] for i in await list_all(dispatch, dispatch.as_("command"))] == [first.json()["id"]]


async def test_a_point_outside_every_area_is_flagged_and_not_dispatched(dispatch: Dispatch) -> None:
    response = await report(dispatch, incident("ext-out", location=OUTSIDE))

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["outside_area"] is True
    assert body["station_id"] is None
    assert body["handling_unit_id"] is None
    assert body["dispatch_reason"]


@pytest.mark.parametrize(("case", "body"), [
    ("missing location", {"external_id": "bad-1", "occurred_at": "2024-05-01T08:30:00+08:00"}),
    ("naive occurred_at", incident("bad-2", occurred_at="2024-05-01T08:30:00")),
    ("latitude 200", incident("bad-3", location={"lat": 200, "lon": 120.45})),
    ("unknown vehicle kind", incident("bad-4", parties=[{"role": "driver", "vehicle": {"kind": "spaceship"}}])),
])
async def test_invalid_incidents_are_refused_with_a_problem_listing_the_errors(
        dispatch: Dispatch, case: str, body: dict[str, Any]) -> None:
    response = await report(dispatch, body)

    problem = assert_problem(response, 422)
    assert problem["errors"], case
    assert all("loc" in e and "msg" in e for e in problem["errors"])
    assert await list_all(dispatch, dispatch.as_("command")) == []


async def test_a_station_user_sees_only_incidents_in_its_own_area(dispatch: Dispatch) -> None:
    yiqiao = (await report(dispatch, incident("ext-yq"))).json()
    heshang = (await report(dispatch, incident("ext-hs", location=IN_HESHANG))).json()
    assert heshang["station_id"] == "ps-heshang"
    as_heshang = dispatch.as_("station", unit_id="ps-heshang")

    hidden = await dispatch.client.get(f"/api/v1/incidents/{yiqiao['id']}", headers=as_heshang)
    own = await dispatch.client.get(f"/api/v1/incidents/{heshang['id']}", headers=as_heshang)

    assert_problem(hidden, 404)
    assert own.status_code == 200
    assert [i["id"] for i in await list_all(dispatch, as_heshang)] == [heshang["id"]]
    assert len(await list_all(dispatch, dispatch.as_("command"))) == 2


async def test_pages_of_two_follow_the_cursor_through_every_incident_exactly_once(dispatch: Dispatch) -> None:
    times = ["2024-05-01T08:00:00+08:00", "2024-05-01T09:00:00+08:00", "2024-05-01T09:00:00+08:00",
             "2024-05-02T00:00:00Z", "2024-04-30T23:59:59+08:00"]  # two share a time: the id breaks the tie
    posted = []
    for n, at in enumerate(times):
        response = await report(dispatch, incident(f"ext-page-{n}", occurred_at=at))
        assert response.status_code == 201
        posted.append(response.json()["id"])

    seen: list[dict[str, Any]] = []
    cursor = None
    for _ in range(10):
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = await dispatch.client.get("/api/v1/incidents", params=params, headers=dispatch.as_("command"))
        assert page.status_code == 200, page.text
        assert len(page.json()["items"]) <= 2
        seen.extend(page.json()["items"])
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break

    assert len(seen) == 5
    assert sorted(i["id"] for i in seen) == sorted(posted)
    keys = [(dt.datetime.fromisoformat(i["occurred_at"]), i["id"]) for i in seen]
    assert keys == sorted(keys, reverse=True)  # newest first, ties by id


@pytest.mark.parametrize("cursor", [
    "not-a-cursor!!",
    encode_cursor("x") + "{",  # not base64 JSON
    "eyJhIjogMX0",  # {"a": 1}: not a list
    encode_cursor("not a date", "x"),
    encode_cursor("2024-05-01T00:00:00+00:00"),  # no id
    encode_cursor(123, "x"),
    encode_cursor("2024-05-01T00:00:00", "x"),  # a timestamp without offset
])
async def test_a_garbage_cursor_is_a_422_problem(dispatch: Dispatch, cursor: str) -> None:
    response = await dispatch.client.get("/api/v1/incidents", params={"cursor": cursor},
                                         headers=dispatch.as_("command"))

    assert_problem(response, 422)


async def test_the_identity_number_is_kept_only_as_hash_and_mask(dispatch: Dispatch) -> None:
    party = {"role": "driver", "person": {"id_number": ID_NUMBER, "name": "Zhang San", "drunk": True},
             "vehicle": {"plate": "浙A12345", "kind": "car"}}
    response = await report(dispatch, incident("ext-id", parties=[party]))

    assert response.status_code == 201
    assert ID_NUMBER not in response.text
    person = response.json()["parties"][0]["person"]
    assert person["id_hash"] and len(person["id_hash"]) == 64
    assert person["id_masked"] == ID_NUMBER[:3] + "*" * (len(ID_NUMBER) - 5) + ID_NUMBER[-2:]
    listed = await dispatch.client.get("/api/v1/incidents", headers=dispatch.as_("command"))
    assert ID_NUMBER not in listed.text
    async with dispatch.rt.sessions() as session:
        stored = (await session.execute(select(Incident))).scalar_one()
        outbox_bodies = (await session.execute(select(OUTBOX.table.c.body))).scalars().all()
    assert ID_NUMBER not in json.dumps(stored.details, ensure_ascii=False)
    assert stored.details["parties"][0]["person"]["id_hash"] == person["id_hash"]
    assert not any(ID_NUMBER in body for body in outbox_bodies)


# --- health, metrics, outbox ---------------------------------------------------------------------

async def test_readyz_is_ready_and_metrics_count_http_requests(dispatch: Dispatch) -> None:
    ready = await dispatch.client.get("/readyz")
    metrics = await dispatch.client.get("/metrics")

    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"database": "ok", "nats": "ok"}}
    assert metrics.status_code == 200
    assert 'http_requests_total{method="POST",route="/api/v1/units",status="200"} 1.0' in metrics.text


async def test_a_reported_incident_is_announced_on_the_dispatch_stream(dispatch: Dispatch) -> None:
    created = (await report(dispatch, incident("ext-bus", severity={"deaths": 1, "injuries": 2}))).json()

    nc = await nats.connect(dispatch.nats_url)
    try:
        js = nc.jetstream()
        deadline = time.monotonic() + 10
        found: list[Any] = []
        while not found:
            found = await _messages(js, IncidentReported.subject)
            if time.monotonic() > deadline:
                pytest.fail("no dispatch.incident.reported.v1 on the DISPATCH stream within 10 s")
            await asyncio.sleep(0.05)
    finally:
        await nc.close()

    assert len(found) == 1
    envelope = Envelope.model_validate_json(found[0].data)
    assert found[0].headers["Nats-Msg-Id"] == envelope.id
    fact = envelope.payload(IncidentReported)
    assert isinstance(fact, IncidentReported)
    assert (fact.incident_id, fact.station_id, fact.severity.deaths) == (created["id"], "ps-yiqiao", 1)
    async with dispatch.rt.sessions() as session:
        assert await OUTBOX.pending_count(session) == 0


async def _messages(js: Any, subject: str) -> list[Any]:
    """Every message on `subject` in the DISPATCH stream so far."""
    try:
        info = await js.stream_info("DISPATCH")
    except NotFoundError:
        return []
    msgs: list[Any] = []
    if info.state.messages == 0:
        return msgs
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        msg = await js.get_msg("DISPATCH", seq)
        if msg.subject == subject:
            msgs.append(msg)
    return msgs


@pytest.mark.parametrize("params", [{"since": "2024-05-01T00:00:00"}, {"until": "2024-05-01T00:00:00"}])
async def test_a_time_filter_without_offset_is_a_422_problem(dispatch: Dispatch, params: dict[str, str]) -> None:
    response = await dispatch.client.get("/api/v1/incidents", params=params, headers=dispatch.as_("command"))

    assert_problem(response, 422)


async def test_time_filters_select_incidents_by_when_they_occurred(dispatch: Dispatch) -> None:
    early = (await report(dispatch, incident("ext-early", occurred_at="2024-05-01T07:59:00+08:00"))).json()
    late = (await report(dispatch, incident("ext-late", occurred_at="2024-05-01T08:00:00+08:00"))).json()

    response = await dispatch.client.get("/api/v1/incidents", params={"since": "2024-05-01T00:00:00Z"},
                                         headers=dispatch.as_("command"))
    before = await dispatch.client.get("/api/v1/incidents", params={"until": "2024-05-01T00:00:00+00:00"},
                                       headers=dispatch.as_("command"))

    assert [i["id"] for i in response.json()["items"]] == [late["id"]]
    assert [i["id"] for i in before.json()["items"]] == [early["id"]]
