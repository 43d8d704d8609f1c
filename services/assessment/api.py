"""Assessment's HTTP door: activities, indicators, scores, the daily board and reports."""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from services.assessment import board, periods, records, reports, service
from services.assessment.models import (
    Activity,
    ActivityIn,
    ActivityOut,
    BatchOut,
    BoardOut,
    IndicatorChangeIn,
    IndicatorVersionOut,
    ScoresOut,
    StationScoreOut,
    TalliesOut,
)
from shared.auth import Identity
from shared.db import utcnow
from shared.errors import Conflict, Forbidden, Invalid, NotFound
from shared.pagination import Page, decode_cursor, encode_cursor
from shared.runtime import CallerDep, Runtime, RuntimeDep

router = APIRouter(prefix="/api/v1")
Format = Literal["json", "csv", "xlsx"]
MEDIA = {"csv": "text/csv; charset=utf-8",
         "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


@router.get("/assessment/tallies", response_model=TalliesOut, tags=["assessment"])
async def tallies(rt: RuntimeDep, who: CallerDep,
                  period: Annotated[str, Query(pattern=r"^\d{4}-\d{2}$")]) -> TalliesOut:
    """Incidents, casualties and task orders per station for a month (a station sees its own row)."""
    async with rt.sessions() as session:
        rows = await service.tallies(session, period=period)
    if not who.sees_whole_district:
        rows = [r for r in rows if r.station_id == who.unit_id]
    return TalliesOut(period=period, stations=rows)


# --- activities ----------------------------------------------------------------------------------

@router.post("/activities", response_model=ActivityOut, status_code=201, tags=["activities"],
             responses={200: {"model": ActivityOut, "description": "already received: the first result"}})
async def record_activity(data: ActivityIn, rt: RuntimeDep, who: CallerDep, response: Response) -> ActivityOut:
    """Record an activity (idempotent on external_id: the same id again is 200 with the first record)."""
    try:
        async with rt.transaction() as session:
            [(activity, created)] = await records.record_activities(session, outbox=rt.outbox, items=[data], who=who,
                                                                   tz=rt.settings.timezone)
    except IntegrityError:  # a concurrent request with the same external_id won the race
        async with rt.sessions() as session:
            activity = (await session.execute(select(Activity).where(Activity.external_id == data.external_id))
                        ).scalar_one()
        created = False
    if not created:
        response.status_code = 200
    return records.activity_out(activity)


async def _batch_body(request: Request) -> list[Any]:
    raw = await request.body()
    if request.headers.get("content-type", "").startswith("application/x-ndjson"):
        try:
            return [json.loads(line) for line in raw.decode().splitlines() if line.strip()]
        except (ValueError, UnicodeDecodeError) as exc:
            raise Invalid(f"malformed NDJSON: {exc}") from exc
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Invalid(f"malformed JSON: {exc}") from exc
    if not isinstance(body, list):
        raise Invalid("a batch is a JSON array (or NDJSON with content-type application/x-ndjson)")
    return body


@router.post("/activities:batch", response_model=BatchOut, tags=["activities"],
             openapi_extra={"requestBody": {"content": {
                 "application/json": {"schema": {"type": "array", "items": ActivityIn.model_json_schema()}},
                 "application/x-ndjson": {"schema": {"type": "string"}}}}})
async def record_activities(request: Request, rt: RuntimeDep, who: CallerDep) -> BatchOut:
    """Up to 1000 activity records (JSON array or NDJSON); per-item 201/200/422; idempotent on external_id."""
    raw = await _batch_body(request)
    for attempt in range(2):
        try:
            async with rt.transaction() as session:
                return await records.record_batch(session, outbox=rt.outbox, raw=raw, who=who,
                                                  tz=rt.settings.timezone)
        except IntegrityError:  # a concurrent writer took some external_ids: the retry finds them
            if attempt:
                raise
    raise AssertionError("unreachable")


@router.get("/activities", response_model=Page[ActivityOut], tags=["activities"])
async def list_activities(rt: RuntimeDep, who: CallerDep, station_id: str | None = None, kind: str | None = None,
                          since: dt.date | None = None, until: dt.date | None = None,
                          limit: Annotated[int, Query(ge=1, le=500)] = 100, cursor: str | None = None) -> Page:
    """Activity records in the caller's jurisdiction (a platform: those it recorded), by day then id."""
    async with rt.sessions() as session:
        stmt = select(Activity)
        if who.role == "platform":
            stmt = stmt.where(Activity.recorded_by == who.username)
        elif not who.sees_whole_district:
            shown = service.visible(who, await service.stations(session))
            stmt = stmt.where(Activity.station_id.in_(list(shown)))
        if station_id:
            stmt = stmt.where(Activity.station_id == station_id)
        if kind:
            stmt = stmt.where(Activity.kind == kind)
        if since:
            stmt = stmt.where(Activity.day >= since)
        if until:
            stmt = stmt.where(Activity.day <= until)
        if key := decode_cursor(cursor):
            try:
                after = (dt.date.fromisoformat(key[0]), str(key[1]))
            except (ValueError, IndexError, TypeError) as exc:
                raise Invalid("malformed cursor") from exc
            stmt = stmt.where((Activity.day > after[0]) | ((Activity.day == after[0]) & (Activity.id > after[1])))
        rows = list((await session.execute(stmt.order_by(Activity.day, Activity.id).limit(limit + 1))).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(items=[records.activity_out(a) for a in rows],
                next_cursor=encode_cursor(rows[-1].day, rows[-1].id) if more else None)


# --- indicators ----------------------------------------------------------------------------------

@router.get("/indicators", response_model=IndicatorVersionOut, tags=["indicators"])
async def indicators(rt: RuntimeDep, who: CallerDep,
                     period: Annotated[str | None, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")] = None,
                     mode: Literal["basic", "deep", "full"] | None = None) -> IndicatorVersionOut:
    """The nine indicators (definition, unit, direction, floor, target, weight, measurement) in force."""
    period = period or f"{utcnow().astimezone(ZoneInfo(rt.settings.timezone)):%Y-%m}"
    async with rt.sessions() as session:
        all_versions = await service.versions(session)
    number, iset = service.resolve(all_versions, period, mode)
    return service.version_out(next((v for v in all_versions if v.version == number), None), iset)


@router.get("/indicators/versions", response_model=list[IndicatorVersionOut], tags=["indicators"])
async def indicator_versions(rt: RuntimeDep, who: CallerDep) -> list[IndicatorVersionOut]:
    """Every version: 0 (the defaults) and each change, with its scope."""
    async with rt.sessions() as session:
        return [service.version_out(None)] + [service.version_out(v) for v in await service.versions(session)]


@router.put("/indicators", response_model=IndicatorVersionOut, status_code=201, tags=["indicators"])
async def change_indicators(change: IndicatorChangeIn, rt: RuntimeDep, who: CallerDep) -> IndicatorVersionOut:
    """Admin: change weights, targets, floors or colour thresholds for months and/or a mode (a new version)."""
    async with rt.transaction() as session:
        return service.version_out(await service.change_indicators(session, change=change, who=who))


# --- scores --------------------------------------------------------------------------------------

def _period(rt: Runtime, period: str | None, since: str | None, until: str | None) -> periods.Period:
    if since or until:
        if period or not (since and until):
            raise Invalid("give either period, or both from and until")
        return periods.date_range(periods.parse_day(since, "from"), periods.parse_day(until, "until"))
    return periods.parse(period or f"{utcnow().astimezone(ZoneInfo(rt.settings.timezone)):%Y-%m}")


@router.get("/assessment/scores", response_model=ScoresOut, tags=["assessment"])
async def scores(rt: RuntimeDep, who: CallerDep, period: str | None = None,
                 mode: Literal["basic", "deep", "full"] | None = None,
                 since: Annotated[str | None, Query(alias="from")] = None, until: str | None = None) -> ScoresOut:
    """Scores ranked within mode (`period` YYYY-MM by default this month; also YYYY-Www, a day, or from/until)."""
    p = _period(rt, period, since, until)
    async with rt.sessions() as session:
        return await service.scores(session, period=p, who=who, mode=mode)


@router.get("/stations/{station_id}/score", response_model=StationScoreOut, tags=["assessment"])
async def station_score(station_id: str, rt: RuntimeDep, who: CallerDep, period: str | None = None,
                        since: Annotated[str | None, Query(alias="from")] = None,
                        until: str | None = None) -> StationScoreOut:
    """One station's score with indicator detail and the trend against the previous period."""
    p = _period(rt, period, since, until)
    async with rt.sessions() as session:
        return await service.station_score(session, station_id=station_id, period=p, who=who)


@router.post("/assessment/recompute", tags=["assessment"])
async def recompute(rt: RuntimeDep, who: CallerDep,
                    period: Annotated[str | None, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")] = None
                    ) -> dict[str, Any]:
    """Command/admin: re-score a month now (default: every month with changed records); announce changes."""
    if not who.sees_whole_district:
        raise Forbidden("only the command centre re-scores")
    async with rt.transaction() as session:
        if period:
            known = await service.stations(session)
            announced = await service.announce_period(session, outbox=rt.outbox, period=periods.month(period),
                                                      known=known)
        else:
            announced = await service.announce_dirty(session, outbox=rt.outbox, limit=1000)
    return {"period": period, "announced": announced}


# --- the daily board ------------------------------------------------------------------------------

@router.get("/board", response_model=BoardOut, tags=["board"])
async def daily_board(rt: RuntimeDep, who: CallerDep, date: str | None = None,
                      station_id: str | None = None) -> BoardOut:
    """The 8 themes per station for a day (default today): target, actual, progress, colour, overdue orders."""
    tz = rt.settings.timezone
    now = utcnow()
    day = periods.parse_day(date, "date") if date else now.astimezone(ZoneInfo(tz)).date()
    async with rt.sessions() as session:
        shown = service.visible(who, await service.stations(session))
        if station_id is not None:
            if station_id not in shown:
                raise NotFound(f"no station {station_id}")
            shown = {station_id: shown[station_id]}
        return await board.board(session, day=day, shown=shown, tz=tz, now=now)


# --- reports ------------------------------------------------------------------------------------

async def _report(rt: Runtime, who: Identity, kind: reports.Kind, period: str | None,
                  station_id: str | None) -> dict[str, Any]:
    tz = rt.settings.timezone
    now = utcnow()
    p = reports.report_period(kind, period, now.astimezone(ZoneInfo(tz)).date())
    async with rt.sessions() as session:
        known = await service.stations(session)
        shown = service.visible(who, known)
        if station_id is not None:
            if station_id not in shown:
                raise NotFound(f"no station {station_id}")
            shown = {station_id: shown[station_id]}
        return await reports.build(session, kind=kind, period=p, known=known, shown=shown, tz=tz, now=now)


async def _render(report: dict[str, Any], fmt: Format) -> bytes:
    """Render off the event loop: a big workbook must not stall other requests."""
    if fmt == "csv":
        return await asyncio.to_thread(reports.render_csv, report)
    return await asyncio.to_thread(reports.render_xlsx, report)


def _file(report: dict[str, Any], fmt: Format, body: bytes) -> Response:
    name = f"jiaozhi-{report['kind']}-{report['period']}-{report['scope']}.{fmt}".replace("..", "_")
    return Response(body, media_type=MEDIA[fmt], headers={"content-disposition": f'attachment; filename="{name}"'})


@router.post("/reports/jobs", status_code=202, tags=["reports"])
async def start_report(rt: RuntimeDep, who: CallerDep, kind: reports.Kind, period: str | None = None,
                       format: Format = "xlsx", station_id: str | None = None) -> dict[str, Any]:
    """Build a report in the background: 202 `{id, status}` at once; poll `/reports/jobs/{id}`."""
    report = await _report(rt, who, kind, period, station_id)  # scope and period errors surface now, as 4xx
    jobs: dict[str, dict[str, Any]] = rt.state.setdefault("report_jobs", {})
    job_id = f"rep-{uuid.uuid4().hex}"
    job: dict[str, Any] = {"id": job_id, "status": "running", "kind": kind, "period": report["period"],
                           "format": format, "owner": who.username, "started_at": utcnow().isoformat()}
    jobs[job_id] = job

    async def build() -> None:
        try:
            job["body"] = (json.dumps(report, ensure_ascii=False).encode() if format == "json"
                           else await _render(report, format))
            job["status"] = "done"
        except Exception as exc:  # noqa: BLE001 - reported through the job's status
            job["status"], job["error"] = "failed", type(exc).__name__
        job["finished_at"] = utcnow().isoformat()
        for old in list(jobs)[:-rt.settings.report_jobs_kept]:
            jobs.pop(old, None)

    job["task"] = asyncio.create_task(build())
    return _job_out(job)


def _job_out(job: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in job.items() if k not in ("body", "task", "owner")}
    if job["status"] == "done":
        out["file"] = f"/api/v1/reports/jobs/{job['id']}/file"
    return out


def _job(rt: Runtime, who: Identity, job_id: str) -> dict[str, Any]:
    job = rt.state.get("report_jobs", {}).get(job_id)
    if job is None or job["owner"] != who.username:
        raise NotFound(f"no report job {job_id}")
    return job


@router.get("/reports/jobs/{job_id}", tags=["reports"])
async def report_job(job_id: str, rt: RuntimeDep, who: CallerDep) -> dict[str, Any]:
    """A report job's status (`running`, `done` with its file's path, `failed`)."""
    return _job_out(_job(rt, who, job_id))


@router.get("/reports/jobs/{job_id}/file", tags=["reports"])
async def report_job_file(job_id: str, rt: RuntimeDep, who: CallerDep) -> Response:
    """A finished job's file; 409 while it is still running."""
    job = _job(rt, who, job_id)
    if job["status"] != "done":
        raise Conflict(f"report job {job_id} is {job['status']}")
    if job["format"] == "json":
        return Response(job["body"], media_type="application/json")
    return _file({"kind": job["kind"], "period": job["period"], "scope": "report"}, job["format"], job["body"])


@router.get("/reports/{kind}", tags=["reports"], responses={200: {"content": {
    "application/json": {}, MEDIA["csv"]: {}, MEDIA["xlsx"]: {}}}})
async def report(kind: reports.Kind, rt: RuntimeDep, who: CallerDep, period: str | None = None,
                 format: Format = "json", station_id: str | None = None) -> Response:
    """A daily (period YYYY-MM-DD), weekly (YYYY-Www) or monthly (YYYY-MM) report for the caller's stations."""
    data = await _report(rt, who, kind, period, station_id)
    if format == "json":
        return JSONResponse(data)
    return _file(data, format, await _render(data, format))
