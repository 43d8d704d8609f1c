"""Dispatch's HTTP door: translate requests into use cases and results into responses."""
from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy.exc import IntegrityError

from services.dispatch import areas, directory, rates, routing, service, tasks
from services.dispatch.schemas import (
    ArrivalIn,
    ArrivalRatesOut,
    IncidentBatchOut,
    IncidentIn,
    IncidentItemResult,
    IncidentOut,
    StationOut,
    UnitIn,
    UnitOut,
)
from services.dispatch.stream import frames
from services.dispatch.task_views import BulkIn, BulkOut, TaskOut, TransitionIn
from shared.auth import Identity
from shared.batch import batch_body_schema, read_batch, validated
from shared.errors import Conflict, Forbidden, Invalid
from shared.events import UnitKind
from shared.i18n import LanguageDep
from shared.pagination import Page, PageDep
from shared.runtime import CallerDep, Runtime, RuntimeDep
from shared.scope import Scope

router = APIRouter(prefix="/api/v1")
BATCH_MAX = 1000


def _admin(who: Identity) -> None:
    if who.role != "admin":
        raise Forbidden("only an admin may change units or the routing table")


# --- units ---------------------------------------------------------------------------------------

@router.post("/units", response_model=list[UnitOut], tags=["units"])
async def upsert_units(units: list[UnitIn] | UnitIn, rt: RuntimeDep, who: CallerDep) -> list[UnitOut]:
    """Create or update units, idempotent on id (admin)."""
    _admin(who)
    batch = units if isinstance(units, list) else [units]
    async with rt.transaction() as session:
        saved = await service.upsert_units(session, outbox=rt.outbox, units=batch)
    return [UnitOut.model_validate(u) for u in saved]


@router.post("/units:import", response_model=list[UnitOut], tags=["units"], openapi_extra={
    "requestBody": {"content": {"application/geo+json": {"schema": {"type": "object"}},
                                "application/json": {"schema": {"type": "object"}}}, "required": True}})
async def import_units(request: Request, rt: RuntimeDep, who: CallerDep) -> list[UnitOut]:
    """Create or update stations from a GeoJSON FeatureCollection of their areas (admin).

    Each feature's `properties` carry `id`, `name`, `parent_id`, optionally `kind` (default station),
    `area_type`, `population`, `area_km2`; its geometry is the area.
    """
    _admin(who)
    units = service.units_from_geojson(_json_body(await request.body()))
    async with rt.transaction() as session:
        saved = await service.upsert_units(session, outbox=rt.outbox, units=units)
    return [UnitOut.model_validate(u) for u in saved]


def _officer(who: Identity) -> None:
    """Units and stations are for officers and the command centre (a platform client only reports)."""
    Scope.of(who, what="units")


@router.get("/units", response_model=Page[UnitOut], tags=["units"])
async def list_units(rt: RuntimeDep, who: CallerDep, page: PageDep, kind: UnitKind | None = None) -> Page:
    """Units in id order, optionally of one kind."""
    _officer(who)
    async with rt.sessions() as session:
        rows, next_cursor = await service.list_units(session, request=page, kind=kind)
    return Page(items=[UnitOut.model_validate(u) for u in rows], next_cursor=next_cursor)


@router.get("/units/areas", response_model=areas.AreaCollection, tags=["units"],
            responses={200: {"content": {"application/geo+json": {}}}})
async def unit_areas(rt: RuntimeDep, who: CallerDep, page: PageDep) -> Response:
    """Stations' responsibility areas as a GeoJSON FeatureCollection (for the district map), in station id order;
    `next_cursor` (a foreign member) pages like every list."""
    _officer(who)
    async with rt.sessions() as session:
        rows, next_cursor = await service.list_units(session, request=page, kind="station")
    collection = areas.AreaCollection(features=[areas.area_feature(u) for u in rows if isinstance(u.area, dict)],
                                      next_cursor=next_cursor)
    return Response(collection.model_dump_json(), media_type="application/geo+json")


@router.get("/units/{unit_id}", response_model=UnitOut, tags=["units"])
async def get_unit(unit_id: str, rt: RuntimeDep, who: CallerDep) -> UnitOut:
    """One unit."""
    _officer(who)
    async with rt.sessions() as session:
        return UnitOut.model_validate(await service.get_unit(session, unit_id=unit_id))


@router.get("/stations", response_model=Page[StationOut], tags=["units"])
async def list_stations(rt: RuntimeDep, who: CallerDep, page: PageDep) -> Page:
    """Stations with area type, population, centroid and current mode, in id order."""
    _officer(who)
    async with rt.sessions() as session:
        rows, next_cursor = await service.list_units(session, request=page, kind="station")
    return Page(items=[service.station_out(u) for u in rows], next_cursor=next_cursor)


# --- incidents -----------------------------------------------------------------------------------

def _may_report(who: Identity) -> None:
    if who.role not in ("admin", "command", "platform"):
        raise Forbidden("only platforms and the command centre report incidents")


@router.post("/incidents", response_model=IncidentOut, status_code=201, tags=["incidents"],
             responses={200: {"model": IncidentOut, "description": "already received: the first result"}})
async def report_incident(data: IncidentIn, rt: RuntimeDep, who: CallerDep, response: Response) -> IncidentOut:
    """Receive an incident (idempotent on external_id): place it, dispatch it, announce it."""
    _may_report(who)
    [(incident, created)] = await _store(rt, who, [data])
    if not created:
        response.status_code = 200
    return service.incident_out(incident)


async def _store(rt: Runtime, who: Identity, items: list[IncidentIn]) -> list[tuple[Any, bool]]:
    """Store incidents in one transaction; if a concurrent request won a race on an external_id, one by one."""
    kwargs = dict(outbox=rt.outbox, identity_key=rt.settings.identity_hash_key.get_secret_value(),
                  reporter=who.username)
    try:
        async with rt.transaction() as session:
            table = (await routing.in_force(rt.state, session, ttl_s=rt.settings.area_cache_s))[1]
            units = await directory.current(rt.state, session)
            return await service.report_incidents(session, items=items, routing=table, directory=units, **kwargs)
    except IntegrityError:
        if len(items) > 1:
            return [result for data in items for result in await _store(rt, who, [data])]
        async with rt.sessions() as session:
            return [(await service.find_incident(session, external_id=items[0].external_id), False)]


def _json_body(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Invalid(f"the body is not valid JSON: {exc}") from exc


@router.post("/incidents:batch", response_model=IncidentBatchOut, tags=["incidents"], openapi_extra={
    "requestBody": batch_body_schema("#/components/schemas/IncidentIn")})
async def report_incident_batch(request: Request, rt: RuntimeDep, who: CallerDep) -> IncidentBatchOut:
    """Receive up to 1000 incidents (back-fills); per-item results in request order, idempotent on external_id.

    Each item is checked on its own: a bad item is rejected (422 with its errors) and the rest go in.
    """
    _may_report(who)
    raw_items = await read_batch(request)
    valid, rejected = validated(raw_items, IncidentIn, IncidentItemResult)
    results: list[IncidentItemResult | None] = [rejected.get(i) for i in range(len(raw_items))]  # type: ignore[misc]
    chunk = rt.settings.batch_chunk
    for start in range(0, len(valid), chunk):
        part = valid[start:start + chunk]
        stored = await _store(rt, who, [data for _, data in part])
        for (index, _), (incident, created) in zip(part, stored, strict=True):
            results[index] = IncidentItemResult(index=index, status=201 if created else 200, id=incident.id,
                                                station_id=incident.station_id)
    return IncidentBatchOut.of([r for r in results if r is not None])


@router.get("/incidents", response_model=Page[IncidentOut], tags=["incidents"])
async def list_incidents(rt: RuntimeDep, who: CallerDep, station_id: str | None = None,
                         since: dt.datetime | None = None, until: dt.datetime | None = None,
                         outside_area: Annotated[bool | None, Query(
                             description="true: only incidents outside every station area (for the command centre)")
                         ] = None, *, page: PageDep) -> Page:
    """Incidents in the caller's jurisdiction, newest first."""
    async with rt.sessions() as session:
        rows, next_cursor = await service.list_incidents(session, viewer=who, request=page, station_id=station_id,
                                                         since=since, until=until, outside_area=outside_area)
    return Page(items=[service.incident_out(r) for r in rows], next_cursor=next_cursor)


@router.get("/incidents/{incident_id}", response_model=IncidentOut, tags=["incidents"])
async def get_incident(incident_id: str, rt: RuntimeDep, who: CallerDep) -> IncidentOut:
    """One incident with its dispatch times."""
    async with rt.sessions() as session:
        return service.incident_out(await service.get_incident(session, viewer=who, incident_id=incident_id))


@router.post("/incidents/{incident_id}/arrival", response_model=IncidentOut, tags=["incidents"])
async def report_arrival(incident_id: str, data: ArrivalIn, rt: RuntimeDep, who: CallerDep) -> IncidentOut:
    """The handling unit (or a unit above it) reports arrival; the same time again is a no-op, another a 409.

    Without `arrived_at` the server's clock gives the time (the phone's tap) and a repeat changes nothing."""
    async with rt.transaction() as session:
        incident, _ = await service.report_arrival(session, outbox=rt.outbox, viewer=who, incident_id=incident_id,
                                                   arrived_at=data.arrived_at)
    return service.incident_out(incident)


@router.get("/arrival-rates", response_model=ArrivalRatesOut, tags=["incidents"])
async def arrival_rates(rt: RuntimeDep, who: CallerDep,
                        group_by: rates.GroupBy = "district", since: dt.datetime | None = None,
                        until: dt.datetime | None = None) -> ArrivalRatesOut:
    """The 5-minute arrival rate per unit, station, mode or district, for incidents that occurred in [since, until)."""
    async with rt.sessions() as session:
        return await rates.arrival_rates(session, viewer=who, group_by=group_by, since=since, until=until)


# --- routing table -------------------------------------------------------------------------------

def _routing_out(row: Any) -> dict[str, Any]:
    return {**row.body, "version": row.version, "created_by": row.created_by, "created_at": row.created_at}


@router.get("/routing-table", tags=["tasks"])
async def get_routing_table(rt: RuntimeDep, who: CallerDep, version: int | None = None) -> dict[str, Any]:
    """The routing table in force (or an older version): category × mode → receiving unit."""
    Scope.of(who, what="the routing table")
    async with rt.sessions() as session:
        row = await (routing.get_version(session, version=version) if version else routing.newest(session))
    return _routing_out(row)


@router.put("/routing-table", tags=["tasks"])
async def put_routing_table(request: Request, rt: RuntimeDep, who: CallerDep) -> dict[str, Any]:
    """Store an edited routing table as the next version (admin); new orders follow it, open ones stay."""
    _admin(who)
    body = _json_body(await request.body())
    if not isinstance(body, dict):
        raise Invalid("the routing table is a JSON object")
    body.pop("created_by", None)
    body.pop("created_at", None)
    try:
        async with rt.transaction() as session:
            row = await routing.save(session, data=body, by=who.username)
    except IntegrityError as exc:
        raise Conflict("another edit of the routing table was stored meanwhile; reload and edit the newest") from exc
    rt.state.pop("routing", None)
    return _routing_out(row)


# --- tasks ---------------------------------------------------------------------------------------

@router.get("/tasks", response_model=Page[TaskOut], tags=["tasks"])
async def list_tasks(rt: RuntimeDep, who: CallerDep, lang: LanguageDep, status: str | None = None,
                     category: str | None = None, unit_id: str | None = None, incident_id: str | None = None,
                     overdue: bool | None = None, *, page: PageDep) -> Page:
    """Task orders in the caller's jurisdiction, newest first (texts in the caller's language)."""
    async with rt.sessions() as session:
        rows, next_cursor = await tasks.list_tasks(
            session, viewer=who, status=status, category=category, unit_id=unit_id, incident_id=incident_id,
            overdue=overdue, request=page)
    return Page(items=[tasks.task_out(r, lang=lang) for r in rows], next_cursor=next_cursor)


@router.get("/tasks/stream", tags=["tasks"], response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "events task.changed, task.overdue, task.escalated; heartbeat comments"}})
async def stream_tasks(rt: RuntimeDep, who: CallerDep, lang: LanguageDep,
                       last_event_id: Annotated[str | None, Header(description="resume after this event id "
                                                                   "(docs/API.md)")] = None) -> StreamingResponse:
    """Server-sent events of the caller's new and changed task orders (scoped like GET /tasks); resumable with
    `Last-Event-ID` (the events missed since, within a bounded window)."""
    visible = await _visible_to(rt, who)
    feed = rt.state["feed"]
    after = int(last_event_id) if last_event_id and last_event_id.strip().isdigit() else None

    async def body():  # noqa: ANN202 - an async generator of SSE frames
        with feed.listen() as queue:  # listening first: what arrives while the backlog is read is kept
            backlog = [] if last_event_id is None else None if after is None else \
                await feed.backlog(after, rt.settings.sse_resume_window)  # not an integer: too far back
            async for frame in frames(queue, visible, heartbeat_s=rt.settings.sse_heartbeat_s, backlog=backlog,
                                      resumed=last_event_id is not None, lang=lang):
                yield frame

    return StreamingResponse(body(), media_type="text/event-stream",
                             headers={"cache-control": "no-cache", "x-accel-buffering": "no"})


async def _visible_to(rt: Runtime, who: Identity) -> Any:
    """A predicate on task event payloads: whether the caller's jurisdiction holds the order (its unit, or the
    unit it was escalated to)."""
    scope = Scope.of(who, what="task orders")
    zone: set[str] = set()
    if scope.kind == "zone":
        async with rt.sessions() as session:
            zone = set(await service.zone_station_ids(session, scope.unit_id or ""))
    return lambda data: scope.covers(data.get("unit_id"), unit_ids=(data.get("unit_id"), data.get("supervisor_id")),
                                     squadron_id=scope.unit_id if data.get("unit_id") in zone else None)


@router.get("/tasks/{task_id}", response_model=TaskOut, tags=["tasks"])
async def get_task(task_id: str, rt: RuntimeDep, who: CallerDep, lang: LanguageDep) -> TaskOut:
    """One task order with its history and routing reason (texts in the caller's language)."""
    async with rt.sessions() as session:
        return await tasks.get_task(session, viewer=who, task_id=task_id, lang=lang)


@router.post("/tasks/{task_id}/transitions", response_model=TaskOut, tags=["tasks"],
             responses={409: {"description": "the action is not allowed from the current status"}})
async def transition_task(task_id: str, data: TransitionIn, rt: RuntimeDep, who: CallerDep,
                          lang: LanguageDep) -> TaskOut:
    """One step of the loop: accept, start, complete_milestone, submit, verify, return or reassign."""
    async with rt.transaction() as session:  # one transaction: the step, then the history it completes
        task = await tasks.transition(session, outbox=rt.outbox, viewer=who, task_id=task_id, data=data)
        history = await tasks.history_of(session, task_id)
    return tasks.task_out(task, history, lang=lang)


@router.post("/tasks:bulk", response_model=BulkOut, tags=["tasks"])
async def bulk_tasks(data: BulkIn, rt: RuntimeDep, who: CallerDep) -> BulkOut:
    """Reassign or extend many task orders at once (command staff); per-task results."""
    async with rt.transaction() as session:
        return await tasks.bulk(session, outbox=rt.outbox, viewer=who, data=data)
