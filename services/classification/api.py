"""Classification's HTTP door: features (one station or bulk CSV), runs, modes and overrides."""
from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from services.classification import runs, service
from services.classification.classifier import paused_gc
from services.classification.config import ClassificationSettings
from services.classification.features import month_of
from services.classification.models import (
    PERIOD_PATTERN,
    FeaturesIn,
    FeaturesOut,
    ImportOut,
    ModeOut,
    OverrideIn,
    RunIn,
    RunOut,
    RunSummary,
)
from shared.auth import Identity
from shared.db import utcnow
from shared.errors import DomainError, Forbidden, Invalid
from shared.pagination import Page, PageDep
from shared.runtime import CallerDep, RuntimeDep
from shared.scope import Scope

router = APIRouter(prefix="/api/v1")
MAX_CSV_BYTES = 64 * 1024 * 1024


class UnsupportedMediaType(DomainError):
    status, kind, title = 415, "unsupported-media-type", "Unsupported media type"


def _command_only(who: Identity, what: str) -> None:
    if not Scope.of(who, platforms=True).whole:
        raise Forbidden(f"only admin and command staff {what}")


@router.put("/stations/{station_id}/features", status_code=204, tags=["classification"])
async def put_features(station_id: str, data: FeaturesIn, rt: RuntimeDep, who: CallerDep) -> Response:
    """Import precomputed features of a station for a period (admin, command)."""
    _command_only(who, "import features")
    async with rt.transaction() as session:
        await service.put_features(session, station_id=station_id, data=data)
    return Response(status_code=204)


@router.get("/stations/{station_id}/features", response_model=FeaturesOut, tags=["classification"])
async def get_features(station_id: str, rt: RuntimeDep, who: CallerDep,
                       period: Annotated[str | None, Query(pattern=PERIOD_PATTERN)] = None) -> FeaturesOut:
    """A station's features for a period (default: the 12 months to this month): imported, or from events."""
    settings: ClassificationSettings = rt.settings  # type: ignore[assignment]
    async with rt.sessions() as session:
        return await service.get_features(session, station_id=station_id, who=who,
                                          period=period or month_of(utcnow(), settings.timezone))


@router.post("/classification/features", response_model=ImportOut, tags=["classification"],
             openapi_extra={"requestBody": {"content": {"text/csv": {"schema": {"type": "string"}}}}})
async def import_features_csv(request: Request, rt: RuntimeDep, who: CallerDep) -> ImportOut:
    """Bulk import: CSV `station_id,period,<feature>,…` (text/csv); every station must be known (admin, command)."""
    _command_only(who, "import features")
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in ("text/csv", "application/csv"):
        raise UnsupportedMediaType("send the features as text/csv: station_id,period,<feature>,…")
    body = await request.body()
    if len(body) > MAX_CSV_BYTES:
        raise Invalid(f"the CSV is larger than {MAX_CSV_BYTES // (1024 * 1024)} MiB; split it")
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Invalid("the CSV must be UTF-8") from exc
    settings: ClassificationSettings = rt.settings  # type: ignore[assignment]
    with paused_gc():  # tens of thousands of small dicts: no cycles to find, only time to lose
        sets = await asyncio.to_thread(service.parse_features_csv, text, max_rows=settings.max_csv_rows)
        async with rt.transaction() as session:
            return await service.import_features(session, sets=sets)


@router.post("/classification/runs", response_model=RunOut, status_code=201, tags=["classification"])
async def start_run(data: RunIn, rt: RuntimeDep, who: CallerDep) -> RunOut:
    """Run K-Means now (it finishes within the request: `status` says `done`); `dry_run` changes nothing."""
    _command_only(who, "run classification")
    settings: ClassificationSettings = rt.settings  # type: ignore[assignment]
    async with rt.transaction() as session:
        return await runs.start_run(session, outbox=rt.outbox, data=data, settings=settings, who=who)


@router.get("/classification/runs", response_model=Page[RunSummary], tags=["classification"])
async def list_runs(rt: RuntimeDep, who: CallerDep, page: PageDep) -> Page[RunSummary]:
    """Runs, newest first (admin, command)."""
    _command_only(who, "list classification runs")
    async with rt.sessions() as session:
        return await runs.list_runs(session, page=page)


@router.get("/classification/runs/{run_id}", response_model=RunOut, tags=["classification"])
async def get_run(run_id: str, rt: RuntimeDep, who: CallerDep, page: PageDep) -> RunOut:
    """A stored run with a page of its assignments by station id (`limit`, `cursor` → `assignments_next_cursor`;
    admin, command)."""
    _command_only(who, "read classification runs")
    async with rt.sessions() as session:
        return await runs.get_run(session, run_id=run_id, page=page)


@router.get("/classification/modes", response_model=Page[ModeOut], tags=["classification"])
async def list_modes(rt: RuntimeDep, who: CallerDep, page: PageDep) -> Page[ModeOut]:
    """Stations the caller sees, by id, each with the mode in force, the model's choice and any override;
    officers only (a platform gets 403, as at the gateway)."""
    async with rt.sessions() as session:
        return await service.list_modes(session, who=who, page=page)


@router.get("/stations/{station_id}/mode-override", response_model=ModeOut, tags=["classification"])
async def get_mode(station_id: str, rt: RuntimeDep, who: CallerDep) -> ModeOut:
    """A station's mode with the model's choice beside any override."""
    async with rt.sessions() as session:
        return await service.get_mode(session, station_id=station_id, who=who)


@router.put("/stations/{station_id}/mode-override", response_model=ModeOut, tags=["classification"])
async def put_override(station_id: str, data: OverrideIn, rt: RuntimeDep, who: CallerDep) -> ModeOut:
    """Override a station's mode with a reason; it survives re-runs until removed (admin, command)."""
    _command_only(who, "override modes")
    async with rt.transaction() as session:
        return await service.set_override(session, outbox=rt.outbox, station_id=station_id, data=data, who=who)


@router.delete("/stations/{station_id}/mode-override", response_model=ModeOut, tags=["classification"])
async def delete_override(station_id: str, rt: RuntimeDep, who: CallerDep) -> ModeOut:
    """Remove a station's override: the model's latest choice is in force again (admin, command)."""
    _command_only(who, "override modes")
    async with rt.transaction() as session:
        return await service.clear_override(session, outbox=rt.outbox, station_id=station_id, who=who)
