"""Tracing consumes IncidentReported from real NATS and issues each task order once (also on real redelivery),
on SQLite and PostgreSQL; the trace endpoint explains it within the caller's jurisdiction."""
from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from nats.aio.msg import Msg

from shared.db import utcnow
from shared.events import (
    Envelope,
    IncidentReported,
    UnitUpserted,
)
from tests.helpers import Service, auth, eventually
from tests.services.tracing.helpers import INCIDENTS, envelope_of, incident_envelope, issued, task_messages


async def test_a_drunk_driver_yields_one_p01_task_order_on_the_tracing_stream(tracing: Service) -> None:
    envelope = incident_envelope(drunk=True)
    await tracing.publish(envelope)

    async def task_published() -> bool:
        return len(await task_messages(tracing)) >= 1

    await eventually(task_published, what="a tracing.task.generated.v2 message")
    [task] = await task_messages(tracing)
    assert task.model_id == "P01"
    assert task.incident_id == envelope.data["incident_id"]
    assert task.station_id == "ps-yiqiao"
    assert task.category == "personal_penalty"
    assert task.entity_ref == "person:" + "ab" * 16
    assert task.milestones and task.deadline_at > utcnow()
    # v2: codes with both texts of the model version that issued the order
    assert [m.code for m in task.milestones] == ["case_opened", "penalty_decided", "education_session_held"]
    assert task.milestones[0].text == {"zh-CN": "立案", "en": "case opened"}
    assert task.model_name and task.model_name["zh-CN"] == "酒驾毒驾" and task.model_version == 1
    fired = await tracing.client.get(f"/api/v1/tracing/incidents/{task.incident_id}/fired",
                                     headers=auth(tracing.settings, "command"))
    assert [(f["model_id"], f["task_id"]) for f in fired.json()["items"]] == [("P01", task.task_id)]
    assert fired.json()["next_cursor"] is None


async def test_the_same_incident_delivered_again_issues_no_second_task_order(tracing: Service) -> None:
    envelope = incident_envelope(drunk=True)
    await tracing.publish(envelope, msg_id="copy-1")

    async def handled() -> bool:
        return tracing.consumed(INCIDENTS, ("handled",)) == 1 and await tracing.outbox() == (1, 0)

    await eventually(handled, what="the first copy to be handled and its task order relayed")
    await tracing.publish(envelope, msg_id="copy-2")  # same envelope id, another Nats-Msg-Id: both are stored

    async def duplicate_seen() -> bool:
        return tracing.consumed(INCIDENTS, ("duplicate",)) == 1

    await eventually(duplicate_seen, what="the second copy to be recognised as a duplicate")
    assert await tracing.outbox() == (1, 0)
    assert len(await task_messages(tracing)) == 1
    assert len(await issued(tracing)) == 1


async def test_a_message_redelivered_by_jetstream_after_commit_issues_no_second_task_order(
        tracing: Service, monkeypatch: pytest.MonkeyPatch) -> None:
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
        return tracing.consumed(INCIDENTS, ("duplicate",)) >= 1 and (await tracing.outbox())[1] == 0

    await eventually(redelivered_and_seen, what="the redelivery to be recognised as a duplicate")
    assert max(deliveries) >= 2, "JetStream did not redeliver"
    tasks = await task_messages(tracing)
    assert sorted(t.model_id for t in tasks) == ["P01", "V01"]
    assert len({t.task_id for t in tasks}) == len(tasks) == len(await issued(tracing)) == 2


async def test_the_same_incident_under_a_new_envelope_id_issues_no_second_task_order(tracing: Service) -> None:
    first = incident_envelope(drunk=True)
    resent = Envelope(**(first.model_dump() | {"id": str(uuid.uuid4())}))  # e.g. dispatch re-staged it
    await tracing.publish(first)
    await tracing.publish(resent)

    async def both_handled() -> bool:
        return tracing.consumed(INCIDENTS, ("handled",)) == 2 and (await tracing.outbox())[1] == 0

    await eventually(both_handled, what="both envelopes to be handled")
    assert len(await issued(tracing)) == 1
    assert len(await task_messages(tracing)) == 1


async def test_a_sober_incident_issues_no_task_order(tracing: Service) -> None:
    await tracing.publish(incident_envelope(drunk=False))

    async def handled() -> bool:
        return tracing.consumed(INCIDENTS, ("handled",)) == 1

    await eventually(handled, what="the incident to be handled")
    assert await issued(tracing) == []
    assert await tracing.outbox() == (0, 0)
    assert await task_messages(tracing) == []


async def test_a_back_filled_historical_accident_is_traced_but_sends_no_task_order(tracing: Service) -> None:
    envelope = incident_envelope(drunk=True, occurred_at=dt.datetime(2012, 3, 4, 22, 0, tzinfo=dt.UTC))
    await tracing.publish(envelope)

    async def handled() -> bool:
        return tracing.consumed(INCIDENTS, ("handled",)) == 1

    await eventually(handled, what="the historical incident to be handled")
    trace = await tracing.client.get(f"/api/v1/incidents/{envelope.data['incident_id']}/trace",
                                     headers=auth(tracing.settings, "command"))
    body = trace.json()
    assert body["historical"] is True
    assert [(f["model_id"], f["issued"]) for f in body["fired"]] == [("P01", False)]
    assert await tracing.outbox() == (0, 0)


async def test_the_trace_is_shown_to_its_station_and_squadron_only(tracing: Service) -> None:
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


async def test_tracing_is_ready_and_lists_its_catalogue(tracing: Service) -> None:
    ready = await tracing.client.get("/readyz")
    models: Any = await tracing.client.get("/api/v1/tracing/models", headers=auth(tracing.settings, "station",
                                                                                   unit_id="ps-yiqiao"))

    assert ready.status_code == 200
    assert len(models.json()["items"]) == 24 and models.json()["next_cursor"] is None
