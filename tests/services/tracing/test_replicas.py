"""Several tracing replicas on one database: each catches up with the others' accidents, registry writes and model
edits (SQLite and PostgreSQL, real NATS); within one replica, incidents of one consumer batch see each other and a
rolled-back trace leaves nothing behind in memory.

Replicas in production share one durable consumer, so each sees only some incident events. Which replica a shared
durable hands a message to is not up to the test, so here each replica reads its own nats-server: replica A gets
exactly the events published to A's server, B those published to B's, and neither sees the other's events.
"""
from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from deploy.natsd import free_port, start_nats
from services.tracing import registries, service
from services.tracing.app import create_app
from services.tracing.catalogue import Catalogue
from services.tracing.config import HERE, TracingSettings
from services.tracing.handlers import subscriptions
from services.tracing.mirror import Mirror
from services.tracing.models import OUTBOX, HazardPoint, TracedIncident
from services.tracing.schemas import HazardIn, ModelUpdate
from shared.auth import Identity
from shared.consumer import Consumer
from shared.db import ensure_schema, make_engine, make_sessions, utcnow
from shared.events import Envelope, IncidentReported, Location
from shared.migrations import upgrade
from tests.helpers import Service, assert_problem, auth, eventually, fresh_pg_database, running_service, serving
from tests.services.tracing.helpers import envelope_of

SPOT = (30.2, 120.6)  # where the accidents pile up
HAZARD_SPOT = (30.25, 120.65)  # ~7 km away: no accident of SPOT counts here


@dataclass
class Replica(Service):
    """One tracing app and a publisher on the nats-server only this replica reads."""

    name: str = ""

    @property
    def admin(self) -> dict[str, str]:
        return self.as_("admin")

    async def trace_accident(self, lat: float, lon: float, *, days_ago: float = 1) -> dict[str, Any]:
        """Publish an accident (no parties: only road, hazard and incident models apply) and wait for its trace."""
        fact = accident(lat, lon, days_ago=days_ago)
        envelope = envelope_of(fact)
        await self.publish(envelope, msg_id=envelope.id)
        path = f"/api/v1/incidents/{fact.incident_id}/trace"

        async def traced() -> bool:
            return (await self.client.get(path, headers=self.admin)).status_code == 200

        await eventually(traced, what=f"replica {self.name} to trace {fact.incident_id}")
        await eventually(self.relayed, what=f"replica {self.name}'s outbox to drain")
        return (await self.client.get(path, headers=self.admin)).json()


def accident(lat: float, lon: float, *, days_ago: float = 1) -> IncidentReported:
    n = uuid.uuid4().hex
    return IncidentReported(incident_id=f"inc-{n}", external_id=f"ext-{n[:8]}", kind="accident",
                            occurred_at=utcnow() - dt.timedelta(days=days_ago), location=Location(lat=lat, lon=lon),
                            station_id="ps-yiqiao")


def fired(trace: dict[str, Any]) -> list[tuple[str, str]]:
    return [(f["model_id"], f["entity_ref"]) for f in trace["fired"]]


def near_count(trace: dict[str, Any]) -> int:
    return trace["sources"]["road"][0]["accidents_within_200m_90_days"]


@dataclass
class Pair:
    a: Replica
    b: Replica
    stack: list[Any] = field(default_factory=list)


@pytest.fixture
async def replicas(database_url: str, nats_url: str, tmp_path: Path) -> AsyncIterator[Pair]:
    """Replicas A and B on the same database, each reading its own nats-server; the background catch-up loop
    is slowed right down, so what B knows of A's writes comes from the catch-up before each incident or read."""
    port = free_port()
    second = start_nats(tmp_path / "nats-b", port, log_file=tmp_path / "nats-b.log")
    made: list[Replica] = []
    try:
        async with contextlib.AsyncExitStack() as stack:
            for name, url in (("A", nats_url), ("B", f"nats://127.0.0.1:{port}")):
                settings = TracingSettings(database_url=database_url, nats_url=url, data_dir=tmp_path / name,
                                           outbox_poll_s=0.2, refresh_s=3600)
                replica = await stack.enter_async_context(running_service(create_app, settings, streams=("dispatch",)))
                made.append(Replica(replica.client, settings, replica.rt, replica.bus, name=name))
            yield Pair(*made)
    finally:
        second.terminate()
        second.wait(timeout=10)


async def test_accidents_hazards_and_model_edits_made_through_a_are_in_force_on_b(replicas: Pair) -> None:
    a, b = replicas.a, replicas.b
    # two accidents near SPOT reach only A; a third reaches only B: B counts all three, so R02 (≥ 3 within
    # 200 m in 90 days) fires on B
    await a.trace_accident(*SPOT)
    await a.trace_accident(SPOT[0] + 0.001, SPOT[1])  # ~110 m north
    on_b = await b.trace_accident(SPOT[0], SPOT[1] + 0.001)  # ~100 m east
    assert near_count(on_b) == 3
    assert [m for m, _ in fired(on_b)] == ["R02"]

    # a hazard registered through A is a candidate on B; once A records it remediated, it is not
    created = await a.client.post("/api/v1/hazards", headers=a.admin, json={
        "id": "hz-bend", "kind": "blind bend", "location": {"lat": HAZARD_SPOT[0], "lon": HAZARD_SPOT[1]}})
    assert created.status_code == 201
    by_hazard = await b.trace_accident(HAZARD_SPOT[0] + 0.0005, HAZARD_SPOT[1])  # ~55 m from it
    assert fired(by_hazard) == [("R01", "hazard:hz-bend")]
    closed = await a.client.post("/api/v1/hazards", headers=a.admin, json={
        "id": "hz-bend", "kind": "blind bend", "status": "remediated",
        "location": {"lat": HAZARD_SPOT[0], "lon": HAZARD_SPOT[1]}})
    assert closed.status_code == 200 and closed.json()["status"] == "remediated"
    after_closing = await b.trace_accident(HAZARD_SPOT[0] - 0.0005, HAZARD_SPOT[1])
    assert fired(after_closing) == []
    assert after_closing["sources"]["road"][0]["open_hazards"] == []

    # R02 switched off through A: B reads version 2 and no longer fires it, though 4 accidents are near
    edit = await a.client.put("/api/v1/tracing/models/R02", json={"enabled": False}, headers=a.admin)
    assert edit.status_code == 200 and edit.json()["version"] == 2
    seen_on_b = await b.client.get("/api/v1/tracing/models/R02", headers=b.admin)
    assert (seen_on_b.json()["version"], seen_on_b.json()["enabled"]) == (2, False)
    fourth = await b.trace_accident(SPOT[0] - 0.0005, SPOT[1])  # ~55 m south
    assert near_count(fourth) == 4 and fired(fourth) == []

    # and the other way round: A counts B's accidents too, and edits B's latest version of the model
    fifth = await a.trace_accident(*SPOT)
    assert near_count(fifth) == 5 and fired(fifth) == []
    again = await b.client.put("/api/v1/tracing/models/R02", json={"enabled": True}, headers=b.admin)
    assert again.status_code == 200 and again.json()["version"] == 3
    sixth = await a.trace_accident(*SPOT)
    assert near_count(sixth) == 6 and [m for m, _ in fired(sixth)] == ["R02"]


async def test_a_replica_left_alone_catches_up_on_its_own(database_url: str, nats_url: str, tmp_path: Path,
                                                          replicas: Pair) -> None:
    """The background loop (JIAOZHI_TRACING_REFRESH_S) brings a replica's index up to date without any incident."""
    a = replicas.a
    settings = TracingSettings(database_url=database_url, nats_url=nats_url, data_dir=tmp_path / "C",
                               outbox_poll_s=0.2, refresh_s=0.1)
    app = create_app(settings)
    async with serving(app):
        mirror: Mirror = app.state.rt.state["mirror"]
        assert not mirror.index.hazards
        created = await a.client.post("/api/v1/hazards", headers=a.admin, json={
            "id": "hz-new", "location": {"lat": HAZARD_SPOT[0], "lon": HAZARD_SPOT[1]}})
        assert created.status_code == 201

        async def learnt() -> bool:
            return "hz-new" in mirror.index.hazards

        await eventually(learnt, what="replica C to learn the hazard A registered")


# --- one replica: a consumer batch is one transaction ------------------------------------------------------

class FakeMsg:
    """Just what Consumer.handle_batch uses of a fetched JetStream message."""

    def __init__(self, envelope: Envelope) -> None:
        self.data = envelope.model_dump_json().encode()
        self.subject = envelope.type
        self.headers: dict[str, str] = {}
        self.acked = False

    async def ack(self) -> None:
        self.acked = True

    async def nak(self, delay: float | None = None) -> None:
        raise AssertionError("not expected")

    async def term(self) -> None:
        raise AssertionError("not expected")


async def test_incidents_of_one_consumer_batch_count_each_other(tracing: Service) -> None:  # noqa: F811
    rt = tracing.rt
    [incidents, _] = subscriptions(rt)
    consumer = Consumer(rt.bus, rt.sessions, OUTBOX, incidents, relay=rt.relay, metrics=rt.metrics)
    facts = [accident(SPOT[0] + i * 0.0005, SPOT[1]) for i in range(3)]
    msgs = [FakeMsg(envelope_of(fact)) for fact in facts]
    await consumer.handle_batch(msgs)  # type: ignore[arg-type]

    assert all(m.acked for m in msgs)
    admin = auth(tracing.settings, "admin")
    traces = [(await tracing.client.get(f"/api/v1/incidents/{f.incident_id}/trace", headers=admin)).json()
              for f in facts]
    assert [near_count(t) for t in traces] == [1, 2, 3]
    assert [[m for m, _ in fired(t)] for t in traces] == [[], [], ["R02"]]


async def test_a_rolled_back_trace_leaves_nothing_in_memory(tracing: Service) -> None:  # noqa: F811
    rt = tracing.rt
    mirror: Mirror = rt.state["mirror"]
    kept, lost = accident(*SPOT), accident(*SPOT)
    async with rt.transaction() as session:
        await service.trace_incident(session, outbox=rt.outbox, mirror=mirror, fact=kept)
    with pytest.raises(RuntimeError):
        async with rt.transaction() as session:
            await service.trace_incident(session, outbox=rt.outbox, mirror=mirror, fact=lost)
            assert lost.incident_id in mirror.index.accidents  # the rest of its batch would count it
            raise RuntimeError("the batch fails")

    abandoned = accident(*SPOT)
    async with rt.sessions() as session:  # closed without commit: as good as rolled back
        await service.trace_incident(session, outbox=rt.outbox, mirror=mirror, fact=abandoned)
        assert abandoned.incident_id in mirror.index.accidents

    assert kept.incident_id in mirror.index.accidents
    assert lost.incident_id not in mirror.index.accidents
    assert abandoned.incident_id not in mirror.index.accidents
    async with rt.sessions() as session:
        stored = set((await session.execute(select(TracedIncident.incident_id))).scalars())
        stamps = set((await session.execute(select(TracedIncident.seq))).scalars())
    assert stored == {kept.incident_id} and min(stamps) > 0
    assert mirror.index.accidents_near(*SPOT, at=utcnow().timestamp(), radius_m=50, days=5) == 1


# --- commit order on PostgreSQL -------------------------------------------------------------------------------

@pytest.mark.postgres
async def test_a_row_committed_after_a_later_one_is_not_skipped_on_postgresql() -> None:
    """T1 writes first but commits last. A stamp taken at write time (a sequence, a timestamp) would give T1's row
    the lower value, visible only after the reader's mark had passed it; a stamp taken at commit cannot."""
    async with fresh_pg_database() as url:
        engine = make_engine(url, schema="tracing")
        try:
            await ensure_schema(engine, "tracing")
            await upgrade(engine, HERE / "migrations", schema="tracing")
            sessions = make_sessions(engine)
            shipped = Catalogue.load(TracingSettings().catalogue)
            async with sessions() as session:
                mirror = await Mirror.load(session, shipped=shipped)
            early, late = sessions(), sessions()
            async with early, late:
                await early.begin()
                await registries.put_hazard(early, data=HazardIn(id="hz-early", location=Location(lat=30.1, lon=120.4)))
                await early.flush()  # written, not committed
                async with late.begin():  # not blocked by the open transaction: the clock is taken at commit
                    await registries.put_hazard(late, data=HazardIn(id="hz-late", location=Location(lat=30.2,
                                                                                                    lon=120.5)))
                async with sessions() as session:
                    await mirror.catch_up(session)
                assert set(mirror.index.hazards) == {"hz-late"}
                await early.commit()
            async with sessions() as session:
                await mirror.catch_up(session)
                stamps = dict((await session.execute(select(HazardPoint.id, HazardPoint.seq))).all())
            assert set(mirror.index.hazards) == {"hz-early", "hz-late"}
            assert stamps == {"hz-late": 1, "hz-early": 2} and mirror.mark == 2
        finally:
            await engine.dispose()


@pytest.mark.parametrize("database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
async def test_two_replicas_editing_one_model_at_once_give_the_second_a_409(replicas: Pair) -> None:
    """A's edit is written but not committed when B's arrives: B cannot see it, writes the same version, waits on
    A's row, and is refused with a conflict once A commits (not a 500, not a lost edit)."""
    a, b = replicas.a, replicas.b
    mirror_a: Mirror = a.rt.state["mirror"]
    async with a.rt.sessions() as session:
        await session.begin()
        await service.update_model(session, catalogue=mirror_a.models, model_id="R02", change=ModelUpdate(
            enabled=False), viewer=Identity(username="admin-a", role="admin", unit_id=None))
        await session.flush()
        put_on_b = asyncio.create_task(b.client.put(
            "/api/v1/tracing/models/R02", json={"description": {"en": "edited on B"}}, headers=b.admin))

        async def b_waits_for_a() -> bool:
            async with a.rt.sessions() as probe:
                waiting = await probe.execute(text("SELECT count(*) FROM pg_stat_activity "
                                                   "WHERE wait_event_type = 'Lock' AND datname = current_database()"))
                return waiting.scalar_one() > 0

        await eventually(b_waits_for_a, what="B's edit to wait for A's uncommitted one")
        await session.commit()
    refused = await put_on_b
    assert_problem(refused, 409)
    model = (await b.client.get("/api/v1/tracing/models/R02", headers=b.admin)).json()
    assert (model["version"], model["enabled"], model["description"]["en"] == "edited on B") == (2, False, False)
