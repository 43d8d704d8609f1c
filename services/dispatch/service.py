"""Dispatch use cases: units and areas, incident reception, dispatch and arrival."""
from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.dispatch import directory as unit_directory
from services.dispatch.areas import parse_area
from services.dispatch.directory import Directory
from services.dispatch.models import Incident, Unit
from services.dispatch.routing import RoutingTable
from services.dispatch.schemas import IncidentIn, IncidentOut, StationOut, UnitIn
from shared.auth import Identity
from shared.db import utcnow
from shared.errors import Conflict, Forbidden, Invalid, InvalidParameter, NotFound
from shared.events import (
    Fact,
    IncidentArrived,
    IncidentDispatched,
    IncidentReported,
    PartyFacts,
    PersonFacts,
    StationClassified,
    UnitUpserted,
    VehicleFacts,
)
from shared.outbox import Outbox
from shared.pagination import Keyset, PageRequest
from shared.privacy import hash_identity, mask_identity
from shared.scope import Scope

INCIDENTS = Incident.__table__
ARRIVAL_THRESHOLD_S = 300  # the 5-minute arrival rate counts arrivals at most this long after dispatch

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
    await unit_directory.bump(session, areas=True)
    return saved


def units_from_geojson(collection: Any) -> list[UnitIn]:
    """Units from a GeoJSON FeatureCollection: properties give id, name, parent_id…, the geometry the area."""
    if not isinstance(collection, dict) or collection.get("type") != "FeatureCollection" \
            or not isinstance(collection.get("features"), list) or not collection["features"]:
        raise Invalid("expected a GeoJSON FeatureCollection with at least one feature")
    units, errors = [], []
    for index, feature in enumerate(collection["features"]):
        props = feature.get("properties") if isinstance(feature, dict) else None
        if not isinstance(props, dict):
            errors.append({"loc": ["features", index, "properties"], "msg": "a feature needs properties"})
            continue
        try:
            units.append(UnitIn.model_validate({"kind": "station", **props, "area": feature.get("geometry")}))
        except ValidationError as exc:
            errors += [{"loc": ["features", index, "properties", *e["loc"]], "msg": e["msg"]} for e in exc.errors()]
    if errors:
        raise Invalid("some features are not valid units", errors=errors)
    return units


UNIT_ORDER = Keyset(Unit.id)
INCIDENT_ORDER = Keyset(Incident.occurred_at, Incident.id, descending=True)


async def list_units(session: AsyncSession, *, request: PageRequest, kind: str | None = None,
                     ) -> tuple[list[Unit], str | None]:
    """One page of units in id order, optionally of one kind."""
    stmt = select(Unit)
    if kind:
        stmt = stmt.where(Unit.kind == kind)
    return await UNIT_ORDER.page(session, stmt, request)


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


async def apply_classification(session: AsyncSession, *, fact: StationClassified) -> None:
    """Keep the read copy of a station's mode; new work follows it, open work stays."""
    unit = await session.get(Unit, fact.station_id)
    if unit is None:
        return  # a station dispatch does not know (yet): nothing to route there
    unit.mode, unit.mode_source, unit.updated_at = fact.mode, fact.source, utcnow()
    session.add(unit)
    await unit_directory.bump(session, areas=False)  # every replica's next order sees the new mode


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


async def report_incidents(session: AsyncSession, *, outbox: Outbox, items: list[IncidentIn], directory: Directory,
                           routing: RoutingTable, identity_key: str,
                           reporter: str) -> list[tuple[Incident, bool]]:
    """Receive incidents (idempotent on external_id, also within the list): place, dispatch, announce each.

    Returns (incident, created) per item, in order. One query finds those already received; the new
    ones go in with one INSERT, and their events with one INSERT per event type (reported, dispatched,
    arrived: in that order, so each incident's events keep their order on the stream).
    """
    wanted = {data.external_id for data in items}
    known = {i.external_id: i for i in (await session.execute(
        select(Incident).where(Incident.external_id.in_(wanted)))).scalars()}
    results, new = [], []
    for data in items:
        if data.external_id in known:
            results.append((known[data.external_id], False))
            continue
        received = _receive(data, directory=directory, routing=routing, identity_key=identity_key,
                            reporter=reporter)
        known[data.external_id] = received.incident
        new.append(received)
        results.append((received.incident, True))
    if new:
        await session.execute(insert(INCIDENTS), [{c: getattr(r.incident, c) for c in INCIDENTS.c.keys()} for r in new])
        for fact_type in (IncidentReported, IncidentDispatched, IncidentArrived):
            facts = [fact for r in new for fact in r.facts if type(fact) is fact_type]
            if facts:
                await outbox.stage_many(session, fact_type, facts, subjects=[f.incident_id for f in facts])
    return results


async def report_incident(session: AsyncSession, *, outbox: Outbox, data: IncidentIn, directory: Directory,
                          routing: RoutingTable, identity_key: str, reporter: str) -> tuple[Incident, bool]:
    """Receive one incident: place it, dispatch it, announce it. Returns (incident, created)."""
    [result] = await report_incidents(session, outbox=outbox, items=[data], directory=directory, routing=routing,
                                      identity_key=identity_key, reporter=reporter)
    return result


@dataclass
class _Received:
    incident: Incident
    facts: list[Fact]


def _receive(data: IncidentIn, *, directory: Directory, routing: RoutingTable, identity_key: str,
             reporter: str) -> _Received:
    """Place and dispatch one incident in memory (no database access): the row and its events."""
    now = utcnow()
    parties = [_party_facts(p, identity_key) for p in data.parties]
    station_id = directory.areas.locate(data.location.lat, data.location.lon)
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
        station = directory.units[station_id]
        target = routing.incident_target(station.mode)
        incident.handling_unit_id, note = directory.resolve_target(station, target)
        incident.mode = station.mode
        incident.dispatch_reason = (
            f"in station {station_id}'s area ({station.mode or 'mode not yet known'}): accidents go to the {target}"
            + note
        )
        incident.dispatched_at = data.dispatched_at or now
    facts: list[Fact] = [IncidentReported(
        incident_id=incident.id, external_id=incident.external_id, kind=incident.kind,
        occurred_at=incident.occurred_at, location=data.location, station_id=station_id,
        handling_unit_id=incident.handling_unit_id, severity=data.severity, parties=parties,
        hit_and_run=data.hit_and_run, lighting=data.lighting, junction=data.junction, school_zone=data.school_zone,
    )]
    if incident.handling_unit_id is not None and incident.dispatched_at is not None:
        facts.append(IncidentDispatched(
            incident_id=incident.id, station_id=station_id, handling_unit_id=incident.handling_unit_id,
            mode=incident.mode, reported_at=incident.reported_at, dispatched_at=incident.dispatched_at,
            reason=incident.dispatch_reason))
        if data.arrived_at is not None:  # a back-fill of history that already knows the arrival
            incident.arrived_at, incident.arrived_by = data.arrived_at, reporter
            incident.response_s = (data.arrived_at - incident.dispatched_at).total_seconds()
            facts.append(_arrival_fact(incident))
    return _Received(incident, facts)


def _arrival_fact(incident: Incident) -> IncidentArrived:
    assert incident.arrived_at is not None and incident.response_s is not None and incident.handling_unit_id
    return IncidentArrived(
        incident_id=incident.id, station_id=incident.station_id, handling_unit_id=incident.handling_unit_id,
        mode=incident.mode, reported_at=incident.reported_at, arrived_at=incident.arrived_at,
        response_s=max(incident.response_s, 0.0), within_5_min=incident.response_s <= ARRIVAL_THRESHOLD_S,
    )


async def _announce_arrival(session: AsyncSession, outbox: Outbox, incident: Incident) -> None:
    await outbox.stage(session, _arrival_fact(incident), subject=incident.id)


async def may_act_for(session: AsyncSession, viewer: Identity, unit_id: str) -> bool:
    """Whether the viewer is the unit itself or above it (its squadron, the command centre)."""
    try:
        scope = Scope.of(viewer)
    except Forbidden:
        return False
    if scope.covers(None, unit_ids=(unit_id,)):
        return True
    unit = await session.get(Unit, unit_id) if scope.kind == "zone" else None
    return unit is not None and scope.covers(unit.id, squadron_id=unit.parent_id)


async def report_arrival(session: AsyncSession, *, outbox: Outbox, viewer: Identity, incident_id: str,
                         arrived_at: dt.datetime | None) -> tuple[Incident, bool]:
    """The handling unit (or a unit above it) reports arrival at the scene. Returns (incident, changed).

    Without a time the server's clock says when (a phone's tap); reporting so again once arrived changes
    nothing. Reporting the same arrival time again changes nothing; a different time once one is recorded is
    a Conflict.
    """
    incident = await get_incident(session, viewer=viewer, incident_id=incident_id)
    if arrived_at is None:
        if incident.arrived_at is not None and await may_act_for(session, viewer, incident.handling_unit_id or ""):
            return incident, False
        arrived_at = utcnow()
    arrived_at = arrived_at.astimezone(dt.UTC)
    if incident.handling_unit_id is None or incident.dispatched_at is None:
        raise Conflict(f"incident {incident_id} was not dispatched to any unit (outside every station area)")
    if not await may_act_for(session, viewer, incident.handling_unit_id):
        raise Forbidden(f"only the handling unit {incident.handling_unit_id} or a unit above it reports arrival")
    if incident.arrived_at is not None:
        if incident.arrived_at == arrived_at:
            return incident, False
        raise Conflict(f"arrival at incident {incident_id} was already reported at {incident.arrived_at.isoformat()}")
    if arrived_at < incident.dispatched_at:
        raise Invalid(f"arrived_at is before the dispatch at {incident.dispatched_at.isoformat()}")
    if arrived_at > utcnow() + dt.timedelta(minutes=5):
        raise Invalid("arrived_at lies in the future")
    response_s = (arrived_at - incident.dispatched_at).total_seconds()
    done = await session.execute(
        update(Incident).where(Incident.id == incident.id, Incident.arrived_at.is_(None))
        .values(arrived_at=arrived_at, response_s=response_s, arrived_by=viewer.username)
        .execution_options(synchronize_session=False))
    if done.rowcount != 1:
        raise Conflict(f"arrival at incident {incident_id} was reported meanwhile; reload it")
    incident.arrived_at, incident.response_s, incident.arrived_by = arrived_at, response_s, viewer.username
    await _announce_arrival(session, outbox, incident)
    return incident, True


def incident_out(incident: Incident) -> IncidentOut:
    """An incident as the API shows it."""
    details = incident.details or {}
    return IncidentOut(
        id=incident.id, external_id=incident.external_id, kind=incident.kind, occurred_at=incident.occurred_at,
        reported_at=incident.reported_at, location={"lat": incident.lat, "lon": incident.lon},
        station_id=incident.station_id, outside_area=incident.outside_area,
        handling_unit_id=incident.handling_unit_id, dispatch_reason=incident.dispatch_reason,
        dispatched_at=incident.dispatched_at, arrived_at=incident.arrived_at, mode=incident.mode,
        response_s=incident.response_s,
        within_5_min=None if incident.response_s is None else incident.response_s <= ARRIVAL_THRESHOLD_S,
        severity=details.get("severity", {}), parties=details.get("parties", []),
    )


async def zone_station_ids(session: AsyncSession, squadron_id: str) -> list[str]:
    """The stations in a squadron's patrol zone."""
    rows = await session.execute(select(Unit.id).where(Unit.parent_id == squadron_id, Unit.kind == "station"))
    return list(rows.scalars())


async def incident_scope(session: AsyncSession, viewer: Identity) -> Any:
    """A WHERE clause limiting incidents to the viewer's jurisdiction (None: everything); a platform sees the
    incidents it reported."""
    scope = Scope.of(viewer, platforms=True, what="incidents")
    zone = await zone_station_ids(session, scope.unit_id or "") if scope.kind == "zone" else ()
    units = (Incident.handling_unit_id,) if scope.kind == "zone" else ()
    return scope.clause(Incident.station_id, zone=zone, units=units, owner=Incident.reported_by)


async def list_incidents(session: AsyncSession, *, viewer: Identity, request: PageRequest,
                         station_id: str | None = None, since: dt.datetime | None = None,
                         until: dt.datetime | None = None,
                         outside_area: bool | None = None) -> tuple[list[Incident], str | None]:
    """Incidents in the viewer's jurisdiction, newest first, one page."""
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise InvalidParameter(name, f"{name} needs an offset, e.g. 2024-05-01T00:00:00+08:00")
    stmt = select(Incident)
    scope = await incident_scope(session, viewer)
    if scope is not None:
        stmt = stmt.where(scope)
    if station_id:
        stmt = stmt.where(Incident.station_id == station_id)
    if outside_area is not None:
        stmt = stmt.where(Incident.outside_area == outside_area)
    if since:
        stmt = stmt.where(Incident.occurred_at >= since)
    if until:
        stmt = stmt.where(Incident.occurred_at < until)
    return await INCIDENT_ORDER.page(session, stmt, request)


async def get_incident(session: AsyncSession, *, viewer: Identity, incident_id: str) -> Incident:
    """One incident in the viewer's jurisdiction (NotFound otherwise, so existence does not leak)."""
    return await one_in_scope(session, Incident, incident_id, await incident_scope(session, viewer), "incident")


async def one_in_scope(session: AsyncSession, table: Any, row_id: str, scope: Any, what: str) -> Any:
    """The row with this id if the scope's WHERE clause (None: no limit) holds it; NotFound otherwise."""
    stmt = select(table).where(table.id == row_id)
    if scope is not None:
        stmt = stmt.where(scope)
    row = (await session.execute(stmt)).scalar()
    if row is None:
        raise NotFound(f"{what} {row_id} not found")
    return row
