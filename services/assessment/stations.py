"""Station info: the unit copy (names, kinds, the tree, populations, modes), which stations exist and who sees them.

Kept from dispatch's `unit.upserted` and classification's `station.classified` in one table (`UnitCopy`); read by
records, history, scores, the board and reports.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.assessment.models import Measure, UnitCopy
from shared.auth import Identity
from shared.db import insert_ignoring_duplicates, utcnow
from shared.errors import Forbidden
from shared.events import StationClassified, UnitUpserted
from shared.scope import Scope


@dataclass(frozen=True)
class StationInfo:
    """What assessment knows of a station."""

    id: str
    name: str | None
    mode: str | None
    parent_id: str | None
    population: int | None


# --- keeping the copy ------------------------------------------------------------------------------

async def _unit_copy(session: AsyncSession, unit_id: str) -> UnitCopy:
    """The unit's copy, made first if this is its first news. Dispatch's unit event and classification's mode
    event for a new station arrive through two consumers at once: the row is made with INSERT … ON CONFLICT DO
    NOTHING, so the second one updates it instead of failing on its key (and retrying its whole batch)."""
    unit = await session.get(UnitCopy, unit_id)
    if unit is None:
        await session.execute(insert_ignoring_duplicates(UnitCopy.__table__, session.bind.dialect.name,
                                                         id=unit_id, updated_at=utcnow()))
        unit = await session.get(UnitCopy, unit_id)
    assert unit is not None
    return unit


async def remember_unit(session: AsyncSession, *, fact: UnitUpserted) -> None:
    """Keep the unit tree and stations' populations (a mode already known stays)."""
    unit = await _unit_copy(session, fact.unit_id)
    unit.name, unit.kind, unit.parent_id = fact.name, fact.kind, fact.parent_id
    unit.area_type, unit.population, unit.updated_at = fact.area_type, fact.population, utcnow()
    session.add(unit)


async def remember_mode(session: AsyncSession, *, fact: StationClassified) -> None:
    """Keep the station's mode in force (a station not yet announced by dispatch gets a row with only its mode)."""
    unit = await _unit_copy(session, fact.station_id)
    unit.mode, unit.updated_at = fact.mode, utcnow()
    session.add(unit)


# --- reading it ------------------------------------------------------------------------------------

async def stations(session: AsyncSession) -> dict[str, StationInfo]:
    """Every station known from units, modes or records, by id."""
    units = {u.id: u for u in (await session.execute(select(UnitCopy))).scalars()}
    seen = set((await session.execute(select(Measure.station_id).distinct())).scalars())
    ids = {u.id for u in units.values() if u.kind == "station" or u.mode is not None}
    ids |= {s for s in seen if s not in units}
    out = {}
    for sid in sorted(ids):
        u = units.get(sid)
        out[sid] = (StationInfo(sid, u.name, u.mode, u.parent_id, u.population) if u
                    else StationInfo(sid, None, None, None, None))
    return out


def visible(who: Identity, known: dict[str, StationInfo]) -> dict[str, StationInfo]:
    """The stations in the caller's jurisdiction (Forbidden for a platform)."""
    shown = Scope.of(who, what="scores, boards and reports").stations({k: v.parent_id for k, v in known.items()})
    return {k: v for k, v in known.items() if k in shown}


async def known_stations(session: AsyncSession, ids: Iterable[str]) -> set[str]:
    """Which of these ids assessment knows as stations (announced as a station, or classified into a mode)."""
    wanted = list(set(ids))
    out: set[str] = set()
    for chunk in range(0, len(wanted), 500):
        out.update((await session.execute(select(UnitCopy.id).where(
            UnitCopy.id.in_(wanted[chunk:chunk + 500]),
            or_(UnitCopy.kind == "station", UnitCopy.mode.is_not(None))))).scalars())
    return out


async def announced_kinds(session: AsyncSession, ids: Iterable[str]) -> dict[str, str]:
    """The kind dispatch announced for each of these ids (absent: not announced, perhaps only classified)."""
    wanted = list(set(ids))
    out: dict[str, str] = {}
    for chunk in range(0, len(wanted), 500):
        rows = await session.execute(select(UnitCopy.id, UnitCopy.kind).where(
            UnitCopy.id.in_(wanted[chunk:chunk + 500]), UnitCopy.kind.is_not(None)))
        out.update(dict(rows.all()))
    return out


async def may_record_for(session: AsyncSession, who: Identity, station_id: str) -> bool:
    """Platforms and the command centre record for any station; a station for itself; a squadron for its zone."""
    try:
        scope = Scope.of(who, platforms=True)
    except Forbidden:
        return False
    if scope.kind in ("district", "platform"):
        return True
    unit = await session.get(UnitCopy, station_id) if scope.kind == "zone" else None
    return scope.covers(station_id, squadron_id=unit.parent_id if unit is not None else None)
