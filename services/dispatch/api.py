"""Dispatch's HTTP door: translate requests into use cases and results into responses."""
from __future__ import annotations

import datetime as dt
import time
from typing import Annotated

from fastapi import APIRouter, Query, Response
from sqlalchemy.exc import IntegrityError

from services.dispatch import service
from services.dispatch.areas import AreaIndex
from services.dispatch.models import IncidentIn, IncidentOut, StationOut, TaskOut, UnitIn, UnitOut
from shared.errors import Forbidden
from shared.pagination import Page
from shared.runtime import CallerDep, Runtime, RuntimeDep

router = APIRouter(prefix="/api/v1")


async def area_index(rt: Runtime) -> AreaIndex:
    """This replica's area index, rebuilt when older than `area_cache_s` or after a local change."""
    cached = rt.state.get("areas")
    if cached is None or time.monotonic() - cached[1] > rt.settings.area_cache_s:
        async with rt.sessions() as session:
            cached = (await service.load_area_index(session), time.monotonic())
        rt.state["areas"] = cached
    return cached[0]


@router.post("/units", response_model=list[UnitOut], tags=["units"])
async def upsert_units(units: list[UnitIn] | UnitIn, rt: RuntimeDep, who: CallerDep) -> list[UnitOut]:
    """Create or update units, idempotent on id (admin)."""
    if who.role != "admin":
        raise Forbidden("only an admin may change units")
    batch = units if isinstance(units, list) else [units]
    async with rt.transaction() as session:
        saved = await service.upsert_units(session, outbox=rt.outbox, units=batch)
    rt.state.pop("areas", None)
    return [UnitOut.model_validate(u) for u in saved]


@router.get("/units", response_model=list[UnitOut], tags=["units"])
async def list_units(rt: RuntimeDep, who: CallerDep, kind: str | None = None) -> list[UnitOut]:
    """All units, optionally of one kind."""
    async with rt.sessions() as session:
        return [UnitOut.model_validate(u) for u in await service.list_units(session, kind=kind)]


@router.get("/units/{unit_id}", response_model=UnitOut, tags=["units"])
async def get_unit(unit_id: str, rt: RuntimeDep, who: CallerDep) -> UnitOut:
    """One unit."""
    async with rt.sessions() as session:
        return UnitOut.model_validate(await service.get_unit(session, unit_id=unit_id))


@router.get("/stations", response_model=list[StationOut], tags=["units"])
async def list_stations(rt: RuntimeDep, who: CallerDep) -> list[StationOut]:
    """Stations with area type, population, centroid and current mode."""
    async with rt.sessions() as session:
        return [service.station_out(u) for u in await service.list_units(session, kind="station")]


@router.post("/incidents", response_model=IncidentOut, status_code=201, tags=["incidents"],
             responses={200: {"model": IncidentOut, "description": "already received: the first result"}})
async def report_incident(data: IncidentIn, rt: RuntimeDep, who: CallerDep, response: Response) -> IncidentOut:
    """Receive an incident (idempotent on external_id): place it, dispatch it, announce it."""
    if who.role not in ("admin", "command", "platform"):
        raise Forbidden("only platforms and the command centre report incidents")
    areas = await area_index(rt)
    try:
        async with rt.transaction() as session:
            incident, created = await service.report_incident(
                session, outbox=rt.outbox, data=data, areas=areas, routing=rt.state["routing"],
                identity_key=rt.settings.identity_hash_key.get_secret_value(), reporter=who.username)
    except IntegrityError:  # a concurrent request with the same external_id won the race
        async with rt.sessions() as session:
            incident, created = await service.find_incident(session, external_id=data.external_id), False
    if not created:
        response.status_code = 200
    return service.incident_out(incident)


@router.get("/incidents", response_model=Page[IncidentOut], tags=["incidents"])
async def list_incidents(rt: RuntimeDep, who: CallerDep, station_id: str | None = None,
                         since: dt.datetime | None = None, until: dt.datetime | None = None,
                         limit: Annotated[int, Query(ge=1, le=500)] = 50, cursor: str | None = None) -> Page:
    """Incidents in the caller's jurisdiction, newest first."""
    async with rt.sessions() as session:
        rows, next_cursor = await service.list_incidents(session, viewer=who, station_id=station_id, since=since,
                                                         until=until, limit=limit, cursor=cursor)
    return Page(items=[service.incident_out(r) for r in rows], next_cursor=next_cursor)


@router.get("/incidents/{incident_id}", response_model=IncidentOut, tags=["incidents"])
async def get_incident(incident_id: str, rt: RuntimeDep, who: CallerDep) -> IncidentOut:
    """One incident with its dispatch times."""
    async with rt.sessions() as session:
        return service.incident_out(await service.get_incident(session, viewer=who, incident_id=incident_id))


@router.get("/tasks", response_model=Page[TaskOut], tags=["tasks"])
async def list_tasks(rt: RuntimeDep, who: CallerDep, status: str | None = None, category: str | None = None,
                     unit_id: str | None = None, incident_id: str | None = None, overdue: bool | None = None,
                     limit: Annotated[int, Query(ge=1, le=500)] = 50, cursor: str | None = None) -> Page:
    """Task orders in the caller's jurisdiction, newest first."""
    async with rt.sessions() as session:
        rows, next_cursor = await service.list_tasks(
            session, viewer=who, status=status, category=category, unit_id=unit_id, incident_id=incident_id,
            overdue=overdue, limit=limit, cursor=cursor)
    return Page(items=[service.task_out(r) for r in rows], next_cursor=next_cursor)


@router.get("/tasks/{task_id}", response_model=TaskOut, tags=["tasks"])
async def get_task(task_id: str, rt: RuntimeDep, who: CallerDep) -> TaskOut:
    """One task order with its history and routing reason."""
    async with rt.sessions() as session:
        return await service.get_task(session, viewer=who, task_id=task_id)
