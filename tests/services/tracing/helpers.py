"""What tracing's tests share: incident envelopes as dispatch publishes them, and what tracing issued."""
from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import select

from services.tracing.models import IssuedTask
from shared.db import utcnow
from shared.events import (
    Envelope,
    IncidentReported,
    Location,
    PartyFacts,
    PersonFacts,
    TaskOrderGeneratedV2,
    UnitUpserted,
    VehicleFacts,
)
from tests.helpers import Service

#: the subject tracing consumes incidents on
INCIDENTS = {IncidentReported.subject}


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


async def task_messages(t: Service) -> list[TaskOrderGeneratedV2]:
    """Every task order on the TRACING stream so far, each published with its event id as Nats-Msg-Id."""
    found = []
    for envelope, headers in await t.stream("tracing", TaskOrderGeneratedV2):
        assert headers.get("Nats-Msg-Id") == envelope.id
        found.append(TaskOrderGeneratedV2.model_validate(envelope.data))
    return found


async def issued(t: Service) -> list[IssuedTask]:
    """Tracing's record of the task orders it issued."""
    async with t.rt.sessions() as session:
        return list((await session.execute(select(IssuedTask))).scalars())
