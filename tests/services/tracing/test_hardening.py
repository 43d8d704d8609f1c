"""Regressions from fuzzing tracing (schemathesis through the gateway): input a database cannot store is a 422
problem, never a 500; records known only from incidents list; platforms may not read the catalogue."""
from __future__ import annotations

import base64
import json
import uuid

import pytest
from sqlalchemy import select

from services.tracing.models import Person, TracedIncident, Village
from shared.db import utcnow
from shared.events import IncidentReported, Location, PartyFacts, PersonFacts, VehicleFacts
from tests.helpers import Service, assert_problem, auth, eventually, every_item
from tests.services.tracing.helpers import envelope_of

pytestmark = pytest.mark.usefixtures("tracing")
ID_NUMBER = "330102199001011234"


def _cursor(key: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


@pytest.mark.parametrize(("path", "body"), [
    ("/api/v1/persons", {"id_number": ID_NUMBER, "unprocessed_violations": 2**63}),  # the gateway's finding
    ("/api/v1/persons", {"id_number": ID_NUMBER, "unprocessed_violations": 2**31}),  # past PostgreSQL's INTEGER
    ("/api/v1/persons", {"id_number": ID_NUMBER, "name": "a\x00b"}),  # PostgreSQL refuses NUL in text
    ("/api/v1/persons", {"id_number": ID_NUMBER, "village_id": "no spaces allowed"}),
    ("/api/v1/vehicles", {"plate": "ZJA1", "unprocessed_violations": 10**20}),
    ("/api/v1/villages", {"id": "v1", "residents": 2**40}),
    ("/api/v1/hazards", {"id": "hz", "location": {"lat": 30, "lon": 120}, "description": "\x00"}),
])
async def test_unstorable_registry_input_is_a_422_problem(tracing: Service, path: str, body: dict) -> None:  # noqa: F811
    r = await tracing.client.post(path, json=body, headers=auth(tracing.settings, "admin"))
    assert_problem(r, 422)


async def test_nan_is_refused_in_a_registry_record_and_in_a_batch(tracing: Service) -> None:  # noqa: F811
    h = auth(tracing.settings, "admin") | {"content-type": "application/json"}
    one = await tracing.client.post("/api/v1/enterprises", content=b'{"id": "e1", "inspection_rate": NaN}', headers=h)
    batch = await tracing.client.post("/api/v1/persons:batch", headers=h, content=json.dumps(
        [{"id_number": ID_NUMBER, "unprocessed_violations": 2**63}, {"id_number": ID_NUMBER, "age": 40}]).encode())
    section = await tracing.client.post("/api/v1/road-sections", headers=h, content=(  # JSON columns refuse NaN
        b'{"id": "rs", "geometry": {"type": "LineString", "coordinates": [[1, 2], [1, 3]], "bbox": [NaN]}}'))
    assert_problem(one, 422)
    assert_problem(section, 422)
    assert [item["status"] for item in batch.json()["results"]] == [422, 201]
    assert batch.json()["results"][0]["type"].endswith("/invalid-batch-item")


@pytest.mark.parametrize("cursor", ["%%%", "bm90IGpzb24", _cursor({"a": 1}), _cursor([1]), _cursor(["a\x00"])])
async def test_a_cursor_that_does_not_decode_is_a_422(tracing: Service, cursor: str) -> None:  # noqa: F811
    r = await tracing.client.get("/api/v1/villages", params={"cursor": cursor}, headers=auth(tracing.settings, "admin"))
    problem = assert_problem(r, 422)
    assert (problem["type"].rsplit("/", 1)[1], problem["parameter"]) == ("invalid-cursor", "cursor")


async def test_a_nul_in_the_url_is_a_422_not_a_database_error(tracing: Service) -> None:  # noqa: F811
    h = auth(tracing.settings, "admin")
    assert_problem(await tracing.client.get("/api/v1/persons/a%00b", headers=h), 422)
    assert_problem(await tracing.client.get("/api/v1/incidents/a%00b/trace", headers=h), 422)


async def test_records_known_only_from_an_incident_list_even_with_ids_no_registry_would_accept(
        tracing: Service) -> None:  # noqa: F811
    """The gateway's 500 on GET /villages: a village (or operator) named by an incident need not look like a registry
    key, and listing must not re-apply the registry's input rules to it. Odd facts that would not fit a column are
    dropped, and the incident is still traced."""
    incident_id = f"inc-{uuid.uuid4().hex}"
    fact = IncidentReported(
        incident_id=incident_id, external_id="ext-odd", kind="accident", occurred_at=utcnow(),
        location=Location(lat=30.1, lon=120.45), station_id="ps-yiqiao", handling_unit_id="ps-yiqiao",
        parties=[PartyFacts(role="driver",
                            person=PersonFacts(id_hash="cd" * 32, village_id="下 村 1", unprocessed_violations=2**40),
                            vehicle=VehicleFacts(plate="ZJ-B9", operator_id="运输 公司")),
                 PartyFacts(role="rider", person=PersonFacts(id_hash="ef" * 32, village_id="x" * 65))])
    await tracing.publish(envelope_of(fact))

    async def traced() -> bool:
        async with tracing.rt.sessions() as session:
            return await session.get(TracedIncident, incident_id) is not None

    await eventually(traced, what="the incident traced")
    h = auth(tracing.settings, "command")
    villages = await tracing.client.get("/api/v1/villages", headers=h)
    vehicles = await tracing.client.get("/api/v1/vehicles", headers=h)
    assert villages.status_code == 200, villages.text
    assert [v["id"] for v in villages.json()["items"]] == ["下 村 1"]  # the 65-character id was dropped
    assert vehicles.status_code == 200, vehicles.text
    assert vehicles.json()["items"][0]["operator_id"] == "运输 公司"
    async with tracing.rt.sessions() as session:
        person = await session.get(Person, "cd" * 32)
        assert person is not None and person.unprocessed_violations is None  # out of range: not stored
        assert len(list((await session.execute(select(Village))).scalars())) == 1


async def test_a_platform_may_not_read_the_catalogue(tracing: Service) -> None:  # noqa: F811
    platform, command = auth(tracing.settings, "platform"), auth(tracing.settings, "command")
    for path in ("/api/v1/tracing/models", "/api/v1/tracing/models/P01"):
        assert_problem(await tracing.client.get(path, headers=platform), 403)
        assert (await tracing.client.get(path, headers=command)).status_code == 200


@pytest.mark.parametrize("change", [
    {"deadline_h": 1e300},
    {"deadline_h": -1},
    {"key_points": ["x" * 501]},
    {"parameters": {"limit": 2**80}},
    {"examples": {"fire": [{}] * 51, "no_fire": [{}]}},
    {"description": "\x00"},
])
async def test_absurd_model_updates_are_422(tracing: Service, change: dict) -> None:  # noqa: F811
    r = await tracing.client.put("/api/v1/tracing/models/P01", json=change, headers=auth(tracing.settings, "admin"))
    assert_problem(r, 422)
    listed = await tracing.client.get("/api/v1/tracing/models/P01", headers=auth(tracing.settings, "admin"))
    assert listed.json()["version"] == 1


async def test_nan_in_a_model_update_is_422(tracing: Service) -> None:  # noqa: F811
    h = auth(tracing.settings, "admin") | {"content-type": "application/json"}
    r = await tracing.client.put("/api/v1/tracing/models/P01", content=b'{"deadline_h": NaN}', headers=h)
    assert_problem(r, 422)


async def test_the_catalogue_pages_like_every_list(tracing: Service) -> None:  # noqa: F811
    h = auth(tracing.settings, "command")
    seen = [m["id"] for m in await every_item(tracing.client, "/api/v1/tracing/models", headers=h, limit=10)]
    assert len(seen) == 24 and seen == sorted(set(seen))
    too_many = assert_problem(await tracing.client.get("/api/v1/tracing/models", headers=h, params={"limit": 501}), 422)
    assert (too_many["type"].rsplit("/", 1)[1], too_many["parameter"]) == ("limit-out-of-range", "limit")


async def test_a_bad_ndjson_line_is_rejected_on_its_own(tracing: Service) -> None:  # noqa: F811
    h = auth(tracing.settings, "admin") | {"content-type": "application/x-ndjson"}
    r = await tracing.client.post("/api/v1/villages:batch", headers=h,
                                  content=b'{"id": "v-nd1"}\n{not json\n{"id": "v-nd2"}\n')
    assert r.status_code == 200, r.text
    assert [(x["index"], x["status"]) for x in r.json()["results"]] == [(0, 201), (1, 422), (2, 201)]
    assert r.json()["results"][1]["type"].endswith("/invalid-batch-item")
    not_a_batch = assert_problem(await tracing.client.post("/api/v1/villages:batch", json={"id": "v"},
                                                           headers=auth(tracing.settings, "admin")), 422)
    assert not_a_batch["type"].endswith("/invalid-batch")


async def test_a_registry_pages_through_every_record_once(tracing: Service) -> None:  # noqa: F811
    h = auth(tracing.settings, "admin")
    await tracing.client.post("/api/v1/villages:batch", headers=h, json=[{"id": f"v-page-{i}"} for i in range(7)])
    seen = [v["id"] for v in await every_item(tracing.client, "/api/v1/villages", headers=h, limit=3)]
    assert seen == [f"v-page-{i}" for i in range(7)]
