"""The unit directory cached per replica: a mode change or a new area applies to the very next order on
every replica (a revision check, not a cache period), and nothing is reloaded while nothing changed."""
from __future__ import annotations

from pathlib import Path

from services.dispatch.handlers import subscriptions
from shared.db import utcnow
from shared.events import Envelope, StationClassified, TaskOrderGenerated
from tests.services.dispatch.support import (
    DEMO,
    IN_YIQIAO,
    Svc,
    incident,
    order,
    running,
    settings_for,
)


async def route(svc: Svc, fact: TaskOrderGenerated) -> str:
    """Hand an order to the replica's own consumer handler (which uses the replica's cached directory)."""
    tracing = next(s for s in subscriptions(svc.rt) if s.owner == "tracing")
    async with svc.rt.transaction() as session:
        await tracing.handlers[TaskOrderGenerated](session, fact, Envelope(
            source="test", type=fact.subject, subject=fact.task_id, time=utcnow(), data=fact.model_dump(mode="json")))
    return fact.task_id


async def classify(svc: Svc, station_id: str, mode: str) -> None:
    """Apply a classification on this replica as its consumer would."""
    classification = next(s for s in subscriptions(svc.rt) if s.owner == "classification")
    fact = StationClassified(station_id=station_id, mode=mode, source="model")
    async with svc.rt.transaction() as session:
        await classification.handlers[StationClassified](session, fact, Envelope(
            source="test", type=fact.subject, time=utcnow(), data=fact.model_dump(mode="json")))


async def unit_of(svc: Svc, task_id: str) -> str:
    got = await svc.client.get(f"/api/v1/tasks/{task_id}", headers=svc.as_("admin"))
    assert got.status_code == 200, got.text
    return got.json()["unit_id"]


async def test_a_mode_change_on_one_replica_routes_the_next_order_on_the_other_at_once(
        database_url: str, nats_url: str, tmp_path: Path) -> None:
    slow_cache = {"area_cache_s": 3600.0}  # a cache period would hide the change for an hour
    async with running(settings_for(database_url, nats_url, tmp_path / "a", **slow_cache)) as a, \
            running(settings_for(database_url, nats_url, tmp_path / "b", **slow_cache), load_units=False) as b:
        await classify(b, "ps-yiqiao", "deep")
        assert await unit_of(a, await route(a, order("ps-yiqiao", "hazard_remediation"))) == "ps-yiqiao"
        cached = a.rt.state["directory"]
        assert await unit_of(a, await route(a, order("ps-yiqiao", "hazard_remediation"))) == "ps-yiqiao"
        assert a.rt.state["directory"] is cached  # nothing changed: nothing reloaded

        await classify(b, "ps-yiqiao", "basic")
        assert await unit_of(a, await route(a, order("ps-yiqiao", "hazard_remediation"))) == "order-squadron"
        assert a.rt.state["directory"] is not cached
        assert a.rt.state["directory"].areas is cached.areas  # a mode change keeps the spatial index

        # incidents on replica a follow the mode too: basic areas send accidents to the squadron
        got = await a.client.post("/api/v1/incidents", json=incident("dir-1", location=IN_YIQIAO),
                                  headers=a.as_("platform"))
        assert got.status_code == 201, got.text
        assert got.json()["handling_unit_id"] == "sq-rural" and got.json()["mode"] == "basic"


async def test_a_new_area_on_one_replica_places_the_next_incident_on_the_other(
        database_url: str, nats_url: str, tmp_path: Path) -> None:
    async with running(settings_for(database_url, nats_url, tmp_path / "a", area_cache_s=3600.0)) as a, \
            running(settings_for(database_url, nats_url, tmp_path / "b"), load_units=False) as b:
        far = {"lat": 10.5, "lon": 10.5}
        before = await a.client.post("/api/v1/incidents", json=incident("far-1", location=far),
                                     headers=a.as_("platform"))
        assert before.json()["outside_area"] is True
        index = a.rt.state["directory"].areas
        square = {"type": "Polygon", "coordinates": [[[10, 10], [11, 10], [11, 11], [10, 11], [10, 10]]]}
        parent = next(u["id"] for u in DEMO["units"] if u["kind"] == "squadron")
        added = await b.client.post("/api/v1/units", headers=b.as_("admin"), json={
            "id": "ps-far", "name": "Far station", "kind": "station", "parent_id": parent, "area": square})
        assert added.status_code == 200, added.text

        after = await a.client.post("/api/v1/incidents", json=incident("far-2", location=far),
                                    headers=a.as_("platform"))
        assert after.json()["station_id"] == "ps-far" and after.json()["outside_area"] is False
        assert a.rt.state["directory"].areas is not index
