"""Registries over HTTP (idempotent, masked, bulk), model edits (admin, validated, versioned), registry facts
reaching the engine."""
from __future__ import annotations

import pytest

from tests.helpers import Service, assert_problem, auth, eventually
from tests.services.tracing.helpers import incident_envelope

pytestmark = pytest.mark.usefixtures("tracing")
ID_NUMBER = "330102199001011234"


async def test_a_person_is_idempotent_on_the_identity_number_and_shown_masked(tracing: Service) -> None:  # noqa: F811
    h = auth(tracing.settings, "platform")
    first = await tracing.client.post("/api/v1/persons", json={"id_number": ID_NUMBER, "age": 70}, headers=h)
    again = await tracing.client.post("/api/v1/persons", json={"id_number": f" {ID_NUMBER.lower()} ", "age": 71},
                                      headers=h)
    listed = await tracing.client.get("/api/v1/persons", headers=auth(tracing.settings, "command"))
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    assert listed.json()["items"] == [again.json()]
    assert again.json()["age"] == 71 and again.json()["id_masked"] == "330*************34"
    assert ID_NUMBER not in listed.text


async def test_a_batch_reports_each_item_and_keeps_the_good_ones(tracing: Service) -> None:  # noqa: F811
    h = auth(tracing.settings, "platform")
    items = [{"plate": "ZJ-A 001", "kind": "yellow_plate_truck", "operator_id": "ent-1"},
             {"plate": "ZJA001", "kind": "yellow_plate_truck", "operator_id": "ent-1"},
             {"plate": "---", "kind": "car"}, {"plate": "ZJB2", "kind": "spaceship"}]
    result = await tracing.client.post("/api/v1/vehicles:batch", json=items, headers=h)
    body = result.json()
    assert [r["status"] for r in body["results"]] == [201, 200, 422, 422]
    assert (body["created"], body["existing"], body["rejected"]) == (1, 1, 2)
    assert body["results"][3]["errors"][0]["loc"] == ["kind"]
    one = await tracing.client.get("/api/v1/vehicles/zj-a001", headers=auth(tracing.settings, "command"))
    assert one.json()["plate"] == "ZJA001"


async def test_an_enterprise_lists_its_fleet_and_rates(tracing: Service) -> None:  # noqa: F811
    h = auth(tracing.settings, "admin")
    created = await tracing.client.post("/api/v1/enterprises", headers=h, json={
        "id": "ent-1", "name": "Haul Co", "inspection_rate": 0.8, "scrapping_rate": 1, "violation_clearing_rate": 0.9,
        "fleet": ["ZJ-A1", "ZJ-A2"]})
    assert created.status_code == 201
    assert created.json()["fleet"] == ["ZJA1", "ZJA2"] and created.json()["fleet_size"] == 2


@pytest.mark.parametrize(("path", "body"), [
    ("/api/v1/road-sections", {"id": "rs", "geometry": {"type": "Point", "coordinates": [1, 2]}}),
    ("/api/v1/road-sections", {"id": "rs", "geometry": {"type": "LineString", "coordinates": [[200, 2], [1, 2]]}}),
    ("/api/v1/hazards", {"id": "hz", "location": {"lat": 95, "lon": 1}}),
    ("/api/v1/enterprises", {"id": "e", "inspection_rate": 1.5}),
    ("/api/v1/persons", {"id_number": "1"}),
    ("/api/v1/villages", {"id": "bad id"}),
])
async def test_bad_registry_input_is_a_422_problem(tracing: Service, path: str, body: dict) -> None:  # noqa: F811
    assert_problem(await tracing.client.post(path, json=body, headers=auth(tracing.settings, "admin")), 422)


async def test_station_users_may_not_write_registries(tracing: Service) -> None:  # noqa: F811
    response = await tracing.client.post("/api/v1/villages", json={"id": "v1"},
                                         headers=auth(tracing.settings, "station", unit_id="ps-x"))
    assert_problem(response, 403)


async def test_an_admin_changes_a_model_as_a_new_validated_version(tracing: Service) -> None:  # noqa: F811
    admin = auth(tracing.settings, "admin")
    changed = await tracing.client.put("/api/v1/tracing/models/P05", json={"parameters": {"min_age": 65}},
                                       headers=admin)
    breaking = await tracing.client.put("/api/v1/tracing/models/P05", json={"parameters": {"min_age": 90}},
                                        headers=admin)
    unsafe = await tracing.client.put("/api/v1/tracing/models/P05", json={"condition": "__import__('os')"},
                                      headers=admin)
    by_command = await tracing.client.put("/api/v1/tracing/models/P05", json={"enabled": False},
                                          headers=auth(tracing.settings, "command"))
    listed = await tracing.client.get("/api/v1/tracing/models/P05", headers=admin)
    assert changed.status_code == 200 and changed.json()["version"] == 2
    assert "did not fire" in assert_problem(breaking, 422)["detail"]
    assert_problem(unsafe, 422)
    assert_problem(by_command, 403)
    assert_problem(await tracing.client.put("/api/v1/tracing/models/Z99", json={}, headers=admin), 404)
    assert listed.json()["version"] == 2 and listed.json()["parameters"] == {"min_age": 65}


async def test_a_registered_hazard_and_a_disabled_model_change_what_fires(tracing: Service) -> None:  # noqa: F811
    admin = auth(tracing.settings, "admin")
    hazard = await tracing.client.post("/api/v1/hazards", headers=admin,
                                       json={"id": "hz-1", "kind": "blind bend", "location": {"lat": 30.1003,
                                                                                              "lon": 120.45}})
    assert hazard.status_code == 201
    await tracing.client.put("/api/v1/tracing/models/P01", json={"enabled": False}, headers=admin)
    envelope = incident_envelope(drunk=True)
    await tracing.publish(envelope)
    path = f"/api/v1/incidents/{envelope.data['incident_id']}/trace"

    async def traced() -> bool:
        return (await tracing.client.get(path, headers=admin)).status_code == 200

    await eventually(traced, what="the trace")
    body = (await tracing.client.get(path, headers=admin)).json()
    assert [(f["model_id"], f["entity_ref"]) for f in body["fired"]] == [("R01", "hazard:hz-1")]
    assert body["sources"]["road"][0]["open_hazards"][0]["id"] == "hz-1"


async def test_an_admin_edits_a_models_texts_in_either_language(tracing: Service) -> None:  # noqa: F811
    admin = auth(tracing.settings, "admin")
    path = "/api/v1/tracing/models/P01"
    zh_only = await tracing.client.put(path, json={"description": {"zh-CN": "驾驶人酒驾或毒驾"}}, headers=admin)
    milestones = [{"code": "case_opened", "text": {"zh-CN": "立案审查", "en": "case opened"}, "due_offset_h": 24},
                  {"code": "penalty_decided", "text": {"zh-CN": "作出处罚决定", "en": "penalty decided"},
                   "due_offset_h": 168}]
    steps = await tracing.client.put(path, json={"milestones": milestones}, headers=admin)
    half = await tracing.client.put(path, json={"key_points": [{"code": "k1", "text": {"en": "only English"}}]},
                                    headers=admin | {"accept-language": "zh-CN"})
    old_shape = await tracing.client.put(path, json={"key_points": ["a plain string"]}, headers=admin)
    twice = await tracing.client.put(path, json={"milestones": [milestones[0], milestones[0] | {
        "due_offset_h": 48}]}, headers=admin)
    model = (await tracing.client.get(path, headers=admin)).json()

    assert zh_only.status_code == steps.status_code == 200
    assert zh_only.json()["description"] == {"zh-CN": "驾驶人酒驾或毒驾", "en": "a party drove drunk or drugged"}
    assert model["version"] == 3 and [m["text"]["zh-CN"] for m in model["milestones"]] == ["立案审查", "作出处罚决定"]
    problem = assert_problem(half, 422)
    assert problem["title"] == "输入无效" and "key_points" in problem["detail"]  # names the field, in Chinese
    assert_problem(old_shape, 422)
    assert "share a code" in assert_problem(twice, 422)["detail"]
