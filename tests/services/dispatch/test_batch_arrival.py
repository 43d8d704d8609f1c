"""POST /incidents:batch (JSON array and NDJSON) and POST /incidents/{id}/arrival, on SQLite and PostgreSQL."""
from __future__ import annotations

import json

from shared.events import IncidentArrived, IncidentDispatched, IncidentReported
from tests.helpers import assert_problem
from tests.services.dispatch.support import IN_HESHANG, IN_YIQIAO, OUTSIDE, Svc, incident, set_modes, staged

BATCH = "/api/v1/incidents:batch"


async def test_a_batch_stores_good_items_rejects_bad_ones_and_reports_each_by_index(svc: Svc) -> None:
    items = [
        incident("b-1"),
        {"external_id": "b-2", "occurred_at": "2024-05-01T08:30:00"},  # naive time, no location
        incident("b-3", location=IN_HESHANG),
        incident("b-1", location=IN_HESHANG),  # same external id again inside the batch
        "not an object",
    ]
    response = await svc.client.post(BATCH, json=items, headers=svc.as_("platform"))

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["created"], body["existing"], body["rejected"]) == (2, 1, 2)
    results = body["results"]
    assert [r["index"] for r in results] == [0, 1, 2, 3, 4]
    assert [r["status"] for r in results] == [201, 422, 201, 200, 422]
    assert results[0]["station_id"] == "ps-yiqiao" and results[2]["station_id"] == "ps-heshang"
    assert results[3]["id"] == results[0]["id"] and results[3]["station_id"] == "ps-yiqiao"
    locs = {tuple(e["loc"]) for e in results[1]["errors"]}
    assert ("location",) in locs and ("occurred_at",) in locs
    assert len(await staged(svc, IncidentReported.subject)) == 2
    assert len(await staged(svc, IncidentDispatched.subject)) == 2


async def test_the_same_batch_again_creates_nothing(svc: Svc) -> None:
    items = [incident(f"again-{n}") for n in range(5)]
    first = (await svc.client.post(BATCH, json=items, headers=svc.as_("platform"))).json()
    second = (await svc.client.post(BATCH, json=items, headers=svc.as_("platform"))).json()

    assert (first["created"], second["created"], second["existing"]) == (5, 0, 5)
    assert [r["id"] for r in second["results"]] == [r["id"] for r in first["results"]]
    assert len(await staged(svc, IncidentReported.subject)) == 5


async def test_ndjson_lines_are_items_and_a_broken_line_is_rejected_alone(svc: Svc) -> None:
    lines = [json.dumps(incident("nd-1")), "", "{broken", json.dumps(incident("nd-2", location=OUTSIDE))]
    response = await svc.client.post(BATCH, content="\n".join(lines) + "\n",
                                     headers=svc.as_("platform") | {"content-type": "application/x-ndjson"})

    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == [201, 422, 201]
    assert "JSON" in results[1]["errors"][0]["msg"]
    assert results[2]["station_id"] is None


async def test_a_batch_chunked_over_several_transactions_keeps_order(svc: Svc) -> None:
    svc.settings.batch_chunk = 7
    items = [incident(f"chunk-{n}", location=IN_YIQIAO if n % 2 else IN_HESHANG) for n in range(30)]
    body = (await svc.client.post(BATCH, json=items, headers=svc.as_("platform"))).json()

    assert body["created"] == 30
    assert [r["station_id"] for r in body["results"]] == ["ps-heshang", "ps-yiqiao"] * 15
    assert len({r["id"] for r in body["results"]}) == 30


async def test_more_than_1000_items_or_a_non_array_is_a_422_problem(svc: Svc) -> None:
    too_many = [incident(f"many-{n}") for n in range(1001)]
    assert_problem(await svc.client.post(BATCH, json=too_many, headers=svc.as_("platform")), 422)
    assert_problem(await svc.client.post(BATCH, json=incident("x"), headers=svc.as_("platform")), 422)
    assert_problem(await svc.client.post(BATCH, content=b"[{", headers=svc.as_("platform")), 422)
    listed = await svc.client.get("/api/v1/incidents", headers=svc.as_("command"))
    assert listed.json()["items"] == []


async def test_a_station_user_may_not_post_a_batch(svc: Svc) -> None:
    response = await svc.client.post(BATCH, json=[incident("st-1")], headers=svc.station("ps-yiqiao"))
    assert_problem(response, 403)


# --- arrival ---------------------------------------------------------------------------------------

async def _dispatched(svc: Svc, external_id: str, **extra: object) -> dict:
    response = await svc.client.post("/api/v1/incidents", json=incident(external_id, **extra),
                                     headers=svc.as_("platform"))
    assert response.status_code == 201, response.text
    return response.json()


async def test_the_handling_station_reports_arrival_once_and_the_rate_event_goes_out(svc: Svc) -> None:
    await set_modes(svc, {"ps-yiqiao": "deep"})
    created = await _dispatched(svc, "arr-1", dispatched_at="2024-05-01T08:31:00+08:00")
    assert created["handling_unit_id"] == "ps-yiqiao" and created["mode"] == "deep"
    url = f"/api/v1/incidents/{created['id']}/arrival"

    first = await svc.client.post(url, json={"arrived_at": "2024-05-01T08:35:30+08:00"},
                                  headers=svc.station("ps-yiqiao"))
    same = await svc.client.post(url, json={"arrived_at": "2024-05-01T00:35:30Z"}, headers=svc.station("ps-yiqiao"))
    other = await svc.client.post(url, json={"arrived_at": "2024-05-01T08:40:00+08:00"},
                                  headers=svc.station("ps-yiqiao"))

    assert first.status_code == 200, first.text
    assert first.json()["response_s"] == 270 and first.json()["within_5_min"] is True
    assert same.status_code == 200 and same.json()["arrived_at"] == first.json()["arrived_at"]
    assert "already reported" in assert_problem(other, 409)["detail"]
    [event] = await staged(svc, IncidentArrived.subject)
    assert (event["incident_id"], event["handling_unit_id"], event["response_s"], event["within_5_min"],
            event["mode"]) == (created["id"], "ps-yiqiao", 270.0, True, "deep")


async def test_in_a_basic_area_the_squadron_reports_arrival_and_the_station_may_not(svc: Svc) -> None:
    await set_modes(svc, {"ps-yiqiao": "basic"})
    created = await _dispatched(svc, "arr-basic", dispatched_at="2024-05-01T08:31:00+08:00")
    assert created["handling_unit_id"] == "sq-rural"
    url = f"/api/v1/incidents/{created['id']}/arrival"
    body = {"arrived_at": "2024-05-01T08:40:00+08:00"}

    assert_problem(await svc.client.post(url, json=body, headers=svc.station("ps-yiqiao")), 403)
    assert_problem(await svc.client.post(url, json=body, headers=svc.station("ps-heshang")), 404)
    response = await svc.client.post(url, json=body, headers=svc.as_("squadron", "sq-rural"))

    assert response.status_code == 200, response.text
    assert response.json()["within_5_min"] is False and response.json()["response_s"] == 540


async def test_bad_arrivals_are_refused(svc: Svc) -> None:
    created = await _dispatched(svc, "arr-bad", dispatched_at="2024-05-01T08:31:00+08:00")
    outside = await _dispatched(svc, "arr-out", location=OUTSIDE)
    url = f"/api/v1/incidents/{created['id']}/arrival"
    who = svc.station("ps-yiqiao")

    assert_problem(await svc.client.post(url, json={"arrived_at": "2024-05-01T08:30:00+08:00"}, headers=who), 422)
    assert_problem(await svc.client.post(url, json={"arrived_at": "2024-05-01T08:40:00"}, headers=who), 422)
    assert_problem(await svc.client.post(url, json={"arrived_at": "2999-01-01T00:00:00Z"}, headers=who), 422)
    assert_problem(await svc.client.post(url, json={"arrived_at": "yesterday"}, headers=who), 422)  # {}: now
    assert_problem(await svc.client.post(f"/api/v1/incidents/{outside['id']}/arrival",
                                         json={"arrived_at": "2024-05-01T08:40:00+08:00"},
                                         headers=svc.as_("command")), 409)
    assert_problem(await svc.client.post("/api/v1/incidents/nope/arrival",
                                         json={"arrived_at": "2024-05-01T08:40:00+08:00"}, headers=who), 404)
    assert await staged(svc, IncidentArrived.subject) == []


async def test_outside_area_incidents_are_listed_for_the_command_centre(svc: Svc) -> None:
    await _dispatched(svc, "in-1")
    out = await _dispatched(svc, "out-1", location=OUTSIDE)

    flagged = await svc.client.get("/api/v1/incidents", params={"outside_area": "true"}, headers=svc.as_("command"))

    assert [i["id"] for i in flagged.json()["items"]] == [out["id"]]
    assert flagged.json()["items"][0]["dispatch_reason"].startswith("outside every station area")
