"""Assessment use cases: tallies, indicator versions, scores, score announcements."""
from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import math
from collections import defaultdict
from collections.abc import AsyncIterator

import numpy as np
from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.assessment import history, periods, scoring
from services.assessment.catalogue import IndicatorSet, apply_change, default_set
from services.assessment.models import DirtyPeriod, HistoryMeasure, IndicatorVersion, Measure, PublishedScore, UnitCopy
from services.assessment.periods import Period
from services.assessment.records import mark_dirty
from services.assessment.schemas import (
    IndicatorChangeIn,
    IndicatorScoreOut,
    IndicatorVersionOut,
    ScoresOut,
    StationScoreOut,
    TallyOut,
)
from services.assessment.stations import StationInfo, stations, visible
from shared.auth import Identity
from shared.db import utcnow
from shared.errors import Forbidden, Invalid, NotFound
from shared.events import ScoreUpdated
from shared.outbox import Outbox
from shared.runtime import Runtime

# --- tallies (GET /assessment/tallies): incidents, casualties and new task orders, from the daily measures -----

#: tally field → the daily measure it sums
TALLIED = {"incidents": "incidents", "deaths": "incident_deaths", "injuries": "incident_injuries",
           "tasks_created": "tasks_created"}


def month_bounds(period: str) -> tuple[dt.date, dt.date]:
    """First day of the month and first day of the next."""
    p = periods.month(period)
    return p.start, p.end + dt.timedelta(days=1)


async def tallies(session: AsyncSession, *, period: str) -> list[TallyOut]:
    """Per-station sums over a month, for the stations with an incident or a new task order in it."""
    start, end = month_bounds(period)
    stmt = (select(Measure.station_id, Measure.measure, func.sum(Measure.value))
            .where(Measure.day >= start, Measure.day < end, Measure.measure.in_(TALLIED.values()))
            .group_by(Measure.station_id, Measure.measure))
    sums: dict[str, dict[str, float]] = defaultdict(dict)
    for sid, measure, total in (await session.execute(stmt)).all():
        sums[sid][measure] = float(total)
    counted = sorted(sid for sid, got in sums.items() if got.get("incidents") or got.get("tasks_created"))
    modes = dict((await session.execute(select(UnitCopy.id, UnitCopy.mode).where(UnitCopy.id.in_(counted)))).all()
                 ) if counted else {}
    return [TallyOut(station_id=sid, mode=modes.get(sid),
                     **{field: round(sums[sid].get(measure, 0.0)) for field, measure in TALLIED.items()})
            for sid in counted]


# --- indicator versions --------------------------------------------------------------------------

def _covers(v: IndicatorVersion, month: str, mode: str | None) -> bool:
    return ((v.period_from is None or v.period_from <= month) and (v.period_to is None or month <= v.period_to)
            and (v.mode is None or v.mode == mode))


async def versions(session: AsyncSession) -> list[IndicatorVersion]:
    """Every stored version, oldest first."""
    return list((await session.execute(select(IndicatorVersion).order_by(IndicatorVersion.version))).scalars())


def resolve(all_versions: list[IndicatorVersion], month: str, mode: str | None) -> tuple[int, IndicatorSet]:
    """The set in force for a month and mode: the newest version whose scope covers both (0: the defaults)."""
    for v in reversed(all_versions):
        if _covers(v, month, mode):
            return v.version, IndicatorSet.model_validate(v.body)
    return 0, default_set()


#: PostgreSQL advisory-lock key serialising indicator version numbers (any constant unique to this purpose)
VERSION_LOCK = 0x6A7A_0006
#: …and announcing changed scores (the debounce loop, the recompute endpoint, every replica)
ANNOUNCE_LOCK = 0x6A7A_0007


async def change_indicators(session: AsyncSession, *, change: IndicatorChangeIn, who: Identity) -> IndicatorVersion:
    """Store a new version for the change's scope, built on what was in force there; its months become dirty.

    On PostgreSQL an advisory transaction lock makes concurrent saves take turns; on SQLite (one writer anyway)
    a collision on the version number surfaces as an IntegrityError that the API retries."""
    if who.role != "admin":
        raise Forbidden("only an admin may change indicators")
    if change.period_from and change.period_to and change.period_to < change.period_from:
        raise Invalid("period_to is before period_from")
    if session.bind.dialect.name == "postgresql":  # one version allocation at a time, held until commit
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": VERSION_LOCK})
    existing = await versions(session)
    _, base = resolve(existing, change.period_from or "0000-00", change.mode)
    new_set = apply_change(base, change)
    number = (existing[-1].version if existing else 0) + 1
    row = IndicatorVersion(version=number, period_from=change.period_from, period_to=change.period_to,
                           mode=change.mode, body=new_set.model_dump(mode="json"), note=change.note,
                           created_by=who.username, created_at=utcnow())
    session.add(row)
    await mark_dirty(session, await _months_with_measures(session, change.period_from, change.period_to))
    return row


async def _months_with_measures(session: AsyncSession, period_from: str | None, period_to: str | None) -> list[dt.date]:
    """The first day of each month in the scope that holds daily measures or imported history: the months whose
    scores a change moves (only those: a scope spanning centuries must not queue centuries of empty months)."""
    stmt = select(Measure.day).distinct()
    imported = select(HistoryMeasure.month).distinct()
    if period_from:
        stmt = stmt.where(Measure.day >= periods.month(period_from).start)
        imported = imported.where(HistoryMeasure.month >= period_from)
    if period_to:
        stmt = stmt.where(Measure.day <= periods.month(period_to).end)
        imported = imported.where(HistoryMeasure.month <= period_to)
    months = {day.replace(day=1) for day in (await session.execute(stmt)).scalars()}
    for label in (await session.execute(imported)).scalars():
        with contextlib.suppress(Invalid):  # a month stored before months were bounded: nothing can score it
            months.add(periods.month(label).start)
    return sorted(months)


def is_write_conflict(exc: Exception) -> bool:
    """A database error that means "another writer got there first" (SQLite busy/locked, a PostgreSQL
    serialization failure or deadlock): worth retrying the transaction."""
    text = str(getattr(exc, "orig", exc)).lower()
    return any(s in text for s in ("database is locked", "database is busy", "could not serialize", "deadlock"))


def version_out(v: IndicatorVersion | None, iset: IndicatorSet | None = None) -> IndicatorVersionOut:
    """A version as the API shows it (None: the defaults, version 0)."""
    if v is None:
        return IndicatorVersionOut(version=0, period_from=None, period_to=None, mode=None, note="defaults",
                                   created_by=None, created_at=None, body=(iset or default_set()).model_dump())
    return IndicatorVersionOut(version=v.version, period_from=v.period_from, period_to=v.period_to, mode=v.mode,
                               note=v.note, created_by=v.created_by, created_at=v.created_at, body=v.body)


# --- scores ----------------------------------------------------------------------------------------

SumsCache = dict[tuple[dt.date, dt.date], dict[str, dict[str, float]]]


async def load_period(session: AsyncSession, *, period: Period, station_ids: list[str], populations: list[float],
                      sets: list[IndicatorSet], sums_cache: SumsCache | None = None) -> scoring.PeriodData:
    """Aggregate the daily measures of a period (and last year's, and census days) for the engine.

    Sums come from `history.period_sums` (records, or imported history for station-months without records);
    `sums_cache` shares one aggregate per date range between the modes of one computation."""
    index = {s: i for i, s in enumerate(station_ids)}
    n = len(station_ids)
    data = scoring.PeriodData(station_ids=station_ids, days=period.days, months=period.months,
                              population=np.array([np.nan if p is None else p for p in populations], float))

    async def sums(start: dt.date, end: dt.date) -> tuple[dict[str, np.ndarray], np.ndarray]:
        out: dict[str, np.ndarray] = {}
        active = np.zeros(n, bool)
        if sums_cache is not None and (start, end) in sums_cache:
            per_station = sums_cache[(start, end)]
        else:
            per_station = await history.period_sums(session, start, end)
            if sums_cache is not None:
                sums_cache[(start, end)] = per_station
        for sid, measures in per_station.items():
            if sid in index:
                for measure, total in measures.items():
                    out.setdefault(measure, np.full(n, np.nan))[index[sid]] = total
                active[index[sid]] = True
        return out, active

    data.sums, data.active = await sums(period.start, period.end)
    if any(i.measurement.formula == "change_vs_last_year" for s in sets for i in s.indicators):
        ly = period.last_year()
        data.last_year, data.last_year_active = await sums(ly.start, ly.end)
    groups = {tuple(i.measurement.numerator) for s in sets for i in s.indicators
              if i.measurement.formula == "first_last_reduction"}
    for group in groups:
        per_day: dict[str, dict[dt.date, float]] = defaultdict(lambda: defaultdict(float))
        rows = await session.execute(select(Measure.station_id, Measure.day, Measure.value).where(
            Measure.day >= period.start, Measure.day <= period.end, Measure.measure.in_(group)))
        for sid, day, value in rows.all():
            per_day[sid][day] += value
        first, last, count = np.full(n, np.nan), np.full(n, np.nan), np.zeros(n)
        for sid, days in per_day.items():
            if sid in index:
                ordered = sorted(days)
                first[index[sid]], last[index[sid]] = days[ordered[0]], days[ordered[-1]]
                count[index[sid]] = len(ordered)
        data.first_last[group] = (first, last, count)
    return data


def _num(x: float) -> float | None:
    return None if x is None or math.isnan(x) else round(float(x), 4)


async def compute(session: AsyncSession, *, period: Period, known: dict[str, StationInfo],
                  with_trend: bool = True) -> ScoresOut:
    """Scores of every known station over a period, ranked within mode, coloured, with the trend."""
    all_versions = await versions(session)
    month = f"{period.start:%Y-%m}"
    by_mode: dict[str | None, list[StationInfo]] = defaultdict(list)
    for info in known.values():
        by_mode[info.mode].append(info)
    resolved = {mode: resolve(all_versions, month, mode) for mode in by_mode}
    rows: list[StationScoreOut] = []
    cache: SumsCache = {}
    for mode, infos in by_mode.items():
        version, iset = resolved[mode]
        data = await load_period(session, period=period, station_ids=[i.id for i in infos],
                                 populations=[i.population for i in infos], sets=[iset], sums_cache=cache)
        result = scoring.score(iset, data)
        inds = iset.indicators
        for k, info in enumerate(infos):
            total = _num(result.total[k])
            rows.append(StationScoreOut(
                station_id=info.id, name=info.name, mode=info.mode, total=total, outcome=_num(result.outcome[k]),
                process=_num(result.process[k]), complete=bool(result.complete[k]),
                indicators={ind.id: IndicatorScoreOut(value=_num(result.values[k, j]), score=_num(result.points[k, j]),
                                                      weight=ind.weight, target=ind.target, floor=ind.floor,
                                                      unit=ind.unit)
                            for j, ind in enumerate(inds)},
                rank_in_mode=None, colour=scoring.colour(total, iset.thresholds)))
    ranks = scoring.ranks_within_fast(np.array([r.mode or "~" for r in rows], dtype=object),
                                      np.array([np.nan if r.total is None else r.total for r in rows], float))
    for row, rank in zip(rows, ranks, strict=True):  # vectorised (the plain rule is O(n²): seconds at 3,000)
        row.rank_in_mode = int(rank) if row.total is not None else None
    if with_trend:
        before = await compute(session, period=period.previous(), known=known, with_trend=False)
        previous = {r.station_id: r.total for r in before.stations}
        for row in rows:
            row.previous_total = previous.get(row.station_id)
            if row.total is not None and row.previous_total is not None:
                row.trend = round(row.total - row.previous_total, 4)
                row.trend_direction = "up" if row.trend > 0.005 else "down" if row.trend < -0.005 else "flat"
    rows.sort(key=lambda r: (r.mode or "~", r.rank_in_mode or 10**9, r.station_id))
    return ScoresOut(period=period.label, start=period.start, end=period.end,
                     indicator_versions={mode or "none": v for mode, (v, _) in resolved.items()}, stations=rows)


async def scores(session: AsyncSession, *, period: Period, who: Identity, mode: str | None = None) -> ScoresOut:
    """Scores over a period; ranks are within each mode across the district, rows limited to what the caller sees."""
    known = await stations(session)
    shown = visible(who, known)
    out = await compute(session, period=period, known=known)
    out.stations = [r for r in out.stations if r.station_id in shown and (mode is None or r.mode == mode)]
    return out


async def station_score(session: AsyncSession, *, station_id: str, period: Period, who: Identity) -> StationScoreOut:
    """One station's score with indicator detail and trend; 404 outside the caller's jurisdiction."""
    known = await stations(session)
    if station_id not in visible(who, known):
        raise NotFound(f"no station {station_id}")
    out = await compute(session, period=period, known=known)
    return next(r for r in out.stations if r.station_id == station_id)


@contextlib.asynccontextmanager
async def announcing(rt: Runtime) -> AsyncIterator[AsyncSession]:
    """A transaction that announces changed scores, one at a time: the debounce loop and the recompute endpoint
    (an asyncio lock in this process) and every replica (a PostgreSQL advisory lock held until commit). Two at
    once both found a station unpublished and both inserted its row: a duplicate key, a 500 from the endpoint."""
    lock: asyncio.Lock = rt.state.setdefault("announce_lock", asyncio.Lock())
    async with lock, rt.transaction() as session:
        if session.bind.dialect.name == "postgresql":
            await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ANNOUNCE_LOCK})
        yield session


async def announce_dirty(session: AsyncSession, *, outbox: Outbox, limit: int = 24) -> int:
    """Re-score months whose records changed; stage `score.updated` for each station whose total or colour moved.

    Returns how many events were staged. Called on a debounce timer and by the recompute endpoint, so a burst
    of records yields one announcement per station and month, not one per record.
    """
    dirty = list((await session.execute(select(DirtyPeriod.period).order_by(DirtyPeriod.period).limit(limit)))
                 .scalars())
    staged = 0
    known = await stations(session) if dirty else {}
    for label in dirty:
        try:
            period = periods.month(label)
        except Invalid:  # marked before periods were bounded: no score can cover it
            period = None
        if period is not None:
            staged += await announce_period(session, outbox=outbox, period=period, known=known)
        await session.execute(delete(DirtyPeriod).where(DirtyPeriod.period == label))
    return staged


async def announce_period(session: AsyncSession, *, outbox: Outbox, period: Period,
                          known: dict[str, StationInfo]) -> int:
    """Re-score one month and announce the stations whose score changed since last announced."""
    result = await compute(session, period=period, known=known, with_trend=False)
    published = {p.station_id: p for p in (await session.execute(
        select(PublishedScore).where(PublishedScore.period == period.label))).scalars()}
    staged = 0
    for row in result.stations:
        last = published.get(row.station_id)
        if last is None and row.total is None:
            continue
        if last is not None and (last.total, last.colour, last.mode) == (row.total, row.colour, row.mode):
            continue
        last = last or PublishedScore(station_id=row.station_id, period=period.label, computed_at=utcnow())
        last.total, last.colour, last.mode, last.computed_at = row.total, row.colour, row.mode, utcnow()
        session.add(last)
        await outbox.stage(session, ScoreUpdated(station_id=row.station_id, period=period.label, mode=row.mode,
                                                 total=row.total, colour=row.colour), subject=row.station_id)
        staged += 1
    return staged
