"""Classification runs: gather features, cluster off the event loop, store a versioned run, move modes."""
from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import uuid
from typing import Any

from sklearn.metrics import adjusted_rand_score
from sqlalchemy import bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.classification.classifier import MappingRule, Result, classify, paused_gc
from services.classification.config import ClassificationSettings
from services.classification.features import features_from_tallies, month_of
from services.classification.models import (
    AssignmentOut,
    ClassificationRun,
    RunAssignment,
    RunDiff,
    RunIn,
    RunOut,
    RunSummary,
    Station,
    StationFeatureSet,
    StationMode,
)
from services.classification.service import check_features, tallies_in_window
from shared.auth import Identity
from shared.bulk import insert_many
from shared.db import utcnow
from shared.errors import Conflict, Invalid, NotFound
from shared.events import StationClassified
from shared.outbox import Outbox
from shared.pagination import Keyset, Page, PageRequest, encode_cursor

FIRST_PAGE = 1000  # assignments returned with a new run; page through the rest with GET …/runs/{id}?cursor=


@dataclasses.dataclass
class Gathered:
    """The stations and features a run works on."""

    period: str | None
    ids: list[str]
    rows: list[dict[str, float]]
    sources: dict[str, int]
    skipped: list[dict[str, str]]


async def _gather(session: AsyncSession, period: str | None, timezone: str) -> Gathered:
    """Imported features for the period where present, otherwise features computed from events."""
    if period is None:
        period = (await session.execute(select(func.max(StationFeatureSet.period)))).scalar()
        period = period or month_of(utcnow(), timezone)
    feature_sets = StationFeatureSet.__table__
    imported = dict((await session.execute(select(feature_sets.c.station_id, feature_sets.c.features)
                                           .where(feature_sets.c.period == period))).all())
    tallies = await tallies_in_window(session, period=period)
    table = Station.__table__
    stations = (await session.execute(select(table.c.id, table.c.population, table.c.area_km2)
                                      .order_by(table.c.id))).all()
    ids, rows, skipped = [], [], []
    sources = {"import": 0, "events": 0}
    for station in stations:
        if station.id in imported:
            ids.append(station.id)
            rows.append(imported[station.id])
            sources["import"] += 1
        elif station.id in tallies:
            try:
                rows.append(features_from_tallies(tallies[station.id], population=station.population,
                                                  area_km2=station.area_km2))
            except Invalid as exc:
                skipped.append({"station_id": station.id, "reason": exc.detail})
                continue
            ids.append(station.id)
            sources["events"] += 1
        else:
            skipped.append({"station_id": station.id, "reason": f"no features for period {period}"})
    if not ids:
        raise Invalid(f"no features for period {period}: import them (PUT /api/v1/stations/{{id}}/features or "
                      "POST /api/v1/classification/features) or let incidents and activities arrive")
    return Gathered(period, ids, rows, sources, skipped)


async def _classify(gathered: Gathered, settings: ClassificationSettings, scaling: str, k: int,
                    previous: ClassificationRun | None = None, before: dict[str, str] | None = None) -> Result:
    centroids = previous.result.get("centroids") if previous is not None else None
    return await asyncio.to_thread(
        classify, gathered.ids, gathered.rows, k=k, scaling=scaling, n_init=settings.n_init, seed=settings.seed,
        rule=MappingRule(settings.basic_by, settings.deep_by), min_cluster_size=settings.min_cluster_size,
        previous=before, previous_centroids=centroids, stickiness=settings.stickiness)


async def _previous(session: AsyncSession) -> tuple[ClassificationRun | None, dict[str, str]]:
    previous = (await session.execute(select(ClassificationRun).order_by(ClassificationRun.version.desc())
                                      .limit(1))).scalars().first()
    before: dict[str, str] = {}
    if previous is not None:
        before = dict((await session.execute(select(RunAssignment.station_id, RunAssignment.mode)
                                             .where(RunAssignment.run_id == previous.id))).all())
    return previous, before


def _result_fields(result: Result) -> dict[str, Any]:
    return {
        "features": result.features, "silhouette": result.silhouette, "centroids": result.centroids,
        "sizes": result.sizes, "scaling": result.scaling,
        "distinctive": {m: [dataclasses.asdict(d) for d in ds] for m, ds in result.distinctive.items()},
        "outliers": [dataclasses.asdict(o) for o in result.outliers],
    }


def _assignment_out(a: Any, **extra: Any) -> AssignmentOut:
    return AssignmentOut(station_id=a.station_id, mode=a.mode, cluster=a.cluster, distance=a.distance,
                         margin=a.margin, outlier=a.outlier,
                         distinctive=[d if isinstance(d, dict) else dataclasses.asdict(d) for d in a.distinctive],
                         **extra)


async def start_run(session: AsyncSession, *, outbox: Outbox, data: RunIn, settings: ClassificationSettings,
                    who: Identity) -> RunOut:
    """Classify stations; unless a dry run, store a new run version and move modes (overrides stay in force)."""
    scaling = data.scaling or settings.scaling
    if data.dry_run:
        if not data.stations:
            raise Invalid("a dry run needs `stations` with their features")
        for s in data.stations:
            check_features(s.features, where=f"station {s.id}: ")
        gathered = Gathered(data.period, [s.id for s in data.stations], [s.features for s in data.stations],
                            {"inline": len(data.stations)}, [])
        result = await _classify(gathered, settings, scaling, data.k)
        return RunOut(id=f"dry-{uuid.uuid4().hex[:12]}", status="done", dry_run=True, period=data.period,
                      skipped=[], feature_sources=gathered.sources, **_result_fields(result),
                      assignments=[_assignment_out(a) for a in result.assignments],
                      assignments_total=len(result.assignments))
    if data.stations:
        raise Invalid("inline `stations` are only for dry runs; import features to classify for real")
    with paused_gc():  # tens of thousands of rows, dicts and events: no cycles to find, only time to lose
        gathered = await _gather(session, data.period, settings.timezone)
        previous, before = await _previous(session)
        result = await _classify(gathered, settings, scaling, data.k, previous, before)
        return await _store(session, outbox=outbox, gathered=gathered, result=result, k=data.k, who=who,
                            previous=previous, before=before)


async def _store(session: AsyncSession, *, outbox: Outbox, gathered: Gathered, result: Result, k: int,
                 who: Identity, previous: ClassificationRun | None, before: dict[str, str]) -> RunOut:
    now = utcnow()
    version = (previous.version if previous else 0) + 1
    run_id = f"run-{uuid.uuid4().hex[:12]}"
    mode_table = StationMode.__table__
    states = {r.station_id: r for r in (await session.execute(
        select(mode_table.c.station_id, mode_table.c.mode, mode_table.c.override_mode))).all()}
    new_states, updated_states, assignment_rows, events, changed = _rows(result, states, before, run_id, now)
    await insert_many(session, mode_table, new_states, constants={"updated_at": now})
    if updated_states:
        await session.execute(update(mode_table).where(mode_table.c.station_id == bindparam("b_id"))
                              .values(model_mode=bindparam("model_mode"), run_id=bindparam("run_id"),
                                      mode=bindparam("mode"), updated_at=bindparam("updated_at"))
                              .execution_options(synchronize_session=False), updated_states)
    await insert_many(session, RunAssignment.__table__, assignment_rows, constants={"run_id": run_id})
    await outbox.stage_many(session, StationClassified, events, subjects=[e["station_id"] for e in events])
    diff = _diff(previous.id if previous else None, before, result)
    fields = _result_fields(result)
    summary = fields | {"skipped": gathered.skipped, "feature_sources": gathered.sources,
                        "diff": diff.model_dump(mode="json"), "changed": changed}
    session.add(ClassificationRun(id=run_id, version=version, created_at=now, created_by=who.username, status="done",
                                  period=gathered.period, k=k, previous_run_id=previous.id if previous else None,
                                  result=summary))
    try:
        await session.flush()
    except Exception as exc:  # the unique version: another run committed first
        if "version" in str(exc).lower() or "unique" in str(exc).lower():
            raise Conflict("another classification run finished at the same time; start again") from exc
        raise
    page = sorted(assignment_rows, key=lambda r: r["station_id"])
    return RunOut(id=run_id, version=version, status="done", period=gathered.period, created_at=now, **summary,
                  assignments=[AssignmentOut.model_validate(r) for r in page[:FIRST_PAGE]],
                  assignments_total=len(page),
                  assignments_next_cursor=encode_cursor(page[FIRST_PAGE - 1]["station_id"])
                  if len(page) > FIRST_PAGE else None)


def _rows(result: Result, states: dict[str, Any], before: dict[str, str], run_id: str,
          now: dt.datetime) -> tuple[list[dict[str, Any]], ...]:
    """Rows for a run: new and updated station modes, assignments, event payloads, and the changes."""
    new_states, updated_states, assignment_rows, events, changed = [], [], [], [], []
    for a in result.assignments:
        state = states.get(a.station_id)
        old_mode = state.mode if state else None
        override = state.override_mode if state else None
        in_force = override or a.mode
        if state is None:
            new_states.append({"station_id": a.station_id, "model_mode": a.mode, "run_id": run_id, "mode": in_force})
        else:
            updated_states.append({"b_id": a.station_id, "model_mode": a.mode, "run_id": run_id, "mode": in_force,
                                   "updated_at": now})
        assignment_rows.append({
            "station_id": a.station_id, "mode": a.mode, "cluster": a.cluster,
            "distance": a.distance, "margin": a.margin, "outlier": a.outlier, "previous_mode": before.get(a.station_id),
            "mode_in_force": in_force, "distinctive": a.distinctive})
        if in_force != old_mode:
            changed.append({"station_id": a.station_id, "from": old_mode, "to": in_force})
            events.append({"station_id": a.station_id, "mode": in_force, "previous_mode": old_mode,
                           "source": "override" if override else "model", "run_id": run_id})
    return new_states, updated_states, assignment_rows, events, changed


def _diff(previous_id: str | None, before: dict[str, str], result: Result) -> RunDiff:
    now = {a.station_id: a.mode for a in result.assignments}
    if previous_id is None:
        return RunDiff()
    common = sorted(set(now) & set(before))
    moved = [{"station_id": s, "from": before[s], "to": now[s]} for s in common if before[s] != now[s]]
    ari = float(adjusted_rand_score([before[s] for s in common], [now[s] for s in common])) if common else None
    return RunDiff(previous_run_id=previous_id, moved=moved, added=sorted(set(now) - set(before)),
                   removed=sorted(set(before) - set(now)), adjusted_rand_index=ari)


async def get_run(session: AsyncSession, *, run_id: str, page: PageRequest) -> RunOut:
    """A stored run with a page of its assignments (by station id)."""
    row = await session.get(ClassificationRun, run_id)
    if row is None:
        raise NotFound(f"run {run_id} not found")
    assignments, next_cursor = await Keyset(RunAssignment.station_id).page(
        session, select(RunAssignment).where(RunAssignment.run_id == run_id), page)
    total = int((await session.execute(select(func.count()).select_from(RunAssignment)
                                       .where(RunAssignment.run_id == run_id))).scalar_one())
    return RunOut(id=row.id, version=row.version, status=row.status, period=row.period, created_at=row.created_at,
                  **row.result,
                  assignments=[_assignment_out(a, previous_mode=a.previous_mode, mode_in_force=a.mode_in_force)
                               for a in assignments],
                  assignments_total=total, assignments_next_cursor=next_cursor)


async def list_runs(session: AsyncSession, *, page: PageRequest) -> Page[RunSummary]:
    """Runs, newest first."""
    rows, next_cursor = await Keyset(ClassificationRun.version, descending=True).page(
        session, select(ClassificationRun), page)
    items = [RunSummary(id=r.id, version=r.version, created_at=r.created_at, created_by=r.created_by, status=r.status,
                        period=r.period, silhouette=r.result.get("silhouette"), sizes=r.result.get("sizes", {}),
                        moved=len((r.result.get("diff") or {}).get("moved", [])),
                        changed=len(r.result.get("changed", []))) for r in rows]
    return Page(items=items, next_cursor=next_cursor)
