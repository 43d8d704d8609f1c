"""Historical measures: precomputed monthly figures per station for months before the system held records.

Precedence, per station and month: if the station has **any** daily measure in that month (from activities or
events), the records are the month's figures and imported history for that station-month is ignored; only a
station-month with no records at all uses its history. A period that covers part of a month gets the month's
history pro rata (days covered ÷ days of the month). History feeds every sum-based indicator (notably the
year-on-year `accident_control`) and report item; not the census-day indicator (`map_colour_reduction`) nor the
daily board, which need days.
"""
from __future__ import annotations

import calendar
import datetime as dt
import logging
import math
from collections import defaultdict
from functools import cache
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from services.assessment.catalogue import default_set
from services.assessment.items import catalogue as report_catalogue
from services.assessment.models import HistoryMeasure, Measure
from services.assessment.records import mark_dirty
from services.assessment.schemas import HistoryBatchOut, HistoryIn, HistoryResult
from services.assessment.stations import announced_kinds
from shared.auth import Identity
from shared.batch import ItemError
from shared.db import utcnow
from shared.errors import Forbidden

log = logging.getLogger(__name__)

#: friendly names accepted on import, stored as the measure they stand for
ALIASES = {"accidents": "incident.accident", "deaths": "accident_deaths", "injuries": "accident_injuries"}


@cache
def known_measures() -> frozenset[str]:
    """Measures an import may carry: those the indicators and report items read (and the aliases)."""
    names: set[str] = set()
    for ind in default_set().indicators:
        names.update(ind.measurement.numerator, ind.measurement.denominator)
    for item in report_catalogue().items:
        for key in ("sum", "per_10k", "ratio", "den"):
            names.update(item.formula.get(key, []))
    return frozenset(names | set(ALIASES))


def _month_start(label: str) -> dt.date:
    return dt.date(int(label[:4]), int(label[5:7]), 1)


def _month_end(day: dt.date) -> dt.date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def _months(start: dt.date, end: dt.date) -> list[str]:
    out, day = [], start.replace(day=1)
    while day <= end:
        out.append(f"{day:%Y-%m}")
        day = (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return out


# --- import ------------------------------------------------------------------------------------------

def _checked(valid: list[tuple[int, HistoryIn]], rejected: dict[int, HistoryResult],
             ) -> tuple[list[tuple[int, HistoryIn]], dict[int, HistoryResult]]:
    """Of the items that match the schema, those whose measures are known and finite."""
    good, bad = [], dict(rejected)
    allowed = known_measures()
    for index, item in valid:
        errors = [ItemError(loc=["measures", name], msg=f"unknown measure (one of {sorted(allowed)})")
                  for name in item.measures if name not in allowed]
        errors += [ItemError(loc=["measures", name], msg="must be a finite number ≥ 0")
                   for name, v in item.measures.items() if not (math.isfinite(v) and v >= 0)]
        if errors:
            bad[index] = HistoryResult.rejected(index, errors, station_id=item.station_id, month=item.month)
        else:
            good.append((index, item))
    return good, bad


async def import_history(session: AsyncSession, *, valid: list[tuple[int, HistoryIn]],
                         rejected: dict[int, HistoryResult], who: Identity) -> HistoryBatchOut:
    """Store precomputed monthly measures (idempotent per station, month and measure: a value replaces the old).

    Admin and platforms only. An unknown station id is accepted (unit copies may lag) and reported in
    `unknown_stations`; a unit known to be a squadron or brigade is 422.
    """
    if who.role not in ("admin", "platform"):
        raise Forbidden("only an admin or a platform imports historical measures")
    good, results = _checked(valid, rejected)
    units = await announced_kinds(session, [i.station_id for _, i in good])
    keys = {(i.station_id, i.month) for _, i in good}
    existing: set[tuple[str, str, str]] = set()
    if keys:
        rows = await session.execute(select(HistoryMeasure.station_id, HistoryMeasure.month, HistoryMeasure.measure)
                                     .where(HistoryMeasure.station_id.in_({s for s, _ in keys}),
                                            HistoryMeasure.month.in_({m for _, m in keys})))
        existing = {tuple(r) for r in rows.all()}  # type: ignore[misc]
    dialect = postgresql if session.bind.dialect.name == "postgresql" else sqlite
    table = HistoryMeasure.__table__  # type: ignore[attr-defined]
    now, unknown, months = utcnow(), set(), set()
    for index, item in good:
        kind = units.get(item.station_id)
        if kind is not None and kind != "station":
            results[index] = HistoryResult.rejected(
                index, [ItemError(loc=["station_id"], msg=f"a {kind}, not a station")], station_id=item.station_id,
                month=item.month)
            continue
        new = False
        for name, value in item.measures.items():
            measure = ALIASES.get(name, name)
            new |= (item.station_id, item.month, measure) not in existing
            existing.add((item.station_id, item.month, measure))
            stmt = dialect.insert(table).values(station_id=item.station_id, month=item.month, measure=measure,
                                                value=float(value), imported_by=who.username, updated_at=now)
            await session.execute(stmt.on_conflict_do_update(
                index_elements=["station_id", "month", "measure"],
                set_={"value": stmt.excluded.value, "imported_by": stmt.excluded.imported_by,
                      "updated_at": stmt.excluded.updated_at}))
        if kind is None:
            unknown.add(item.station_id)
        months.add(item.month)
        results[index] = HistoryResult(index=index, status=201 if new else 200, station_id=item.station_id,
                                       month=item.month, station_known=kind is not None)
    if unknown:
        log.warning("history imported for %d station ids not known as stations (yet): %s", len(unknown),
                    ", ".join(sorted(unknown)[:20]))
    await mark_dirty(session, [_month_start(m) for m in months])
    return HistoryBatchOut.of([results[i] for i in sorted(results)], unknown_stations=sorted(unknown))


# --- reading: records first, history where a station-month has none ------------------------------------

async def period_sums(session: AsyncSession, start: dt.date, end: dt.date,
                      station_ids: list[str] | None = None) -> dict[str, dict[str, float]]:
    """Per station, each measure summed over local days `start`…`end`, with imported history filling the
    station-months that hold no records (pro rata for partly covered months). Stations with nothing are absent."""
    stmt = (select(Measure.station_id, Measure.measure, func.sum(Measure.value))
            .where(Measure.day >= start, Measure.day <= end).group_by(Measure.station_id, Measure.measure))
    hist = select(HistoryMeasure.station_id, HistoryMeasure.month, HistoryMeasure.measure, HistoryMeasure.value
                  ).where(HistoryMeasure.month.in_(_months(start, end)))
    if station_ids is not None:
        stmt = stmt.where(Measure.station_id.in_(station_ids))
        hist = hist.where(HistoryMeasure.station_id.in_(station_ids))
    out: dict[str, dict[str, float]] = defaultdict(dict)
    for sid, measure, total in (await session.execute(stmt)).all():
        out[sid][measure] = float(total)
    history = (await session.execute(hist)).all()
    if not history:
        return dict(out)
    stations = sorted({sid for sid, *_ in history})
    first, last = start.replace(day=1), _month_end(end)
    recorded: set[tuple[str, str]] = set()
    for chunk in range(0, len(stations), 500):
        rows = await session.execute(select(Measure.station_id, Measure.day).distinct().where(
            Measure.day >= first, Measure.day <= last, Measure.station_id.in_(stations[chunk:chunk + 500])))
        recorded.update((sid, f"{day:%Y-%m}") for sid, day in rows.all())
    for sid, month, measure, value in history:
        if (sid, month) in recorded:
            continue
        m_start = _month_start(month)
        m_end = _month_end(m_start)
        covered = (min(end, m_end) - max(start, m_start)).days + 1
        share = covered / m_end.day
        out[sid][measure] = out[sid].get(measure, 0.0) + float(value) * share
    return dict(out)


def rows(*, station_id: str | None, month: str | None, where: Any = None) -> Any:
    """The query of imported history rows (`where`: the caller's jurisdiction)."""
    stmt = select(HistoryMeasure)
    if station_id:
        stmt = stmt.where(HistoryMeasure.station_id == station_id)
    if month:
        stmt = stmt.where(HistoryMeasure.month == month)
    return stmt if where is None else stmt.where(where)
