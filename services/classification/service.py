"""Classification use cases: features in, K-Means runs, modes and overrides out."""
from __future__ import annotations

import asyncio
import dataclasses
import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.classification.classifier import classify
from services.classification.models import (
    ClassificationRun,
    FeaturesIn,
    RunIn,
    RunOut,
    Station,
    StationFeature,
    StationMode,
)
from shared.db import utcnow
from shared.errors import Invalid, NotFound
from shared.events import StationClassified, UnitUpserted
from shared.outbox import Outbox


async def remember_station(session: AsyncSession, *, fact: UnitUpserted) -> None:
    """Keep the read copy of a station dispatch announced."""
    if fact.kind != "station":
        return
    station = await session.get(Station, fact.unit_id) or Station(id=fact.unit_id, name=fact.name)
    station.name, station.area_type = fact.name, fact.area_type
    station.population, station.area_km2 = fact.population, fact.area_km2
    session.add(station)


async def put_features(session: AsyncSession, *, station_id: str, data: FeaturesIn) -> None:
    """Store precomputed features of a station for a period (replacing values of the same names)."""
    if await session.get(Station, station_id) is None:
        raise NotFound(f"station {station_id} is not known (create it as a unit first)")
    now = utcnow()
    for name, value in data.features.items():
        row = await session.get(StationFeature, (station_id, data.period, name))
        row = row or StationFeature(station_id=station_id, period=data.period, name=name, value=value, updated_at=now)
        row.value, row.updated_at = float(value), now
        session.add(row)


async def _stored_features(session: AsyncSession, period: str | None) -> tuple[str | None, dict[str, dict[str, float]]]:
    if period is None:
        period = (await session.execute(
            select(StationFeature.period).order_by(StationFeature.period.desc()).limit(1))).scalar()
        if period is None:
            raise Invalid("no features stored yet: PUT /api/v1/stations/{id}/features first")
    rows = await session.execute(select(StationFeature).where(StationFeature.period == period))
    table: dict[str, dict[str, float]] = {}
    for row in rows.scalars():
        table.setdefault(row.station_id, {})[row.name] = row.value
    return period, table


async def run(session: AsyncSession, *, outbox: Outbox, data: RunIn, scaling: str, n_init: int,
              seed: int) -> RunOut:
    """Classify stations; unless a dry run, store the run and move modes (overrides stay in force)."""
    if data.dry_run:
        if not data.stations:
            raise Invalid("a dry run needs `stations` with their features")
        table = {s.id: s.features for s in data.stations}
        period = data.period
    else:
        period, table = await _stored_features(session, data.period)
    ids = sorted(table)
    result = await asyncio.to_thread(classify, ids, [table[i] for i in ids], k=data.k, scaling=scaling,
                                     n_init=n_init, seed=seed)
    run_id = f"run-{uuid.uuid4().hex[:12]}"
    out = RunOut(id=run_id, status="done", dry_run=data.dry_run, period=period, features=result.features,
                 silhouette=result.silhouette, centroids=result.centroids, sizes=result.sizes,
                 assignments=[dataclasses.asdict(a) for a in result.assignments])
    if data.dry_run:
        return out
    changed = []
    now = utcnow()
    for a in result.assignments:
        state = await session.get(StationMode, a.station_id) or StationMode(station_id=a.station_id, updated_at=now)
        before = state.mode
        state.model_mode, state.run_id, state.updated_at = a.mode, run_id, now
        state.mode = state.override_mode or a.mode
        session.add(state)
        if state.mode != before:
            changed.append({"station_id": a.station_id, "from": before, "to": state.mode})
            await outbox.stage(session, StationClassified(
                station_id=a.station_id, mode=state.mode, previous_mode=before,
                source="override" if state.override_mode else "model", run_id=run_id), subject=a.station_id)
    out.changed = changed
    session.add(ClassificationRun(id=run_id, created_at=now, status="done", period=period, k=data.k,
                                  result=out.model_dump(mode="json")))
    return out


async def get_run(session: AsyncSession, *, run_id: str) -> RunOut:
    """A stored run."""
    row = await session.get(ClassificationRun, run_id)
    if row is None:
        raise NotFound(f"run {run_id} not found")
    return RunOut.model_validate(row.result)
