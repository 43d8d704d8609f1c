"""Tracing consumes IncidentReported from real NATS and issues each task order once (also on real redelivery),
on SQLite and PostgreSQL; the trace endpoint explains it within the caller's jurisdiction."""
from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from nats.aio.msg import Msg
from sqlalchemy import func, select

from services.tracing.app import create_app
from services.tracing.config import TracingSettings
from services.tracing.models import OUTBOX, IssuedTask
from shared.bus import Bus
from shared.db import utcnow
from shared.events import (
    Envelope,
    IncidentReported,
    Location,
    PartyFacts,
    PersonFacts,
    TaskOrderGenerated,
    UnitUpserted,
    VehicleFacts,
)
from shared.runtime import Runtime
from tests.helpers import auth, eventually, serving


@dataclass
class Tracing:
    client: httpx.AsyncClient
    settings: TracingSettings
    rt: Runtime
    bus: Bus

    async def publish(self, envelope: Envelope, *, msg_id: str | None = None) -> None:
        assert self.bus.js is not None
        await self.bus.js.publish(envelope.type, envelope.model_dump_json().encode(),
                                  headers={"Nats-Msg-Id": msg_id or uuid.uuid4().hex})

    def consumed(self, outcome: str) -> float:
        value = self.rt.metrics.registry.get_sample_value(
            "events_consumed_total", {"subject": IncidentReported.subject, "outcome": outcome})
        return value or 0.0

    async def task_messages(self) -> list[TaskOrderGenerated]:
        """Every task order on the TRACING stream so far."""
        assert self.bus.js is not None
        try:
            info = await self.bus.js.stream_info("TRACING")
        except Exception:  # noqa: BLE001 - not created yet
            return []
        facts: list[TaskOrderGenerated] = []
        if info.state.messages == 0:
            return facts
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            msg = await self.bus.js.get_msg("TRACING", seq)
            if msg.subject == TaskOrderGenerated.subject:
                envelope = Envelope.model_validate_json(msg.data)
                assert msg.headers is not None and msg.headers["Nats-Msg-Id"] == envelope.id
                facts.append(TaskOrderGenerated.model_validate(envelope.data))
        return facts

    async def issued(self) -> list[IssuedTask]:
        async with self.rt.sessions() as session:
            return list((await session.execute(select(IssuedTask))).scalars())

    async def outbox_rows(self) -> tuple[int, int]:
        """(all rows, unsent rows) in tracing's outbox."""
        async with self.rt.sessions() as session:
            total = (await session.execute(select(func.count()).select_from(OUTBOX.table))).scalar_one()
            return int(total), await OUTBOX.pending_count(session)


@pytest.fixture
async def tracing(database_url: str, nats_url: str, tmp_path: Path) -> AsyncIterator[Tracing]:
    settings = TracingSettings(database_url=database_url, nats_url=nats_url, data_dir=tmp_path, outbox_poll_s=0.2)
    bus = Bus(nats_url, name="test-dispatch")
    await bus.connect(wait=5)
    await bus.ensure_stream("dispatch")
    app = create_app(settings)
    try:
        async with serving(app) as client:
            yield Tracing(client, settings, app.state.rt, bus)
    finally:
        await bus.close()


def envelope_of(fact: IncidentReported | UnitUpserted) -> Envelope:
    return Envelope(source="jiaozhi/dispatch", type=fact.subject, subject=getattr(fact, "incident_id", None),
                    time=utcnow(), data=fact.model_dump(mode="json"))


def incident_envelope(*, drunk: bool, incident_id: str | None = None, truck: bool = False,
                      occurred_at: dt.datetime | None = None, station_id: str = "ps-yiqiao") -> Envelope:
    fact = IncidentReported(
        incident_id=incident_id or f"inc-{uuid.uuid4().hex}", external_id=f"ext-{uuid.uuid4().hex[:8]}",
        kind="accident", occurred_at=occurred_at or utcnow() - dt.timedelta(hours=1),
        location=Location(lat=30.1, lon=120.45), station_id=station_id, handling_unit_id=station_id,
        parties=[PartyFacts(role="driver", person=PersonFacts(id_hash="ab" * 32, id_masked="330*************34",
                                                              drunk=drunk),
                            vehicle=VehicleFacts(kind="yellow_plate_truck", plate="ZJ-A1") if truck else None),
                 PartyFacts(role="passenger", person=PersonFacts(drunk=True))],  # a drunk passenger is no case
    )
    return envelope_of(fact)


async def test_a_drunk_driver_yields_one_p01_task_order_on_the_tracing_stream(tracing: Tracing) -> None:
    envelope = incident_envelope(drunk=True)
    await tracing.publish(envelope)

    async def task_published() -> bool:
        return len(await tracing.task_messages()) >= 1

    await eventually(task_published, what="a tracing.task.generated.v1 message")
    [task] = await tracing.task_messages()
    assert task.model_id == "P01"
    assert task.incident_id == envelope.data["incident_id"]
    assert task.station_id == "ps-yiqiao"
    assert task.category == "personal_penalty"
    assert task.entity_ref == "person:" + "ab" * 16
    assert task.milestones and task.deadline_at > utcnow()
    fired = await tracing.client.get(f"/api/v1/tracing/incidents/{task.incident_id}/fired",
                                     headers=auth(tracing.settings, "command"))
    assert [(f["model_id"], f["task_id"]) for f in fired.json()] == [("P01", task.task_id)]


async def test_the_same_incident_delivered_again_issues_no_second_task_order(tracing: Tracing) -> None:
    envelope = incident_envelope(drunk=True)
    await tracing.publish(envelope, msg_id="copy-1")

    async def handled() -> bool:
        return tracing.consumed("handled") == 1 and await tracing.outbox_rows() == (1, 0)

    await eventually(handled, what="the first copy to be handled and its task order relayed")
    await tracing.publish(envelope, msg_id="copy-2")  # same envelope id, another Nats-Msg-Id: both are stored

    async def duplicate_seen() -> bool:
        return tracing.consumed("duplicate") == 1

    await eventually(duplicate_seen, what="the second copy to be recognised as a duplicate")
    assert await tracing.outbox_rows() == (1, 0)
    assert len(await tracing.task_messages()) == 1
    assert len(await tracing.issued()) == 1


async def test_a_message_redelivered_by_jetstream_after_commit_issues_no_second_task_order(
        tracing: Tracing, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first ack of every message is lost (turned into a nak), so JetStream really delivers it again."""
    real_ack, real_nak = Msg.ack, Msg.nak
    first_seen: set[str] = set()
    deliveries: list[int] = []

    async def lossy_ack(msg: Msg) -> None:
        deliveries.append(msg.metadata.num_delivered)
        if msg.subject == IncidentReported.subject and msg.reply not in first_seen and msg.metadata.num_delivered == 1:
            first_seen.add(msg.reply)
            await real_nak(msg)
            return
        await real_ack(msg)

    monkeypatch.setattr(Msg, "ack", lossy_ack)
    await tracing.publish(incident_envelope(drunk=True, truck=True))

    async def redelivered_and_seen() -> bool:
        return tracing.consumed("duplicate") >= 1 and (await tracing.outbox_rows())[1] == 0

    await eventually(redelivered_and_seen, what="the redelivery to be recognised as a duplicate")
    assert max(deliveries) >= 2, "JetStream did not redeliver"
    tasks = await tracing.task_messages()
    assert sorted(t.model_id for t in tasks) == ["P01", "V01"]
    assert len({t.task_id for t in tasks}) == len(tasks) == len(await tracing.issued()) == 2


async def test_the_same_incident_under_a_new_envelope_id_issues_no_second_task_order(tracing: Tracing) -> None:
    first = incident_envelope(drunk=True)
    resent = Envelope(**(first.model_dump() | {"id": str(uuid.uuid4())}))  # e.g. dispatch re-staged it
    await tracing.publish(first)
    await tracing.publish(resent)

    async def both_handled() -> bool:
        return tracing.consumed("handled") == 2 and (await tracing.outbox_rows())[1] == 0

    await eventually(both_handled, what="both envelopes to be handled")
    assert len(await tracing.issued()) == 1
    assert len(await tracing.task_messages()) == 1


async def test_a_sober_incident_issues_no_task_order(tracing: Tracing) -> None:
    await tracing.publish(incident_envelope(drunk=False))

    async def handled() -> bool:
        return tracing.consumed("handled") == 1

    await eventually(handled, what="the incident to be handled")
    assert await tracing.issued() == []
    assert await tracing.outbox_rows() == (0, 0)
    assert await tracing.task_messages() == []


async def test_a_back_filled_historical_accident_is_traced_but_sends_no_task_order(tracing: Tracing) -> None:
    envelope = incident_envelope(drunk=True, occurred_at=dt.datetime(2012, 3, 4, 22, 0, tzinfo=dt.UTC))
    await tracing.publish(envelope)

    async def handled() -> bool:
        return tracing.consumed("handled") == 1

    await eventually(handled, what="the historical incident to be handled")
    trace = await tracing.client.get(f"/api/v1/incidents/{envelope.data['incident_id']}/trace",
                                     headers=auth(tracing.settings, "command"))
    body = trace.json()
    assert body["historical"] is True
    assert [(f["model_id"], f["issued"]) for f in body["fired"]] == [("P01", False)]
    assert await tracing.outbox_rows() == (0, 0)


async def test_the_trace_is_shown_to_its_station_and_squadron_only(tracing: Tracing) -> None:
    await tracing.publish(envelope_of(UnitUpserted(unit_id="ps-yiqiao", name="Yiqiao", kind="station",
                                                   parent_id="sq-rural", area_type="rural")))
    envelope = incident_envelope(drunk=True)
    await tracing.publish(envelope)
    path = f"/api/v1/incidents/{envelope.data['incident_id']}/trace"

    async def traced() -> bool:
        return (await tracing.client.get(path, headers=auth(tracing.settings, "command"))).status_code == 200

    await eventually(traced, what="the trace")
    own = await tracing.client.get(path, headers=auth(tracing.settings, "station", unit_id="ps-yiqiao"))
    zone = await tracing.client.get(path, headers=auth(tracing.settings, "squadron", unit_id="sq-rural"))
    other = await tracing.client.get(path, headers=auth(tracing.settings, "station", unit_id="ps-other"))
    other_zone = await tracing.client.get(path, headers=auth(tracing.settings, "squadron", unit_id="sq-urban"))
    assert own.status_code == zone.status_code == 200
    body = own.json()
    assert body["sources"]["person"][0]["id_masked"] == "330*************34"
    assert "ab" * 16 not in body["sources"]["person"][0].values()
    assert set(body["sources"]) == {"person", "vehicle", "road", "enterprise", "village"}
    assert [f["model_id"] for f in body["fired"]] == ["P01"] and "party 1, driver" in body["fired"][0]["reason"]
    assert other.status_code == other_zone.status_code == 404


async def test_tracing_is_ready_and_lists_its_catalogue(tracing: Tracing) -> None:
    ready = await tracing.client.get("/readyz")
    models: Any = await tracing.client.get("/api/v1/tracing/models", headers=auth(tracing.settings, "station",
                                                                                   unit_id="ps-yiqiao"))

    assert ready.status_code == 200
    assert len(models.json()) == 24
