"""Tracing use cases: trace an incident and issue task orders (never twice), explain a trace, edit the catalogue."""
from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.tracing import changes, registries
from services.tracing.catalogue import Catalogue, TracingModel
from services.tracing.engine import Trace, trace
from services.tracing.examples import check_examples
from services.tracing.mirror import Mirror
from services.tracing.models import IssuedTask, ModelRevision, TracedIncident, UnitCopy
from services.tracing.schemas import FiredOut, ModelUpdate, TraceOut
from shared.auth import Identity
from shared.db import utcnow
from shared.errors import Forbidden, Invalid, NotFound
from shared.events import CodedMilestone, IncidentReported, StationClassified, TaskOrderGeneratedV2, UnitUpserted
from shared.outbox import Outbox
from shared.pagination import Keyset, Page, PageRequest
from shared.scope import Scope

log = logging.getLogger(__name__)

TASK_NAMESPACE = uuid.UUID("5b0f3c1e-8d4a-4e55-9d0e-6a1d7c2f4b90")


def task_id_for(incident_id: str, model_id: str, entity_ref: str) -> str:
    """A deterministic task id: the same incident, model and entity always give the same id."""
    return "task-" + uuid.uuid5(TASK_NAMESPACE, f"{incident_id}|{model_id}|{entity_ref}").hex


def is_historical(fact: IncidentReported, *, now: dt.datetime, after_h: float | None) -> bool:
    """Whether the incident is a back-fill: it occurred longer ago than the horizon when tracing ran."""
    return after_h is not None and now - fact.occurred_at > dt.timedelta(hours=after_h)


async def trace_incident(session: AsyncSession, *, outbox: Outbox, mirror: Mirror, fact: IncidentReported,
                         historical_after_h: float | None = 720) -> list[IssuedTask]:
    """Trace an accident once: catch up with every replica's writes, resolve its sources, fire the models, issue
    one task order per (incident, model, entity). Deadlines count from now; back-filled historical incidents are
    traced and recorded but send no task order (see docs/TRACING.md).

    The accident joins the replica's index at once, so the next incident of the same batch (one transaction)
    counts it; if the transaction rolls back, it is taken out again.
    """
    if fact.kind != "accident":
        return []
    await mirror.catch_up(session)
    if await session.get(TracedIncident, fact.incident_id) is not None:
        return []  # already traced (e.g. the same incident re-published under a new envelope id)
    now = utcnow()
    sources = await registries.resolve(session, fact=fact)
    index = mirror.index
    changes.touched(session, TracedIncident, undo=lambda: mirror.forget_unless_committed(fact.incident_id))
    result: Trace = trace(fact, sources=sources, index=index, catalogue=mirror.models)
    historical = is_historical(fact, now=now, after_h=historical_after_h)
    accident = index.accidents[fact.incident_id]
    session.add(TracedIncident(
        incident_id=fact.incident_id, external_id=fact.external_id, station_id=fact.station_id,
        handling_unit_id=fact.handling_unit_id, occurred_at=fact.occurred_at, lat=fact.location.lat,
        lon=fact.location.lon, junction=fact.junction, persons=list(accident.persons),
        operators=list(accident.operators), villages=list(accident.villages), historical=historical,
        sources=result.sources, traced_at=now))
    issued = []
    for fired in result.fired:
        model = fired.model
        task_id = task_id_for(fact.incident_id, model.id, fired.entity_ref)
        if await session.get(IssuedTask, task_id) is not None:
            continue
        row = IssuedTask(task_id=task_id, incident_id=fact.incident_id, model_id=model.id,
                         model_version=model.version, entity_ref=fired.entity_ref, station_id=fact.station_id,
                         reason=fired.reason, issued=not historical, created_at=now)
        session.add(row)
        issued.append(row)
        if historical:
            continue
        await outbox.stage(session, TaskOrderGeneratedV2(
            task_id=task_id, incident_id=fact.incident_id, model_id=model.id, model_version=model.version,
            source=model.source, entity_ref=fired.entity_ref, category=model.category, station_id=fact.station_id,
            location=fact.location, model_name=model.name, key_points=model.key_points, measures=model.measures,
            milestones=[CodedMilestone(code=m.code, text=m.text, due_at=now + dt.timedelta(hours=m.due_offset_h))
                        for m in model.milestones],
            deadline_at=now + dt.timedelta(hours=model.deadline_h), reason=fired.reason,
        ), subject=task_id)
    return issued


# --- units (read copies) -----------------------------------------------------------------------

async def apply_unit(session: AsyncSession, *, fact: UnitUpserted) -> None:
    """Keep the unit tree tracing needs for jurisdiction and station facts."""
    row = await session.get(UnitCopy, fact.unit_id)
    if row is None:
        session.add(UnitCopy(id=fact.unit_id, kind=fact.kind, parent_id=fact.parent_id, area_type=fact.area_type))
    else:
        row.kind, row.parent_id, row.area_type = fact.kind, fact.parent_id, fact.area_type


async def apply_classification(session: AsyncSession, *, fact: StationClassified) -> None:
    """Remember a station's effective integration mode."""
    row = await session.get(UnitCopy, fact.station_id)
    if row is None:
        session.add(UnitCopy(id=fact.station_id, kind="station", mode=fact.mode))
    else:
        row.mode = fact.mode


# --- reading a trace ---------------------------------------------------------------------------

async def _visible(session: AsyncSession, viewer: Identity, traced: TracedIncident) -> bool:
    scope = Scope.of(viewer, what="traces")
    squadron = None
    if scope.kind == "zone" and traced.station_id:
        station = await session.get(UnitCopy, traced.station_id)
        squadron = station.parent_id if station is not None else None
    return scope.covers(traced.station_id, squadron_id=squadron,
                        unit_ids=[traced.handling_unit_id] if traced.handling_unit_id else [])


async def get_trace(session: AsyncSession, *, viewer: Identity, incident_id: str) -> TraceOut:
    """What tracing found for an incident in the viewer's jurisdiction (NotFound otherwise or if not traced)."""
    traced = await session.get(TracedIncident, incident_id)
    if traced is None or not await _visible(session, viewer, traced):
        raise NotFound(f"no trace for incident {incident_id}")
    return TraceOut(incident_id=traced.incident_id, external_id=traced.external_id, station_id=traced.station_id,
                    occurred_at=traced.occurred_at, traced_at=traced.traced_at, historical=traced.historical,
                    sources=traced.sources, fired=await fired_on(session, viewer=viewer, incident_id=incident_id,
                                                                 checked=True))


async def _traced(session: AsyncSession, viewer: Identity, incident_id: str) -> None:
    traced = await session.get(TracedIncident, incident_id)
    if traced is None or not await _visible(session, viewer, traced):
        raise NotFound(f"no trace for incident {incident_id}")


def _fired_out(r: IssuedTask) -> FiredOut:
    return FiredOut(model_id=r.model_id, model_version=r.model_version, entity_ref=r.entity_ref, task_id=r.task_id,
                    reason=r.reason, issued=r.issued)


async def fired_on(session: AsyncSession, *, viewer: Identity, incident_id: str,
                   checked: bool = False) -> list[FiredOut]:
    """Every model that fired on an incident and its task orders (a trace shows them all)."""
    if not checked:
        await _traced(session, viewer, incident_id)
    stmt = select(IssuedTask).where(IssuedTask.incident_id == incident_id).order_by(IssuedTask.model_id,
                                                                                   IssuedTask.entity_ref)
    return [_fired_out(r) for r in (await session.execute(stmt)).scalars()]


async def fired_page(session: AsyncSession, *, viewer: Identity, incident_id: str,
                     page: PageRequest) -> Page[FiredOut]:
    """A page of the models that fired on an incident, by model and entity (unique within an incident)."""
    await _traced(session, viewer, incident_id)
    rows, next_cursor = await Keyset(IssuedTask.model_id, IssuedTask.entity_ref).page(
        session, select(IssuedTask).where(IssuedTask.incident_id == incident_id), page)
    return Page(items=[_fired_out(r) for r in rows], next_cursor=next_cursor)


# --- the catalogue -----------------------------------------------------------------------------

async def update_model(session: AsyncSession, *, catalogue: Catalogue, model_id: str, change: ModelUpdate,
                       viewer: Identity) -> TracingModel:
    """Change a model: validated like the shipped file (its examples must still behave), saved as a new version."""
    if viewer.role != "admin":
        raise Forbidden("only an admin may change tracing models")
    current = catalogue.get(model_id)
    if current is None:
        raise NotFound(f"tracing model {model_id} not found")
    current_body = current.model_dump(mode="json")
    body: dict[str, Any] = current_body | change.model_dump(exclude_none=True)
    for key in ("name", "description"):  # one language may be changed alone
        if isinstance(body.get(key), dict):
            body[key] = current_body[key] | body[key]
    body["version"] = current.version + 1
    try:
        model = TracingModel.model_validate(body)
        check_examples(model, catalogue.engine)
    except ValueError as exc:
        raise Invalid(f"model {model_id} not changed: {exc}") from exc
    session.add(ModelRevision(model_id=model.id, version=model.version, body=model.model_dump(mode="json"),
                              changed_by=viewer.username, changed_at=utcnow()))
    changes.touched(session, ModelRevision)
    return model
