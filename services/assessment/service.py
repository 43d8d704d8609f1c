"""Assessment use cases: count what events report, per station and local day; read the counts back."""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.assessment.models import StationDay, StationModeCopy, TallyOut
from shared.db import utcnow
from shared.errors import Invalid
from shared.events import IncidentReported, StationClassified, TaskChanged


async def _day_row(session: AsyncSession, station_id: str, day: dt.date) -> StationDay:
    row = await session.get(StationDay, (station_id, day))
    return row or StationDay(station_id=station_id, day=day, updated_at=utcnow())


async def count_incident(session: AsyncSession, *, fact: IncidentReported, tz: str) -> None:
    """Add an incident to its station's day."""
    if fact.station_id is None:
        return
    row = await _day_row(session, fact.station_id, fact.occurred_at.astimezone(ZoneInfo(tz)).date())
    row.incidents += 1
    row.deaths += fact.severity.deaths
    row.injuries += fact.severity.injuries
    row.updated_at = utcnow()
    session.add(row)


async def count_task(session: AsyncSession, *, fact: TaskChanged, tz: str) -> None:
    """Count a newly created task order against its station's day."""
    if fact.old_status is not None or fact.station_id is None:
        return
    row = await _day_row(session, fact.station_id, fact.at.astimezone(ZoneInfo(tz)).date())
    row.tasks_created += 1
    row.updated_at = utcnow()
    session.add(row)


async def remember_mode(session: AsyncSession, *, fact: StationClassified) -> None:
    """Keep the station's mode in force."""
    row = await session.get(StationModeCopy, fact.station_id)
    row = row or StationModeCopy(station_id=fact.station_id, mode=fact.mode, updated_at=utcnow())
    row.mode, row.updated_at = fact.mode, utcnow()
    session.add(row)


def month_bounds(period: str) -> tuple[dt.date, dt.date]:
    """First day of the month and first day of the next."""
    try:
        start = dt.date.fromisoformat(period + "-01")
    except ValueError as exc:
        raise Invalid("period must be YYYY-MM") from exc
    end = (start.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return start, end


async def tallies(session: AsyncSession, *, period: str) -> list[TallyOut]:
    """Per-station sums over a month."""
    start, end = month_bounds(period)
    stmt = (
        select(StationDay.station_id, func.sum(StationDay.incidents), func.sum(StationDay.deaths),
               func.sum(StationDay.injuries), func.sum(StationDay.tasks_created), StationModeCopy.mode)
        .outerjoin(StationModeCopy, StationModeCopy.station_id == StationDay.station_id)
        .where(StationDay.day >= start, StationDay.day < end)
        .group_by(StationDay.station_id, StationModeCopy.mode)
        .order_by(StationDay.station_id)
    )
    return [TallyOut(station_id=r[0], incidents=r[1], deaths=r[2], injuries=r[3], tasks_created=r[4], mode=r[5])
            for r in (await session.execute(stmt)).all()]
