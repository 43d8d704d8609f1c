"""Assessment's HTTP door: activities, indicators, scores, the daily board and reports."""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import random
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError

from services.assessment import board, history, jobs, periods, records, reports, service, stations
from services.assessment.inputs import MONTH
from services.assessment.models import Activity, HistoryMeasure
from services.assessment.schemas import (
    ActivityBatchOut,
    ActivityIn,
    ActivityOut,
    ActivityResult,
    BoardOut,
    HistoryBatchOut,
    HistoryIn,
    HistoryResult,
    HistoryRowOut,
    IndicatorChangeIn,
    IndicatorVersionOut,
    ReportJobOut,
    ScoresOut,
    StationScoreOut,
    TalliesOut,
)
from shared.auth import Identity
from shared.batch import batch_body_schema, read_batch, validated
from shared.db import utcnow
from shared.errors import Conflict, Forbidden, Invalid, NotFound
from shared.i18n import Lang, LanguageDep
from shared.pagination import Keyset, Page, PageDep, page_list
from shared.runtime import CallerDep, Runtime, RuntimeDep
from shared.scope import Scope

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1")
Format = Literal["json", "csv", "xlsx"]
VERSION_ATTEMPTS = 8
#: HistoryIn is no body parameter of any route, so no component: its schema goes inline
HISTORY_BODY = batch_body_schema("")
HISTORY_BODY["content"]["application/json"]["schema"]["items"] = HistoryIn.model_json_schema()
MEDIA = {"csv": "text/csv; charset=utf-8",
         "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


def _officer(who: Identity) -> Scope:
    """The caller's scope; a platform client is refused, as the gateway does (it writes activities and reads back
    only those)."""
    return Scope.of(who, what="assessment figures (it records activities and reads back its own)")


def _district_only(who: Identity, what: str) -> None:
    if not Scope.of(who, platforms=True).whole:
        raise Forbidden(f"only the command centre {what}")


@router.get("/assessment/tallies", response_model=TalliesOut, tags=["assessment"])
async def tallies(rt: RuntimeDep, who: CallerDep,
                  period: Annotated[str, Query(pattern=MONTH)]) -> TalliesOut:
    """Incidents, casualties and task orders per station for a month (a station its own row, a squadron its zone's);
    officers only."""
    scope = _officer(who)
    async with rt.sessions() as session:
        rows = await service.tallies(session, period=period)
        if not scope.whole:
            shown = stations.visible(who, await stations.stations(session))
            rows = [r for r in rows if r.station_id in shown]
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
    async with rt.sessions() as session:
        known = bool(await stations.known_stations(session, [activity.station_id]))
    if not known:
        records.warn_unknown({activity.station_id}, int(created))
    return records.activity_out(activity, known=known)


@router.post("/activities:batch", response_model=ActivityBatchOut, tags=["activities"],
             openapi_extra={"requestBody": batch_body_schema("#/components/schemas/ActivityIn")})
async def record_activities(request: Request, rt: RuntimeDep, who: CallerDep) -> ActivityBatchOut:
    """Up to 1000 activity records (JSON array or NDJSON); per-item 201/200/422; idempotent on external_id."""
    valid, rejected = validated(await read_batch(request), ActivityIn, ActivityResult)
    for attempt in range(2):
        try:
            async with rt.transaction() as session:
                return await records.record_batch(session, outbox=rt.outbox, valid=valid, rejected=rejected,
                                                  who=who, tz=rt.settings.timezone)
        except IntegrityError:  # a concurrent writer took some external_ids: the retry finds them
            if attempt:
                raise
    raise AssertionError("unreachable")


@router.get("/activities", response_model=Page[ActivityOut], tags=["activities"])
async def list_activities(rt: RuntimeDep, who: CallerDep, page: PageDep, station_id: str | None = None,
                          kind: str | None = None, since: dt.date | None = None,
                          until: dt.date | None = None) -> Page[ActivityOut]:
    """Activity records in the caller's jurisdiction (a platform: those it recorded), by day then id."""
    scope = Scope.of(who, platforms=True, what="activities")
    async with rt.sessions() as session:
        stmt = select(Activity)
        zone = stations.visible(who, await stations.stations(session)) if scope.kind == "zone" else {}
        if (where := scope.clause(Activity.station_id, zone=zone, owner=Activity.recorded_by)) is not None:
            stmt = stmt.where(where)
        if station_id:
            stmt = stmt.where(Activity.station_id == station_id)
        if kind:
            stmt = stmt.where(Activity.kind == kind)
        if since:
            stmt = stmt.where(Activity.day >= since)
        if until:
            stmt = stmt.where(Activity.day <= until)
        rows, next_cursor = await Keyset(Activity.day, Activity.id).page(session, stmt, page)
        known = await stations.known_stations(session, [a.station_id for a in rows])
    return Page(items=[records.activity_out(a, known=a.station_id in known) for a in rows], next_cursor=next_cursor)


# --- indicators ----------------------------------------------------------------------------------

@router.get("/indicators", response_model=IndicatorVersionOut, tags=["indicators"])
async def indicators(rt: RuntimeDep, who: CallerDep,
                     period: Annotated[str | None, Query(pattern=MONTH)] = None,
                     mode: Literal["basic", "deep", "full"] | None = None) -> IndicatorVersionOut:
    """The nine indicators (definition, unit, direction, floor, target, weight, measurement) in force."""
    _officer(who)
    period = period or f"{utcnow().astimezone(ZoneInfo(rt.settings.timezone)):%Y-%m}"
    async with rt.sessions() as session:
        all_versions = await service.versions(session)
    number, iset = service.resolve(all_versions, period, mode)
    return service.version_out(next((v for v in all_versions if v.version == number), None), iset)


@router.get("/indicators/versions", response_model=Page[IndicatorVersionOut], tags=["indicators"])
async def indicator_versions(rt: RuntimeDep, who: CallerDep, page: PageDep) -> Page[IndicatorVersionOut]:
    """Every version, oldest first: 0 (the defaults) and each change, with its scope."""
    _officer(who)
    async with rt.sessions() as session:
        every = [service.version_out(None)] + [service.version_out(v) for v in await service.versions(session)]
    return page_list(every, page, key=lambda v: f"{v.version:010d}")  # a string key that sorts like the number


@router.put("/indicators", response_model=IndicatorVersionOut, status_code=201, tags=["indicators"])
async def change_indicators(change: IndicatorChangeIn, rt: RuntimeDep, who: CallerDep) -> IndicatorVersionOut:
    """Admin: change weights, targets, floors or colour thresholds for months and/or a mode (a new version).

    Two admins saving at once may pick the same next version number; the loser's transaction is retried
    (it then builds on the winner's version), and after `VERSION_ATTEMPTS` collisions the answer is 409.
    """
    for attempt in range(VERSION_ATTEMPTS):
        try:
            async with rt.transaction() as session:
                return service.version_out(await service.change_indicators(session, change=change, who=who))
        except (IntegrityError, OperationalError) as exc:
            if isinstance(exc, OperationalError) and not service.is_write_conflict(exc):
                raise
            log.info("indicator version collision (attempt %d): retrying", attempt + 1)
            await asyncio.sleep(random.uniform(0.005, 0.03) * (attempt + 1))  # jitter: colliders do not meet again
    raise Conflict("another indicator change was being saved at the same moment; send it again")


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
                    period: Annotated[str | None, Query(pattern=MONTH)] = None
                    ) -> dict[str, Any]:
    """Command/admin: re-score a month now (default: every month with changed records); announce changes."""
    _district_only(who, "re-scores")
    async with service.announcing(rt) as session:
        if period:
            known = await stations.stations(session)
            announced = await service.announce_period(session, outbox=rt.outbox, period=periods.month(period),
                                                      known=known)
        else:
            announced = await service.announce_dirty(session, outbox=rt.outbox, limit=1000)
    return {"period": period, "announced": announced}


# --- historical measures ---------------------------------------------------------------------------

@router.put("/assessment/history", response_model=HistoryBatchOut, tags=["assessment"],
            openapi_extra={"requestBody": HISTORY_BODY})
async def import_history(request: Request, rt: RuntimeDep, who: CallerDep) -> HistoryBatchOut:
    """Admin/platform: precomputed monthly measures per station `[{station_id, month, measures}]` (≤ 1000),
    idempotent per (station, month, measure); used only for station-months without records."""
    valid, rejected = validated(await read_batch(request), HistoryIn, HistoryResult)
    for attempt in range(2):
        try:
            async with rt.transaction() as session:
                return await history.import_history(session, valid=valid, rejected=rejected, who=who)
        except IntegrityError:  # a concurrent import inserted the same key first: the retry updates it
            if attempt:
                raise
    raise AssertionError("unreachable")


@router.get("/assessment/history", response_model=Page[HistoryRowOut], tags=["assessment"])
async def list_history(rt: RuntimeDep, who: CallerDep, page: PageDep, station_id: str | None = None,
                       month: Annotated[str | None, Query(pattern=MONTH)] = None) -> Page[HistoryRowOut]:
    """Imported history rows by station, month and measure, in the caller's jurisdiction; officers only."""
    scope = _officer(who)
    async with rt.sessions() as session:
        zone = stations.visible(who, await stations.stations(session)) if scope.kind == "zone" else {}
        stmt = history.rows(station_id=station_id, month=month, where=scope.clause(HistoryMeasure.station_id,
                                                                                   zone=zone))
        found, next_cursor = await Keyset(HistoryMeasure.station_id, HistoryMeasure.month,
                                          HistoryMeasure.measure).page(session, stmt, page)
    return Page(items=[HistoryRowOut.model_validate(r, from_attributes=True) for r in found], next_cursor=next_cursor)


# --- the daily board ------------------------------------------------------------------------------

@router.get("/board", response_model=BoardOut, tags=["board"])
async def daily_board(rt: RuntimeDep, who: CallerDep, date: str | None = None,
                      station_id: str | None = None) -> BoardOut:
    """The 8 themes per station for a day (default today): target, actual, progress, colour, overdue orders."""
    tz = rt.settings.timezone
    now = utcnow()
    day = periods.parse_day(date, "date") if date else now.astimezone(ZoneInfo(tz)).date()
    async with rt.sessions() as session:
        shown = stations.visible(who, await stations.stations(session))
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
        known = await stations.stations(session)
        shown = stations.visible(who, known)
        if station_id is not None:
            if station_id not in shown:
                raise NotFound(f"no station {station_id}")
            shown = {station_id: shown[station_id]}
        return await reports.build(session, kind=kind, period=p, known=known, shown=shown, tz=tz, now=now)


async def _render(report: dict[str, Any], fmt: Format, lang: Lang) -> bytes:
    """Render off the event loop: a big workbook must not stall other requests."""
    if fmt == "csv":
        return await asyncio.to_thread(reports.render_csv, report, lang)
    return await asyncio.to_thread(reports.render_xlsx, report, lang)


def _file(report: dict[str, Any], fmt: Format, body: bytes) -> Response:
    name = f"jiaozhi-{report['kind']}-{report['period']}-{report['scope']}.{fmt}".replace("..", "_")
    return Response(body, media_type=MEDIA[fmt], headers={"content-disposition": f'attachment; filename="{name}"'})


@router.post("/reports/jobs", status_code=202, response_model=ReportJobOut, tags=["reports"])
async def start_report(rt: RuntimeDep, who: CallerDep, lang: LanguageDep, kind: reports.Kind,
                       period: str | None = None,
                       format: Format = "xlsx", station_id: str | None = None) -> ReportJobOut:
    """Build a report in the background: 202 with the job at once; poll `/reports/jobs/{id}` on any replica."""
    report = await _report(rt, who, kind, period, station_id)  # scope and period errors surface now, as 4xx
    settings = rt.settings
    job = jobs.new_job(who, kind=kind, period=report["period"], fmt=format, station_id=station_id)
    async with rt.transaction() as session:
        await jobs.purge(session, ttl_s=settings.report_job_ttl_s, timeout_s=settings.report_job_timeout_s)
        session.add(job)
    out = jobs.job_out(jobs.as_dict(job), ttl_s=settings.report_job_ttl_s)

    async def build() -> None:
        body, error = None, None
        try:
            body = (json.dumps(reports.localise(report, lang), ensure_ascii=False).encode() if format == "json"
                    else await _render(report, format, lang))
        except Exception as exc:  # noqa: BLE001 - reported through the job's status
            log.exception("report job %s failed", job.id)
            error = type(exc).__name__
        async with rt.transaction() as session:
            await jobs.finish(session, job.id, body=body, error=error)

    running: dict[str, asyncio.Task[None]] = rt.state.setdefault("report_jobs", {})
    task = asyncio.create_task(build(), name=f"report-{job.id}")
    running[job.id] = task
    task.add_done_callback(lambda _t: running.pop(job.id, None))
    return out


async def _job(rt: Runtime, who: Identity, job_id: str) -> dict[str, Any]:
    async with rt.transaction() as session:
        return await jobs.status_of(session, who, job_id, ttl_s=rt.settings.report_job_ttl_s,
                                    timeout_s=rt.settings.report_job_timeout_s)


@router.get("/reports/jobs/{job_id}", response_model=ReportJobOut, tags=["reports"])
async def report_job(job_id: str, rt: RuntimeDep, who: CallerDep) -> ReportJobOut:
    """A report job's status (`running`, `done` with its file's path, `failed` with the error), from any replica."""
    return jobs.job_out(await _job(rt, who, job_id), ttl_s=rt.settings.report_job_ttl_s)


@router.get("/reports/jobs/{job_id}/file", tags=["reports"])
async def report_job_file(job_id: str, rt: RuntimeDep, who: CallerDep) -> Response:
    """A finished job's file; 409 while it is running or when it failed."""
    job = await _job(rt, who, job_id)
    if job["status"] != "done":
        raise Conflict(f"report job {job_id} is {job['status']}")
    async with rt.sessions() as session:
        body = await jobs.body_of(session, job_id)
    if job["format"] == "json":
        return Response(body, media_type="application/json")
    return _file({"kind": job["kind"], "period": job["period"], "scope": job["station_id"] or "report"},
                 job["format"], body)


@router.get("/reports/{kind}", tags=["reports"], responses={200: {"content": {
    "application/json": {}, MEDIA["csv"]: {}, MEDIA["xlsx"]: {}}}})
async def report(kind: reports.Kind, rt: RuntimeDep, who: CallerDep, lang: LanguageDep, period: str | None = None,
                 format: Format = "json", station_id: str | None = None) -> Response:
    """A daily (period YYYY-MM-DD), weekly (YYYY-Www) or monthly (YYYY-MM) report for the caller's stations;
    labels, CSV headers, sheet names in the caller's language (zh-CN by default; `lang=en`: the machine form)."""
    data = await _report(rt, who, kind, period, station_id)
    if format == "json":
        return JSONResponse(reports.localise(data, lang))
    return _file(data, format, await _render(data, format, lang))
