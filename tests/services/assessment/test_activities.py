"""Activity records: idempotent on external_id, batches with per-item results, announced, scoped, validated."""
from __future__ import annotations

import json
from typing import Any

from tests.helpers import Service, assert_problem, every_item
from tests.services.assessment.helpers import unit


def record(external_id: str, kind: str = "education", station_id: str = "ps-a", **extra: Any) -> dict[str, Any]:
    return {"external_id": external_id, "kind": kind, "station_id": station_id,
            "occurred_at": "2024-05-31T23:30:00+08:00", "count": 12, **extra}


async def test_the_same_external_id_again_is_200_with_the_first_record(assessment: Service) -> None:
    first = await assessment.post("/api/v1/activities", record("e-1"))
    again = await assessment.post("/api/v1/activities", record("e-1", count=99))

    assert first.status_code == 201, first.text
    assert again.status_code == 200
    assert again.json() == first.json()
    assert first.json()["day"] == "2024-05-31"  # the local day in Asia/Shanghai
    listed = (await assessment.get("/api/v1/activities", role="platform", unit_id=None)).json()["items"]
    assert [a["count"] for a in listed] == [12]


async def test_a_batch_reports_each_item_and_a_bad_item_does_not_stop_the_rest(assessment: Service) -> None:
    await assessment.post("/api/v1/activities", record("b-0"))
    batch = [
        record("b-0"),
        record("b-1", kind="violation", details={"type": "drunk_driving"}),
        record("b-2", kind="violation", details={"type": "jaywalking"}),
        {"external_id": "b-3", "kind": "education"},
        record("b-1"),
        record("b-4", kind="hazard_remediation", details={"found": 20}),
    ]

    r = await assessment.post("/api/v1/activities:batch", batch)

    assert r.status_code == 200, r.text
    body = r.json()
    assert [x["status"] for x in body["results"]] == [200, 201, 422, 422, 200, 201]
    assert [x["index"] for x in body["results"]] == list(range(6))
    assert body["results"][4]["id"] == body["results"][1]["id"]
    assert (body["created"], body["existing"], body["rejected"]) == (2, 2, 2)
    assert any("station_id" in e["loc"] for e in body["results"][3]["errors"])


async def test_a_batch_as_ndjson_is_accepted(assessment: Service) -> None:
    lines = "\n".join(json.dumps(record(f"n-{i}", kind="dissuasion")) for i in range(3))

    r = await assessment.client.post("/api/v1/activities:batch", content=lines,
                                     headers={**assessment.as_("platform"),
                                              "content-type": "application/x-ndjson"})

    assert r.status_code == 200, r.text
    assert r.json()["created"] == 3


async def test_each_new_record_is_announced_once(assessment: Service) -> None:
    assert assessment.bus.js is not None
    sub = await assessment.bus.js.subscribe("assessment.activity.recorded.v1", stream="ASSESSMENT")

    await assessment.post("/api/v1/activities", record("x-1", kind="helmet_check", details={"wearing": 10}))
    await assessment.post("/api/v1/activities", record("x-1", kind="helmet_check", details={"wearing": 10}))
    await assessment.post("/api/v1/activities:batch", [record("x-1"), record("x-2", kind="post_operation")])
    got = []
    while True:
        try:
            got.append(json.loads((await sub.next_msg(timeout=2)).data)["data"])
        except TimeoutError:
            break

    assert sorted((d["external_id"], d["kind"]) for d in got) == [("x-1", "helmet_check"), ("x-2", "post_operation")]
    assert got[0]["details"] == {"wearing": 10}


async def test_a_station_records_for_itself_only_and_squadrons_are_not_stations(assessment: Service) -> None:
    await assessment.publish(unit("sq-a", "squadron"), unit("ps-a", parent_id="sq-a", population=1000), wait=True)

    own = await assessment.post("/api/v1/activities", record("s-1"), role="station", unit_id="ps-a")
    other = await assessment.post("/api/v1/activities", record("s-2", station_id="ps-b"), role="station",
                                  unit_id="ps-a")
    squadron = await assessment.post("/api/v1/activities", record("s-3", station_id="sq-a"))

    assert own.status_code == 201
    assert_problem(other, 403)
    assert_problem(squadron, 422)


BAD = [
    {"occurred_at": "2024-05-01T10:00:00"},  # no offset
    {"count": -1},
    {"kind": "karaoke"},
    {"kind": "map_colour", "details": {"colour": "purple"}},
    {"kind": "helmet_check", "count": 5, "details": {"wearing": 6}},
    {"kind": "hazard_remediation", "details": {"found": "many"}},
]


async def test_bad_records_are_422_problems(assessment: Service) -> None:
    for bad in BAD:
        r = await assessment.post("/api/v1/activities", {**record("bad"), **bad})

        assert_problem(r, 422)


async def test_a_batch_over_1000_items_or_not_an_array_is_refused(assessment: Service) -> None:
    too_many = await assessment.post("/api/v1/activities:batch", [record(f"m-{i}") for i in range(1001)])
    not_array = await assessment.post("/api/v1/activities:batch", {"items": []})

    assert_problem(too_many, 422)
    assert_problem(not_array, 422)


async def test_a_bad_ndjson_line_is_rejected_on_its_own(assessment: Service) -> None:
    lines = "\n".join([json.dumps(record("nd-0")), "{not json", json.dumps(record("nd-2"))])

    r = await assessment.client.post("/api/v1/activities:batch", content=lines,
                                     headers={**assessment.as_("platform"), "content-type": "application/x-ndjson"})
    history = await assessment.client.put("/api/v1/assessment/history", content='{"x": 1\n', headers={
        **assessment.as_("admin"), "content-type": "application/x-ndjson"})

    assert r.status_code == 200, r.text
    assert [(x["index"], x["status"]) for x in r.json()["results"]] == [(0, 201), (1, 422), (2, 201)]
    assert r.json()["results"][1]["type"].endswith("/invalid-batch-item")
    assert history.status_code == 200 and history.json()["results"][0]["type"].endswith("/invalid-batch-item")
    too_big = assert_problem(await assessment.post("/api/v1/activities:batch", [record("big")] * 1001), 422)
    assert too_big["type"].endswith("/invalid-batch")


async def test_activities_page_by_day_and_id_within_the_callers_zone(assessment: Service) -> None:
    await assessment.publish(unit("sq-1", "squadron"), unit("ps-a", parent_id="sq-1"), unit("ps-b", parent_id="sq-1"),
                             unit("ps-c", parent_id="sq-2"), wait=True)
    await assessment.post("/api/v1/activities:batch", [
        record(f"p-{i}", station_id=("ps-a", "ps-b", "ps-c")[i % 3], occurred_at=f"2024-05-0{1 + i % 4}T10:00:00+08:00")
        for i in range(9)])
    seen = [(a["day"], a["id"]) for a in await every_item(assessment.client, "/api/v1/activities", limit=2,
                                                          headers=assessment.as_("squadron", "sq-1"))]

    assert len(seen) == 6 and seen == sorted(seen)  # ps-c is in another zone
