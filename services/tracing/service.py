"""Tracing use cases: evaluate the catalogue on an incident and issue task orders, never twice."""
from __future__ import annotations

import datetime as dt
import logging
import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.tracing.catalogue import Catalogue, TracingModel, evaluate
from services.tracing.models import IssuedTask
from shared.db import utcnow
from shared.events import IncidentReported, Milestone, PartyFacts, TaskOrderGenerated
from shared.outbox import Outbox

log = logging.getLogger(__name__)

TASK_NAMESPACE = uuid.UUID("5b0f3c1e-8d4a-4e55-9d0e-6a1d7c2f4b90")


def task_id_for(incident_id: str, model_id: str, entity_ref: str) -> str:
    """A deterministic task id: the same incident, model and entity always give the same id."""
    return "task-" + uuid.uuid5(TASK_NAMESPACE, f"{incident_id}|{model_id}|{entity_ref}").hex


def person_ref(incident_id: str, index: int, party: PartyFacts) -> str:
    """The person a task is about: the identity hash when known, else the party's place in the incident."""
    if party.person.id_hash:
        return f"person:{party.person.id_hash[:32]}"
    return f"person:{incident_id}#{index}"


def matches(model: TracingModel, fact: IncidentReported) -> list[tuple[str, str]]:
    """The (entity_ref, reason) pairs the model fires for on this incident (person models, per party)."""
    incident = fact.model_dump(mode="json", exclude={"parties"})
    fired = []
    if model.source == "person":
        for index, party in enumerate(fact.parties):
            as_dict = party.model_dump(mode="json")
            try:
                hit = evaluate(model.condition, party=as_dict, incident=incident, parameters=model.parameters)
            except Exception as exc:  # noqa: BLE001 - one faulty model must not block tracing the others
                log.error("model %s v%s failed on incident %s: %s", model.id, model.version, fact.incident_id, exc)
                continue
            if hit:
                fired.append((person_ref(fact.incident_id, index, party),
                              f"{model.id}: {model.description} (party {index + 1}, {party.role})"))
    return fired


async def trace_incident(session: AsyncSession, *, outbox: Outbox, catalogue: Catalogue,
                         fact: IncidentReported) -> list[IssuedTask]:
    """Fire every enabled model on the incident; one task order per (incident, model, entity)."""
    now = utcnow()
    issued = []
    for model in catalogue.models:
        if not model.enabled:
            continue
        for entity_ref, reason in matches(model, fact):
            task_id = task_id_for(fact.incident_id, model.id, entity_ref)
            if await session.get(IssuedTask, task_id) is not None:
                continue
            row = IssuedTask(task_id=task_id, incident_id=fact.incident_id, model_id=model.id,
                             model_version=model.version, entity_ref=entity_ref, station_id=fact.station_id,
                             reason=reason, created_at=now)
            session.add(row)
            issued.append(row)
            await outbox.stage(session, TaskOrderGenerated(
                task_id=task_id, incident_id=fact.incident_id, model_id=model.id, model_version=model.version,
                source=model.source, entity_ref=entity_ref, category=model.category, station_id=fact.station_id,
                location=fact.location, key_points=model.key_points, measures=model.measures,
                milestones=[Milestone(name=m.name, due_at=now + dt.timedelta(hours=m.due_offset_h))
                            for m in model.milestones],
                deadline_at=now + dt.timedelta(hours=model.deadline_h), reason=reason,
            ), subject=task_id)
    return issued


async def fired_on(session: AsyncSession, *, incident_id: str) -> list[IssuedTask]:
    """The task orders issued for an incident."""
    stmt = select(IssuedTask).where(IssuedTask.incident_id == incident_id).order_by(IssuedTask.model_id)
    return list((await session.execute(stmt)).scalars())
