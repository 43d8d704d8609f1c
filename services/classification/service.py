"""Classification use cases: stations and tallies from events, imported features, modes and overrides."""
from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterable

from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from services.classification.features import (
    activity_tallies,
    features_from_tallies,
    incident_tallies,
    month_of,
    window_months,
)
from services.classification.models import (
    FEATURE_NAME,
    PERIOD_PATTERN,
    FeaturesIn,
    FeaturesOut,
    ImportOut,
    ModeOut,
    OverrideIn,
    Station,
    StationFeatureSet,
    StationMode,
    StationTally,
)
from shared.auth import Identity
from shared.bulk import insert_many
from shared.db import utcnow
from shared.errors import Invalid, NotFound
from shared.events import ActivityRecorded, IncidentReported, StationClassified, UnitUpserted
from shared.outbox import Outbox
from shared.pagination import Keyset, Page, PageRequest
from shared.scope import Scope

_FEATURE = re.compile(FEATURE_NAME)
_PERIOD = re.compile(PERIOD_PATTERN)


async def remember_station(session: AsyncSession, *, fact: UnitUpserted) -> None:
    """Keep the read copy of a station dispatch announced."""
    if fact.kind != "station":
        return
    station = await session.get(Station, fact.unit_id) or Station(id=fact.unit_id, name=fact.name)
    station.name, station.parent_id, station.area_type = fact.name, fact.parent_id, fact.area_type
    station.population, station.area_km2 = fact.population, fact.area_km2
    session.add(station)


async def _add_tallies(session: AsyncSession, station_id: str, month: str, tallies: dict[str, float]) -> None:
    if not tallies:
        return
    dialect = postgresql if session.bind.dialect.name == "postgresql" else sqlite
    rows = [{"station_id": station_id, "month": month, "name": n, "value": v} for n, v in tallies.items()]
    stmt = dialect.insert(StationTally.__table__)
    stmt = stmt.on_conflict_do_update(index_elements=["station_id", "month", "name"],
                                      set_={"value": StationTally.__table__.c.value + stmt.excluded.value})
    await session.execute(stmt, rows)


async def tally_incident(session: AsyncSession, *, fact: IncidentReported, timezone: str) -> None:
    """Count a reported incident (kind, deaths, injuries) in its station's local month."""
    if fact.station_id is None:
        return
    tallies = incident_tallies(fact.kind, deaths=fact.severity.deaths, injuries=fact.severity.injuries)
    await _add_tallies(session, fact.station_id, month_of(fact.occurred_at, timezone), tallies)


async def tally_activity(session: AsyncSession, *, fact: ActivityRecorded, timezone: str) -> None:
    """Count an activity (violations, education, hazard remediation) in its station's local month."""
    tallies = activity_tallies(fact.kind, count=fact.count, details=fact.details)
    await _add_tallies(session, fact.station_id, month_of(fact.occurred_at, timezone), tallies)


def check_features(features: dict[str, float], *, where: str = "") -> None:
    """Feature names are snake_case; values finite and not negative."""
    for name, value in features.items():
        if not _FEATURE.match(name):
            raise Invalid(f"{where}feature name {name!r} must be snake_case (a-z, 0-9, _), at most 64 characters")
        if not math.isfinite(value):
            raise Invalid(f"{where}feature {name} must be a finite number")
        if value < 0:
            raise Invalid(f"{where}feature {name} is negative: features are rates and counts")


async def put_features(session: AsyncSession, *, station_id: str, data: FeaturesIn) -> None:
    """Store precomputed features of a station for a period (replacing values of the same names)."""
    if await session.get(Station, station_id) is None:
        raise NotFound(f"station {station_id} is not known (create it as a unit first)")
    check_features(data.features)
    await _store_feature_sets(session, {(station_id, data.period): data.features})


async def _store_feature_sets(session: AsyncSession, sets: dict[tuple[str, str], dict[str, float]]) -> None:
    now = utcnow()
    table = StationFeatureSet.__table__
    existing: dict[tuple[str, str], dict] = {}
    for period in {p for _, p in sets}:
        ids = [s for s, p in sets if p == period]
        for chunk in _chunks(ids, 5000):
            rows = await session.execute(select(table.c.station_id, table.c.features).where(
                table.c.period == period, table.c.station_id.in_(chunk)))
            existing.update({(sid, period): values for sid, values in rows})
    new = [{"station_id": s, "period": p, "features": v} for (s, p), v in sets.items() if (s, p) not in existing]
    changed = [{"b_station_id": s, "b_period": p, "features": existing[(s, p)] | v, "updated_at": now}
               for (s, p), v in sets.items() if (s, p) in existing]
    await insert_many(session, table, new, constants={"updated_at": now})
    if changed:
        await session.execute(update(table).where(table.c.station_id == bindparam("b_station_id"),
                                                  table.c.period == bindparam("b_period"))
                              .values(features=bindparam("features"), updated_at=bindparam("updated_at"))
                              .execution_options(synchronize_session=False), changed)


def parse_features_csv(text: str, *, max_rows: int) -> dict[tuple[str, str], dict[str, float]]:
    """Rows `station_id,period,<feature>…` → feature sets; an empty cell leaves that feature out."""
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header or [h.strip() for h in header[:2]] != ["station_id", "period"] or len(header) < 3:
        raise Invalid("the CSV header must be `station_id,period,<feature>,…` with at least one feature")
    names = [h.strip() for h in header[2:]]
    for name in names:
        if not _FEATURE.match(name):
            raise Invalid(f"column {name!r} is not a feature name (snake_case, a-z, 0-9, _)")
    if len(set(names)) != len(names):
        raise Invalid("a feature column appears twice in the header")
    sets: dict[tuple[str, str], dict[str, float]] = {}
    for line, row in enumerate(reader, start=2):
        if not row or not any(cell.strip() for cell in row):
            continue
        if len(sets) >= max_rows:
            raise Invalid(f"at most {max_rows} rows per import")
        if len(row) != len(header):
            raise Invalid(f"line {line}: {len(row)} cells, the header has {len(header)}")
        station_id, period = row[0].strip(), row[1].strip()
        if not station_id or not _PERIOD.match(period):
            raise Invalid(f"line {line}: a station id and a period (YYYY or YYYY-MM) are required")
        if (station_id, period) in sets:
            raise Invalid(f"line {line}: station {station_id} appears twice for period {period}")
        values: dict[str, float] = {}
        for name, cell in zip(names, row[2:], strict=True):
            cell = cell.strip()
            if not cell:
                continue
            try:
                values[name] = float(cell)
            except ValueError:
                raise Invalid(f"line {line}: {name} = {cell!r} is not a number") from None
        if not values:
            raise Invalid(f"line {line}: no feature values")
        check_features(values, where=f"line {line}: ")
        sets[(station_id, period)] = values
    if not sets:
        raise Invalid("the CSV has no rows")
    return sets


async def import_features(session: AsyncSession, *, sets: dict[tuple[str, str], dict[str, float]]) -> ImportOut:
    """Store parsed feature sets; every station must be known."""
    ids = sorted({s for s, _ in sets})
    known: set[str] = set()
    for chunk in _chunks(ids, 5000):
        known.update((await session.execute(select(Station.id).where(Station.id.in_(chunk)))).scalars())
    unknown = [s for s in ids if s not in known]
    if unknown:
        raise Invalid(f"{len(unknown)} unknown station(s), e.g. {', '.join(unknown[:10])}: create them as units first",
                      unknown=unknown[:100])
    await _store_feature_sets(session, sets)
    return ImportOut(rows=len(sets), stations=len(ids), periods=sorted({p for _, p in sets}),
                     features=sorted({n for v in sets.values() for n in v}))


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


async def station_in_view(session: AsyncSession, *, station_id: str, who: Identity) -> Station:
    """The station if the caller's jurisdiction covers it; NotFound otherwise (existence is not leaked)."""
    scope = Scope.of(who, what="stations' features and modes")
    station = await session.get(Station, station_id)
    if station is None or not scope.covers(station.id, squadron_id=station.parent_id):
        raise NotFound(f"station {station_id} not found")
    return station


async def tallies_in_window(session: AsyncSession, *, period: str,
                            station_ids: list[str] | None = None) -> dict[str, dict[str, float]]:
    """Per station, the event tallies summed over the period's months."""
    months = window_months(period)
    stmt = select(StationTally).where(StationTally.month.in_(months))
    if station_ids is not None:
        stmt = stmt.where(StationTally.station_id.in_(station_ids))
    totals: dict[str, dict[str, float]] = {}
    for row in (await session.execute(stmt)).scalars():
        per = totals.setdefault(row.station_id, {})
        per[row.name] = per.get(row.name, 0.0) + row.value
    return totals


async def get_features(session: AsyncSession, *, station_id: str, period: str, who: Identity) -> FeaturesOut:
    """A station's features for a period: the imported set if any, else computed from events."""
    station = await station_in_view(session, station_id=station_id, who=who)
    imported = await session.get(StationFeatureSet, (station_id, period))
    if imported is not None:
        return FeaturesOut(station_id=station_id, period=period, source="import", features=imported.features)
    tallies = (await tallies_in_window(session, period=period, station_ids=[station_id])).get(station_id, {})
    features = features_from_tallies(tallies, population=station.population, area_km2=station.area_km2)
    return FeaturesOut(station_id=station_id, period=period, source="events", features=features, tallies=tallies)


def mode_out(state: StationMode | None, station_id: str) -> ModeOut:
    """A station's mode record as the API shows it."""
    if state is None:
        return ModeOut(station_id=station_id, mode=None, mode_source=None)
    return ModeOut(station_id=station_id, mode=state.mode,
                   mode_source=None if state.mode is None else ("override" if state.override_mode else "model"),
                   model_mode=state.model_mode, run_id=state.run_id, override_mode=state.override_mode,
                   override_reason=state.override_reason, override_by=state.override_by,
                   override_at=state.override_at)


async def get_mode(session: AsyncSession, *, station_id: str, who: Identity) -> ModeOut:
    """One station's mode with the model's choice beside any override."""
    await station_in_view(session, station_id=station_id, who=who)
    return mode_out(await session.get(StationMode, station_id), station_id)


async def list_modes(session: AsyncSession, *, who: Identity, page: PageRequest) -> Page[ModeOut]:
    """A page of the stations the caller sees (by id), with each one's mode beside any override; officers only."""
    scope = Scope.of(who, what="station modes")
    stmt = select(Station)
    if (where := scope.clause(Station.id, units=(Station.parent_id,))) is not None:  # a zone: its squadron's
        stmt = stmt.where(where)
    stations, next_cursor = await Keyset(Station.id).page(session, stmt, page)
    ids = [s.id for s in stations]
    states = {s.station_id: s for s in (await session.execute(
        select(StationMode).where(StationMode.station_id.in_(ids)))).scalars()} if ids else {}
    return Page(items=[mode_out(states.get(i), i) for i in ids], next_cursor=next_cursor)


async def set_override(session: AsyncSession, *, outbox: Outbox, station_id: str, data: OverrideIn,
                       who: Identity) -> ModeOut:
    """Put a station in a mode whatever the model says; the override survives re-runs until removed."""
    await station_in_view(session, station_id=station_id, who=who)
    now = utcnow()
    state = await session.get(StationMode, station_id) or StationMode(station_id=station_id, updated_at=now)
    before = state.mode
    state.override_mode, state.override_reason, state.override_by, state.override_at = (
        data.mode, data.reason, who.username, now)
    state.mode, state.updated_at = data.mode, now
    session.add(state)
    if state.mode != before:
        await outbox.stage(session, StationClassified(station_id=station_id, mode=data.mode, previous_mode=before,
                                                      source="override", run_id=state.run_id), subject=station_id)
    return mode_out(state, station_id)


async def clear_override(session: AsyncSession, *, outbox: Outbox, station_id: str, who: Identity) -> ModeOut:
    """Remove an override: the model's latest choice is in force again."""
    await station_in_view(session, station_id=station_id, who=who)
    state = await session.get(StationMode, station_id)
    if state is None or state.override_mode is None:
        raise NotFound(f"station {station_id} has no mode override")
    before = state.mode
    state.override_mode = state.override_reason = state.override_by = None
    state.override_at = None
    state.mode, state.updated_at = state.model_mode, utcnow()
    session.add(state)
    if state.mode is not None and state.mode != before:
        await outbox.stage(session, StationClassified(station_id=station_id, mode=state.mode, previous_mode=before,
                                                      source="model", run_id=state.run_id), subject=station_id)
    return mode_out(state, station_id)
