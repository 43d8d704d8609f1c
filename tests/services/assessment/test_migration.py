"""The migration to one count path and one station copy moves a filled database's rows (SQLite and PostgreSQL)."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from sqlalchemy import inspect, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.assessment import service, stations
from services.assessment.models import DirtyPeriod, Measure, UnitCopy
from shared.db import UTCDateTime, ensure_schema, make_engine, make_sessions, utcnow
from shared.migrations import alembic_config, upgrade

MIGRATIONS = Path(__file__).resolve().parents[3] / "services" / "assessment" / "migrations"
BEFORE, FOLDING = "971a4e214832", "5d2e0c7a91b4"
T = UTCDateTime(timezone=True)
STATION_DAY = sa.table("station_day", sa.column("station_id"), sa.column("day", sa.Date), sa.column("incidents"),
                       sa.column("deaths"), sa.column("injuries"), sa.column("tasks_created"),
                       sa.column("updated_at", T))
STATION_MODE = sa.table("station_mode", sa.column("station_id"), sa.column("mode"), sa.column("updated_at", T))
OLD_UNIT = sa.table("unit_copy", sa.column("id"), sa.column("name"), sa.column("kind"), sa.column("parent_id"),
                    sa.column("population"), sa.column("updated_at", T))
MAY1, MAY2, OLD_DAY = dt.date(2024, 5, 1), dt.date(2024, 5, 2), dt.date(2023, 3, 9)


async def _to(engine: AsyncEngine, revision: str, *, down: bool = False) -> None:
    async with engine.begin() as conn:
        step = command.downgrade if down else command.upgrade
        await conn.run_sync(lambda sync: step(alembic_config(MIGRATIONS, sync), revision))


async def _tables(engine: AsyncEngine) -> set[str]:
    schema = "assessment" if engine.dialect.name == "postgresql" else None
    async with engine.connect() as conn:
        return set(await conn.run_sync(lambda sync: inspect(sync).get_table_names(schema=schema)))


async def _fill_old(engine: AsyncEngine) -> None:
    """Rows as the previous revision kept them: both count tables, both station copies, overlapping and not."""
    now = utcnow()
    async with engine.begin() as conn:
        await conn.execute(OLD_UNIT.insert(), [
            {"id": "ps-a", "name": "PS A", "kind": "station", "parent_id": "sq-1", "population": 1000,
             "updated_at": now},
            {"id": "sq-1", "name": "SQ 1", "kind": "squadron", "parent_id": None, "population": None,
             "updated_at": now}])
        await conn.execute(STATION_MODE.insert(), [
            {"station_id": "ps-a", "mode": "basic", "updated_at": now},
            {"station_id": "ps-b", "mode": "deep", "updated_at": now}])  # classified, never announced as a unit
        await conn.execute(STATION_DAY.insert(), [
            # counted by both paths: the same incidents and task orders in both tables
            {"station_id": "ps-a", "day": MAY1, "incidents": 2, "deaths": 1, "injuries": 3, "tasks_created": 1,
             "updated_at": now},
            # the measure counted one task order more (it knew the station from the task's copy)
            {"station_id": "ps-a", "day": MAY2, "incidents": 1, "deaths": 0, "injuries": 0, "tasks_created": 1,
             "updated_at": now},
            # counted before `measure` existed: only here
            {"station_id": "ps-b", "day": OLD_DAY, "incidents": 4, "deaths": 0, "injuries": 2, "tasks_created": 0,
             "updated_at": now}])
        await conn.execute(sa.insert(Measure.__table__), [  # type: ignore[attr-defined]
            {"station_id": "ps-a", "day": MAY1, "measure": "incidents", "value": 2.0},
            {"station_id": "ps-a", "day": MAY1, "measure": "tasks_created", "value": 1.0},
            {"station_id": "ps-a", "day": MAY1, "measure": "accident_deaths", "value": 1.0},
            {"station_id": "ps-a", "day": MAY1, "measure": "education", "value": 30.0},
            {"station_id": "ps-a", "day": MAY2, "measure": "incidents", "value": 1.0},
            {"station_id": "ps-a", "day": MAY2, "measure": "tasks_created", "value": 2.0}])


async def test_upgrading_a_filled_database_moves_counts_into_measures_and_modes_into_unit_copies(
        database_url: str) -> None:
    engine = make_engine(database_url, schema="assessment")
    await ensure_schema(engine, "assessment")
    try:
        await _to(engine, BEFORE)
        await _fill_old(engine)

        await upgrade(engine, MIGRATIONS, schema="assessment")

        assert not {"station_day", "station_mode"} & await _tables(engine)
        sessions = make_sessions(engine)
        async with sessions() as session:
            measures = {(m.station_id, m.day, m.measure): m.value
                        for m in (await session.execute(select(Measure))).scalars()}
            units = {u.id: (u.name, u.kind, u.parent_id, u.population, u.mode)
                     for u in (await session.execute(select(UnitCopy))).scalars()}
            dirty = set((await session.execute(select(DirtyPeriod.period))).scalars())
            known = await stations.stations(session)
            may = {t.station_id: t.model_dump(exclude={"station_id"})
                   for t in await service.tallies(session, period="2024-05")}
            march = {t.station_id: t.model_dump(exclude={"station_id"})
                     for t in await service.tallies(session, period="2023-03")}
        assert measures == {
            ("ps-a", MAY1, "incidents"): 2.0, ("ps-a", MAY1, "tasks_created"): 1.0,
            ("ps-a", MAY1, "accident_deaths"): 1.0, ("ps-a", MAY1, "education"): 30.0,
            ("ps-a", MAY1, "incident_deaths"): 1.0, ("ps-a", MAY1, "incident_injuries"): 3.0,
            ("ps-a", MAY2, "incidents"): 1.0, ("ps-a", MAY2, "tasks_created"): 2.0,
            ("ps-b", OLD_DAY, "incidents"): 4.0, ("ps-b", OLD_DAY, "incident_injuries"): 2.0}
        assert units == {"ps-a": ("PS A", "station", "sq-1", 1000, "basic"),
                         "sq-1": ("SQ 1", "squadron", None, None, None),
                         "ps-b": (None, None, None, None, "deep")}
        # months whose counts moved are re-scored (and, for year-on-year, the same month a year on)
        assert dirty == {"2024-05", "2025-05", "2023-03", "2024-03"}
        assert {k: (v.name, v.mode, v.parent_id, v.population) for k, v in known.items()} == {
            "ps-a": ("PS A", "basic", "sq-1", 1000), "ps-b": (None, "deep", None, None)}
        assert may == {"ps-a": {"mode": "basic", "incidents": 3, "deaths": 1, "injuries": 3, "tasks_created": 3}}
        assert march == {"ps-b": {"mode": "deep", "incidents": 4, "deaths": 0, "injuries": 2, "tasks_created": 0}}

        await _to(engine, BEFORE, down=True)  # and back: the old tables hold the counts and modes again
        async with engine.connect() as conn:
            days = {(r.station_id, r.day): (r.incidents, r.deaths, r.injuries, r.tasks_created)
                    for r in (await conn.execute(select(STATION_DAY))).all()}
            modes = dict((await conn.execute(select(STATION_MODE.c.station_id, STATION_MODE.c.mode))).all())
        assert days == {("ps-a", MAY1): (2, 1, 3, 1), ("ps-a", MAY2): (1, 0, 0, 2), ("ps-b", OLD_DAY): (4, 0, 2, 0)}
        assert modes == {"ps-a": "basic", "ps-b": "deep"}
        await _to(engine, FOLDING)
    finally:
        await engine.dispose()
