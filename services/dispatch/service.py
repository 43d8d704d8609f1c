"""Dispatch use cases: units and areas, incident reception and dispatch, task-order routing."""
from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.dispatch.areas import AreaIndex, parse_area
from services.dispatch.models import (
    Incident,
    IncidentIn,
    IncidentOut,
    StationOut,
    TaskHistory,
    TaskOrder,
    TaskOut,
    Unit,
    UnitIn,
)
from services.dispatch.routing import RoutingTable
from shared.auth import Identity
from shared.db import utcnow
from shared.errors import Forbidden, Invalid, NotFound
from shared.events import (
    IncidentReported,
    PartyFacts,
    PersonFacts,
    StationClassified,
    TaskChanged,
    TaskOrderGenerated,
    UnitUpserted,
    VehicleFacts,
)
from shared.outbox import Outbox
from shared.pagination import MAX_LIMIT, decode_cursor, encode_cursor
from shared.privacy import hash_identity, mask_identity

# --- units -------------------------------------------------------------------------------------


async def upsert_units(session: AsyncSession, *, outbox: Outbox, units: list[UnitIn]) -> list[Unit]:
    """Create or update units (idempotent on id); parents may come in the same batch."""
    known = set((await session.execute(select(Unit.id))).scalars()) | {u.id for u in units}
    saved = []
    for data in units:
        if data.parent_id and data.parent_id not in known:
            raise Invalid(f"unit {data.id}: parent {data.parent_id} does not exist")
        if data.kind == "station" and data.area is None:
            raise Invalid(f"station {data.id} needs an area (GeoJSON polygon)")
        unit = await session.get(Unit, data.id) or Unit(id=data.id, name=data.name, kind=data.kind, updated_at=utcnow())
        for field in ("name", "kind", "parent_id", "area_type", "population", "area_km2", "area"):
            setattr(unit, field, getattr(data, field))
        if data.area is not None:
            inside = parse_area(data.area).representative_point()
            unit.centroid_lat, unit.centroid_lon = inside.y, inside.x
        unit.updated_at = utcnow()
        session.add(unit)
        saved.append(unit)
        await outbox.stage(session, UnitUpserted(
            unit_id=unit.id, name=unit.name, kind=data.kind, parent_id=unit.parent_id, area_type=data.area_type,
            population=unit.population, area_km2=unit.area_km2), subject=unit.id)
    return saved


async def list_units(session: AsyncSession, *, kind: str | None = None) -> list[Unit]:
    """Units ordered by id, optionally of one kind."""
    stmt = select(Unit).order_by(Unit.id)
    if kind:
        stmt = stmt.where(Unit.kind == kind)
    return list((await session.execute(stmt)).scalars())


async def get_unit(session: AsyncSession, *, unit_id: str) -> Unit:
    """One unit, or NotFound."""
    unit = await session.get(Unit, unit_id)
    if unit is None:
        raise NotFound(f"unit {unit_id} does not exist")
    return unit


def station_out(unit: Unit) -> StationOut:
    """A station row as the API shows it."""
    centroid = {"lat": unit.centroid_lat, "lon": unit.centroid_lon} if unit.centroid_lat is not None else None
    return StationOut(id=unit.id, name=unit.name, parent_id=unit.parent_id, area_type=unit.area_type,
                      population=unit.population, area_km2=unit.area_km2, centroid=centroid, mode=unit.mode,
                      mode_source=unit.mode_source)


async def load_area_index(session: AsyncSession) -> AreaIndex:
    """Build the spatial index over every station's area."""
    rows = await session.execute(select(Unit.id, Unit.area).where(Unit.kind == "station", Unit.area.is_not(None)))
    return AreaIndex.build({row.id: row.area for row in rows})


async def apply_classification(session: AsyncSession, *, fact: StationClassified) -> None:
    """Keep the read copy of a station's mode; new work follows it, open work stays."""
    unit = await session.get(Unit, fact.station_id)
    if unit is None:
        return  # a station dispatch does not know (yet): nothing to route there
    unit.mode, unit.mode_source, unit.updated_at = fact.mode, fact.source, utcnow()
    session.add(unit)


async def _unit_of_kind(session: AsyncSession, kind: str) -> Unit | None:
    return (await session.execute(select(Unit).where(Unit.kind == kind).order_by(Unit.id).limit(1))).scalar()


async def _resolve_target(session: AsyncSession, station: Unit, target: str) -> tuple[str, str]:
    """Turn a target kind into a unit id near the station, with a note when it had to fall back."""
    if target == "station":
        return station.id, ""
    if target == "squadron":
        parent = await session.get(Unit, station.parent_id) if station.parent_id else None
        if parent is not None and parent.kind == "squadron":
            return parent.id, ""
        return station.id, f"; station {station.id} has no traffic squadron, kept at the station"
    unit = await _unit_of_kind(session, target)
    if unit is not None:
        return unit.id, ""
    return station.id, f"; no {target} exists, kept at the station"


# --- incidents ---------------------------------------------------------------------------------


def _party_facts(party: Any, identity_key: str) -> PartyFacts:
    person = party.person.model_dump(exclude={"id_number"})
    if party.person.id_number:
        person["id_hash"] = hash_identity(identity_key, party.person.id_number)
        person["id_masked"] = mask_identity(party.person.id_number)
    vehicle = VehicleFacts(**party.vehicle.model_dump()) if party.vehicle else None
    return PartyFacts(role=party.role, person=PersonFacts(**person), vehicle=vehicle)


async def find_incident(session: AsyncSession, *, external_id: str) -> Incident | None:
    """The incident already received under this external id."""
    return (await session.execute(select(Incident).where(Incident.external_id == external_id))).scalar()


async def report_incident(session: AsyncSession, *, outbox: Outbox, data: IncidentIn, areas: AreaIndex,
                          routing: RoutingTable, identity_key: str, reporter: str) -> tuple[Incident, bool]:
    """Receive an incident: place it, dispatch it, announce it. Returns (incident, created)."""
    existing = await find_incident(session, external_id=data.external_id)
    if existing is not None:
        return existing, False
    now = utcnow()
    parties = [_party_facts(p, identity_key) for p in data.parties]
    station_id = areas.locate(data.location.lat, data.location.lon)
    incident = Incident(
        id=f"inc-{uuid.uuid4().hex}", external_id=data.external_id, kind=data.kind, occurred_at=data.occurred_at,
        reported_at=data.reported_at or now, lat=data.location.lat, lon=data.location.lon, station_id=station_id,
        outside_area=station_id is None, reported_by=reporter, created_at=now,
        details={"severity": data.severity.model_dump(), "parties": [p.model_dump(mode="json") for p in parties],
                 "hit_and_run": data.hit_and_run, "lighting": data.lighting, "junction": data.junction,
                 "school_zone": data.school_zone},
    )
    if station_id is None:
        incident.dispatch_reason = "outside every station area: flagged for the command centre"
    else:
        station = await session.get(Unit, station_id)
        assert station is not None
        target = routing.incident_target(station.mode)
        incident.handling_unit_id, note = await _resolve_target(session, station, target)
        incident.dispatch_reason = (
            f"in station {station_id}'s area ({station.mode or 'mode not yet known'}): accidents go to the {target}"
            + note
        )
        incident.dispatched_at = now
    session.add(incident)
    await outbox.stage(session, IncidentReported(
        incident_id=incident.id, external_id=incident.external_id, kind=incident.kind,
        occurred_at=incident.occurred_at, location=data.location, station_id=station_id,
        handling_unit_id=incident.handling_unit_id, severity=data.severity, parties=parties,
        hit_and_run=data.hit_and_run, lighting=data.lighting, junction=data.junction, school_zone=data.school_zone,
    ), subject=incident.id)
    return incident, True


def incident_out(incident: Incident) -> IncidentOut:
    """An incident as the API shows it."""
    details = incident.details or {}
    return IncidentOut(
        id=incident.id, external_id=incident.external_id, kind=incident.kind, occurred_at=incident.occurred_at,
        reported_at=incident.reported_at, location={"lat": incident.lat, "lon": incident.lon},
        station_id=incident.station_id, outside_area=incident.outside_area,
        handling_unit_id=incident.handling_unit_id, dispatch_reason=incident.dispatch_reason,
        dispatched_at=incident.dispatched_at, arrived_at=incident.arrived_at,
        severity=details.get("severity", {}), parties=details.get("parties", []),
    )


async def _zone_station_ids(session: AsyncSession, squadron_id: str) -> list[str]:
    rows = await session.execute(select(Unit.id).where(Unit.parent_id == squadron_id, Unit.kind == "station"))
    return list(rows.scalars())


async def _incident_scope(session: AsyncSession, viewer: Identity) -> Any:
    """A WHERE clause limiting incidents to the viewer's jurisdiction (None: everything)."""
    if viewer.sees_whole_district:
        return None
    if viewer.role == "station":
        return Incident.station_id == viewer.unit_id
    if viewer.role == "squadron":
        stations = await _zone_station_ids(session, viewer.unit_id or "")
        return or_(Incident.station_id.in_(stations), Incident.handling_unit_id == viewer.unit_id)
    if viewer.role == "platform":
        return Incident.reported_by == viewer.username
    raise Forbidden("this role may not read incidents")


async def list_incidents(session: AsyncSession, *, viewer: Identity, station_id: str | None = None,
                         since: dt.datetime | None = None, until: dt.datetime | None = None, limit: int = 50,
                         cursor: str | None = None) -> tuple[list[Incident], str | None]:
    """Incidents in the viewer's jurisdiction, newest first, one page."""
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise Invalid(f"{name} needs an offset, e.g. 2024-05-01T00:00:00+08:00")
    stmt = select(Incident)
    scope = await _incident_scope(session, viewer)
    if scope is not None:
        stmt = stmt.where(scope)
    if station_id:
        stmt = stmt.where(Incident.station_id == station_id)
    if since:
        stmt = stmt.where(Incident.occurred_at >= since)
    if until:
        stmt = stmt.where(Incident.occurred_at < until)
    return await _page(session, stmt, Incident.occurred_at, Incident.id, limit=limit, cursor=cursor)


async def get_incident(session: AsyncSession, *, viewer: Identity, incident_id: str) -> Incident:
    """One incident in the viewer's jurisdiction (NotFound otherwise, so existence does not leak)."""
    stmt = select(Incident).where(Incident.id == incident_id)
    scope = await _incident_scope(session, viewer)
    if scope is not None:
        stmt = stmt.where(scope)
    incident = (await session.execute(stmt)).scalar()
    if incident is None:
        raise NotFound(f"incident {incident_id} not found")
    return incident


async def _page(session: AsyncSession, stmt: Any, sort_col: Any, id_col: Any, *, limit: int,
                cursor: str | None) -> tuple[list[Any], str | None]:
    """Newest-first keyset pagination on (sort_col, id_col)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise Invalid(f"limit must be between 1 and {MAX_LIMIT}")
    key = decode_cursor(cursor)
    if key is not None:
        try:
            at, last_id = dt.datetime.fromisoformat(key[0]), str(key[1])
        except (ValueError, IndexError, TypeError) as exc:
            raise Invalid("malformed cursor") from exc
        if at.tzinfo is None:  # cursors we issue always carry an offset; a naive one was tampered with
            raise Invalid("malformed cursor")
        stmt = stmt.where(or_(sort_col < at, and_(sort_col == at, id_col < last_id)))
    rows = list((await session.execute(stmt.order_by(sort_col.desc(), id_col.desc()).limit(limit + 1))).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1] if rows and more else None
    next_cursor = encode_cursor(getattr(last, sort_col.key).isoformat(), getattr(last, id_col.key)) if last else None
    return rows, next_cursor


# --- task orders -------------------------------------------------------------------------------


async def receive_task_order(session: AsyncSession, *, outbox: Outbox, fact: TaskOrderGenerated,
                             routing: RoutingTable) -> TaskOrder | None:
    """Store a generated task order and route it to one unit; a repeat of the same id changes nothing."""
    if await session.get(TaskOrder, fact.task_id) is not None:
        return None
    station = await session.get(Unit, fact.station_id) if fact.station_id else None
    if station is None:
        command = await _unit_of_kind(session, "brigade")
        if command is None:
            raise NotFound("no station for the task order and no brigade to take it")
        unit_id, reason = command.id, "no station area holds the incident: sent to the brigade's command office"
    else:
        target, why = routing.task_target(category=fact.category, mode=station.mode, model_id=fact.model_id)
        unit_id, note = await _resolve_target(session, station, target)
        reason = f"{why} goes to the {target}" + note
    now = utcnow()
    task = TaskOrder(
        id=fact.task_id, incident_id=fact.incident_id, model_id=fact.model_id, source=fact.source,
        entity_ref=fact.entity_ref, category=fact.category, station_id=fact.station_id, unit_id=unit_id,
        status="dispatched", deadline_at=fact.deadline_at, key_points=list(fact.key_points),
        milestones=[{"name": m.name, "due_at": m.due_at.isoformat(), "done_at": None} for m in fact.milestones],
        measures=list(fact.measures), routing_reason=reason, created_at=now, updated_at=now,
    )
    session.add(task)
    session.add(TaskHistory(task_id=task.id, seq=1, action="create", from_status=None, to_status="created",
                            by=f"model:{fact.model_id}", at=now, note=fact.reason))
    session.add(TaskHistory(task_id=task.id, seq=2, action="dispatch", from_status="created", to_status="dispatched",
                            by="dispatch", at=now, note=reason))
    await outbox.stage(session, TaskChanged(
        task_id=task.id, incident_id=task.incident_id, model_id=task.model_id, category=fact.category,
        station_id=task.station_id, unit_id=unit_id, old_status=None, new_status="dispatched", by="dispatch", at=now,
    ), subject=task.id)
    return task


async def _task_scope(session: AsyncSession, viewer: Identity) -> Any:
    if viewer.sees_whole_district:
        return None
    if viewer.role == "station":
        return TaskOrder.unit_id == viewer.unit_id
    if viewer.role == "squadron":
        stations = await _zone_station_ids(session, viewer.unit_id or "")
        return or_(TaskOrder.unit_id == viewer.unit_id, TaskOrder.unit_id.in_(stations))
    raise Forbidden("this role may not read task orders")


async def list_tasks(session: AsyncSession, *, viewer: Identity, status: str | None = None,
                     category: str | None = None, unit_id: str | None = None, incident_id: str | None = None,
                     overdue: bool | None = None, limit: int = 50,
                     cursor: str | None = None) -> tuple[list[TaskOrder], str | None]:
    """Task orders in the viewer's jurisdiction, newest first, one page."""
    stmt = select(TaskOrder)
    scope = await _task_scope(session, viewer)
    if scope is not None:
        stmt = stmt.where(scope)
    for column, value in ((TaskOrder.status, status), (TaskOrder.category, category),
                          (TaskOrder.unit_id, unit_id), (TaskOrder.incident_id, incident_id)):
        if value:
            stmt = stmt.where(column == value)
    if overdue is not None:
        late = and_(TaskOrder.deadline_at < utcnow(), TaskOrder.status != "verified")
        stmt = stmt.where(late if overdue else ~late)
    return await _page(session, stmt, TaskOrder.created_at, TaskOrder.id, limit=limit, cursor=cursor)


async def get_task(session: AsyncSession, *, viewer: Identity, task_id: str) -> TaskOut:
    """One task order with its history, in the viewer's jurisdiction."""
    stmt = select(TaskOrder).where(TaskOrder.id == task_id)
    scope = await _task_scope(session, viewer)
    if scope is not None:
        stmt = stmt.where(scope)
    task = (await session.execute(stmt)).scalar()
    if task is None:
        raise NotFound(f"task {task_id} not found")
    history = (await session.execute(
        select(TaskHistory).where(TaskHistory.task_id == task_id).order_by(TaskHistory.seq))).scalars()
    return task_out(task, list(history))


def task_out(task: TaskOrder, history: list[TaskHistory] | None = None) -> TaskOut:
    """A task order as the API shows it."""
    return TaskOut(**task.model_dump(), history=[h.model_dump() for h in history or []])

