"""Task orders: every routing cell with real units, the editable table, mode changes, the loop, bulk actions."""
from __future__ import annotations

import datetime as dt

import pytest

from services.dispatch.lifecycle import STEPS
from shared.events import TaskChanged
from tests.helpers import assert_problem
from tests.services.dispatch.support import Svc, order, receive, set_modes, staged

# DOMAIN.md §5 with the demo district's units: basic → Heshang (squadron sq-rural), deep → Yiqiao, full → Xintang
STATION = {"basic": "ps-heshang", "deep": "ps-yiqiao", "full": "ps-xintang"}
EXPECTED = {
    "personal_education": {"basic": "ps-heshang", "deep": "ps-yiqiao", "full": "ps-xintang"},
    "personal_penalty": {"basic": "sq-rural", "deep": "ps-yiqiao", "full": "ps-xintang"},
    "enterprise_rectification": {"basic": "sq-rural", "deep": "sq-rural", "full": "ps-xintang"},
    "enterprise_penalty": {"basic": "case-squadron", "deep": "case-squadron", "full": "case-squadron"},
    "hazard_remediation": {"basic": "order-squadron", "deep": "ps-yiqiao", "full": "ps-xintang"},
}


async def task(svc: Svc, task_id: str, headers: dict[str, str] | None = None) -> dict:
    response = await svc.client.get(f"/api/v1/tasks/{task_id}", headers=headers or svc.as_("command"))
    assert response.status_code == 200, response.text
    return response.json()


async def test_every_mode_and_category_cell_lands_at_its_unit_with_the_reason(svc: Svc) -> None:
    await set_modes(svc, {station: mode for mode, station in STATION.items()})
    placed = {}
    for category, row in EXPECTED.items():
        for mode in row:
            placed[category, mode] = await receive(svc, order(STATION[mode], category))
    p08 = await receive(svc, order("ps-yiqiao", "personal_penalty", model_id="P08"))

    for (category, mode), task_id in placed.items():
        got = await task(svc, task_id)
        assert got["unit_id"] == EXPECTED[category][mode], (category, mode, got["routing_reason"])
        assert f"{category} in a {mode}-mode area" in got["routing_reason"]
        assert "routing table v1" in got["routing_reason"]
        assert [h["action"] for h in got["history"]] == ["create", "dispatch"]
    exception = await task(svc, p08)
    assert exception["unit_id"] == "case-squadron" and "P08 exception" in exception["routing_reason"]


async def test_a_station_without_a_mode_routes_as_deep_and_says_so(svc: Svc) -> None:
    got = await task(svc, await receive(svc, order("ps-beigan", "enterprise_rectification")))
    assert got["unit_id"] == "sq-urban"
    assert "not yet known" in got["routing_reason"]


async def test_an_order_outside_every_area_goes_to_the_brigade(svc: Svc) -> None:
    got = await task(svc, await receive(svc, order(None)))
    assert got["unit_id"] == "brigade"


async def test_new_orders_follow_a_mode_change_and_open_ones_stay(svc: Svc) -> None:
    await set_modes(svc, {"ps-yiqiao": "deep"})
    before = await receive(svc, order("ps-yiqiao", "hazard_remediation"))
    await set_modes(svc, {"ps-yiqiao": "basic"})
    after = await receive(svc, order("ps-yiqiao", "hazard_remediation"))

    assert (await task(svc, before))["unit_id"] == "ps-yiqiao"
    assert (await task(svc, after))["unit_id"] == "order-squadron"


async def test_an_edited_routing_table_is_a_new_version_that_new_orders_follow(svc: Svc) -> None:
    await set_modes(svc, {"ps-yiqiao": "deep"})
    table = (await svc.client.get("/api/v1/routing-table", headers=svc.as_("admin"))).json()
    assert table["version"] == 1
    table["tasks"]["personal_education"]["deep"] = "squadron"
    table["version"] = 2

    assert_problem(await svc.client.put("/api/v1/routing-table", json=table, headers=svc.as_("command")), 403)
    saved = await svc.client.put("/api/v1/routing-table", json=table, headers=svc.as_("admin"))
    stale = await svc.client.put("/api/v1/routing-table", json=table, headers=svc.as_("admin"))
    got = await task(svc, await receive(svc, order("ps-yiqiao", "personal_education")))

    assert saved.status_code == 200, saved.text
    assert saved.json()["version"] == 2 and saved.json()["created_by"] == "admin"
    assert "version 2" in assert_problem(stale, 409)["detail"]
    assert got["unit_id"] == "sq-rural" and "routing table v2" in got["routing_reason"]
    old = await svc.client.get("/api/v1/routing-table", params={"version": 1}, headers=svc.as_("command"))
    assert old.json()["tasks"]["personal_education"]["deep"] == "station"


@pytest.mark.parametrize("edit", [
    lambda t: t["tasks"]["personal_education"].pop("full"),
    lambda t: t["tasks"]["personal_education"].update(deep="brigade"),
    lambda t: t["tasks"].pop("hazard_remediation"),
    lambda t: t.update(incident_handler="station"),
], ids=["missing-mode", "unknown-target", "missing-category", "bad-handler"])
async def test_an_invalid_routing_table_is_refused_and_the_old_one_stays(svc: Svc, edit) -> None:  # noqa: ANN001
    table = (await svc.client.get("/api/v1/routing-table", headers=svc.as_("admin"))).json()
    table["version"] = 2
    edit(table)
    assert_problem(await svc.client.put("/api/v1/routing-table", json=table, headers=svc.as_("admin")), 422)
    assert (await svc.client.get("/api/v1/routing-table", headers=svc.as_("admin"))).json()["version"] == 1


# --- the loop -------------------------------------------------------------------------------------

async def act(svc: Svc, task_id: str, headers: dict[str, str], action: str, **body: object) -> dict:
    response = await svc.client.post(f"/api/v1/tasks/{task_id}/transitions", json={"action": action} | body,
                                     headers=headers)
    return {"status": response.status_code, "body": response.json(), "response": response}


async def test_the_closed_loop_with_milestones_one_by_one_and_illegal_steps_refused(svc: Svc) -> None:
    await set_modes(svc, {"ps-yiqiao": "deep"})
    task_id = await receive(svc, order("ps-yiqiao", milestones={"visit": dt.timedelta(days=1),
                                                                "report": dt.timedelta(days=2)}))
    station, squadron = svc.station("ps-yiqiao"), svc.as_("squadron", "sq-rural")

    assert (await act(svc, task_id, station, "submit"))["status"] == 409
    assert (await act(svc, task_id, station, "accept", note="on it"))["status"] == 200
    assert (await act(svc, task_id, station, "accept"))["status"] == 409
    assert (await act(svc, task_id, station, "start"))["status"] == 200
    early = await act(svc, task_id, station, "complete_milestone", milestone="report")
    assert early["status"] == 409 and "next one is visit" in early["body"]["detail"]
    assert (await act(svc, task_id, station, "complete_milestone", milestone="nope"))["status"] == 422
    assert (await act(svc, task_id, station, "submit"))["status"] == 409  # milestones left
    assert (await act(svc, task_id, station, "complete_milestone", milestone="visit",
                      evidence=["photo://1"]))["status"] == 200
    assert (await act(svc, task_id, station, "complete_milestone", milestone="visit"))["status"] == 409
    assert (await act(svc, task_id, station, "complete_milestone", milestone="report"))["status"] == 200
    assert (await act(svc, task_id, station, "submit", evidence=["doc://r"]))["status"] == 200
    assert (await act(svc, task_id, station, "verify"))["status"] == 403  # not its own work
    assert (await act(svc, task_id, squadron, "return"))["status"] == 422  # a return says why
    assert (await act(svc, task_id, squadron, "return", note="photo missing"))["status"] == 200
    assert (await act(svc, task_id, station, "start"))["status"] == 200
    assert (await act(svc, task_id, station, "submit"))["status"] == 200
    done = await act(svc, task_id, squadron, "verify", note="fine")
    assert done["status"] == 200
    closed = await act(svc, task_id, station, "start")
    assert closed["status"] == 409 and "loop is closed" in closed["body"]["detail"]

    got = await task(svc, task_id, station)
    assert got["status"] == "verified"
    assert [h["action"] for h in got["history"]] == [
        "create", "dispatch", "accept", "start", "complete_milestone", "complete_milestone", "submit", "return",
        "start", "submit", "verify"]
    assert [h["to_status"] for h in got["history"]][2:] == [
        "accepted", "in_progress", "in_progress", "in_progress", "submitted", "returned", "in_progress", "submitted",
        "verified"]
    visit = got["history"][4]
    assert (visit["by"], visit["milestone"], visit["evidence"]) == ("ps-yiqiao", "visit", ["photo://1"])
    assert got["history"][7]["note"] == "photo missing" and got["history"][7]["by"] == "sq-rural"
    assert all(m["done_at"] for m in got["milestones"])
    changes = [e for e in await staged(svc, TaskChanged.subject) if e["task_id"] == task_id]
    assert [e["new_status"] for e in changes] == ["dispatched"] + [h["to_status"] for h in got["history"][2:]]


async def test_a_409_names_the_current_status_and_what_is_possible(svc: Svc) -> None:
    task_id = await receive(svc, order("ps-yiqiao"))
    result = await act(svc, task_id, svc.station("ps-yiqiao"), "verify")
    assert result["status"] == 403
    result = await act(svc, task_id, svc.as_("command"), "verify")
    problem = assert_problem(result["response"], 409)
    assert "dispatched" in problem["detail"] and problem["status_now"] == "dispatched"
    assert set(problem["allowed_actions"]) == {"accept", "reassign"}


async def test_outside_the_jurisdiction_a_task_is_not_found(svc: Svc) -> None:
    task_id = await receive(svc, order("ps-yiqiao"))
    assert (await act(svc, task_id, svc.station("ps-heshang"), "accept"))["status"] == 404
    assert (await act(svc, task_id, svc.as_("squadron", "sq-urban"), "reassign", unit_id="ps-heshang",
                      note="x"))["status"] == 404
    response = await svc.client.get(f"/api/v1/tasks/{task_id}", headers=svc.station("ps-heshang"))
    assert_problem(response, 404)


async def test_reassignment_moves_the_order_and_the_new_unit_accepts_it(svc: Svc) -> None:
    task_id = await receive(svc, order("ps-yiqiao"))
    squadron = svc.as_("squadron", "sq-rural")
    assert (await act(svc, task_id, squadron, "reassign", unit_id="ps-chengxiang", note="x"))["status"] == 403
    moved = await act(svc, task_id, squadron, "reassign", unit_id="ps-heshang", note="Yiqiao is short-staffed")
    assert moved["status"] == 200, moved["body"]
    assert moved["body"]["unit_id"] == "ps-heshang" and moved["body"]["status"] == "reassigned"
    assert (await act(svc, task_id, svc.station("ps-yiqiao"), "accept"))["status"] == 404
    assert (await act(svc, task_id, svc.station("ps-heshang"), "accept"))["status"] == 200


@pytest.mark.parametrize("body", [{"action": "fly"}, {"action": "accept", "evidence": [""]},
                                  {"action": "accept", "note": "x" * 2001}, {}])
async def test_malformed_transitions_are_422(svc: Svc, body: dict) -> None:
    task_id = await receive(svc, order("ps-yiqiao"))
    response = await svc.client.post(f"/api/v1/tasks/{task_id}/transitions", json=body,
                                     headers=svc.station("ps-yiqiao"))
    assert_problem(response, 422)


def test_every_action_of_the_api_has_a_step() -> None:
    assert set(STEPS) == {"accept", "start", "complete_milestone", "submit", "verify", "return", "reassign"}


# --- bulk -----------------------------------------------------------------------------------------

async def test_bulk_reassign_and_extend_report_each_order(svc: Svc) -> None:
    first, second = (await receive(svc, order("ps-yiqiao")), await receive(svc, order("ps-yiqiao")))
    verified = await receive(svc, order("ps-heshang"))
    for action in ("accept", "start", "submit"):
        await act(svc, verified, svc.station("ps-heshang"), action)
    await act(svc, verified, svc.as_("command"), "verify")
    command = svc.as_("command")

    moved = await svc.client.post("/api/v1/tasks:bulk", headers=command, json={
        "action": "reassign", "task_ids": [first, second, verified, "missing"], "unit_id": "ps-heshang",
        "note": "rebalancing"})
    old_deadline = dt.datetime.fromisoformat((await task(svc, first))["deadline_at"])
    extended = await svc.client.post("/api/v1/tasks:bulk", headers=command, json={
        "action": "extend", "task_ids": [first, verified], "extend_by": 86400, "note": "holiday"})

    assert moved.status_code == 200, moved.text
    assert [(r["task_id"], r["status"]) for r in moved.json()["results"]] == [
        (first, 200), (second, 200), (verified, 409), ("missing", 404)]
    assert (moved.json()["succeeded"], moved.json()["failed"]) == (2, 2)
    assert [r["status"] for r in extended.json()["results"]] == [200, 409]
    got = await task(svc, first)
    assert got["unit_id"] == "ps-heshang"
    assert dt.datetime.fromisoformat(got["deadline_at"]) - old_deadline == dt.timedelta(days=1)
    assert got["history"][-1]["action"] == "extend" and "holiday" in got["history"][-1]["note"]


@pytest.mark.parametrize("body", [
    {"action": "reassign", "task_ids": ["a"], "note": "x"},
    {"action": "extend", "task_ids": ["a"], "note": "x"},
    {"action": "extend", "task_ids": [], "extend_by": 60, "note": "x"},
    {"action": "extend", "task_ids": ["a"], "extend_by": -60, "note": "x"},
    {"action": "extend", "task_ids": ["a"], "deadline_at": "2030-01-01T00:00:00", "note": "x"},
])
async def test_bad_bulk_requests_are_422(svc: Svc, body: dict) -> None:
    assert_problem(await svc.client.post("/api/v1/tasks:bulk", json=body, headers=svc.as_("command")), 422)


async def test_a_station_may_not_use_bulk_actions(svc: Svc) -> None:
    task_id = await receive(svc, order("ps-yiqiao"))
    response = await svc.client.post("/api/v1/tasks:bulk", headers=svc.station("ps-yiqiao"), json={
        "action": "extend", "task_ids": [task_id], "extend_by": 60, "note": "x"})
    assert_problem(response, 403)
