"""The unit directory each replica keeps in memory: units, their modes and parents, and the area index.

Routing an order or dispatching an incident needs the station's mode, its parent and the first unit of
a kind; reading those rows for every order was most of the routing cost. A replica now keeps them in
memory, beside the spatial index, and trusts its copy only as long as the stored revision matches:

- every write that changes units (`upsert_units`) or a station's mode (`apply_classification`) bumps
  the single `directory_revision` row in its own transaction (`units`, and `areas` when areas may
  have changed);
- every routing or intake transaction first reads that row (one primary-key lookup, remembered for
  the rest of the transaction) and reloads the copy if the revision moved.

So a mode change applies to the very next order on every replica, not after a cache period, and the
index is rebuilt only when areas changed (a mode change reloads the ~30 unit rows, not the polygons).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.dispatch.areas import AreaIndex
from services.dispatch.models import DirectoryRevision, Unit
from shared.db import insert_ignoring_duplicates

STATE_KEY = "directory"
_CHECKED = "dispatch.directory"  # session.info key: the directory already checked in this transaction
_DIRTY = "dispatch.directory.dirty"  # session.info key: this transaction changed units (not committed yet)


@dataclass(frozen=True)
class UnitInfo:
    """What routing needs of a unit."""

    id: str
    kind: str
    parent_id: str | None
    mode: str | None


@dataclass(frozen=True)
class Directory:
    """A consistent in-memory copy of the unit tree at one stored revision."""

    revision: tuple[int, int]  # (units, areas)
    units: dict[str, UnitInfo]
    areas: AreaIndex
    first_of_kind: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, revision: tuple[int, int], units: list[UnitInfo], areas: AreaIndex) -> Directory:
        """A directory over these units (first of each kind by id)."""
        first: dict[str, str] = {}
        for unit in sorted(units, key=lambda u: u.id):
            first.setdefault(unit.kind, unit.id)
        return cls(revision, {u.id: u for u in units}, areas, first)

    def resolve_target(self, station: UnitInfo, target: str) -> tuple[str, str]:
        """Turn a target kind into a unit id near the station, with a note when it had to fall back."""
        if target == "station":
            return station.id, ""
        if target == "squadron":
            parent = self.units.get(station.parent_id) if station.parent_id else None
            if parent is not None and parent.kind == "squadron":
                return parent.id, ""
            return station.id, f"; station {station.id} has no traffic squadron, kept at the station"
        unit_id = self.first_of_kind.get(target)
        if unit_id is not None:
            return unit_id, ""
        return station.id, f"; no {target} exists, kept at the station"


async def ensure_row(session: AsyncSession) -> None:
    """Create the revision row if it is missing (replicas may race: harmless)."""
    await session.execute(insert_ignoring_duplicates(
        DirectoryRevision.__table__, session.bind.dialect.name, id=1, units=1, areas=1))


async def bump(session: AsyncSession, *, areas: bool) -> None:
    """Record in the caller's transaction that units (and maybe areas) changed; copies reload on next use."""
    values = {"units": DirectoryRevision.units + 1}
    if areas:
        values["areas"] = DirectoryRevision.areas + 1
    stmt = update(DirectoryRevision).where(DirectoryRevision.id == 1).values(**values)
    if (await session.execute(stmt.execution_options(synchronize_session=False))).rowcount == 0:
        await ensure_row(session)
        await session.execute(stmt.execution_options(synchronize_session=False))
    session.info.pop(_CHECKED, None)
    session.info[_DIRTY] = True


async def current(state: dict, session: AsyncSession) -> Directory:
    """The directory as stored now: the replica's copy if its revision is still current, else a fresh one."""
    checked = session.info.get(_CHECKED)
    if checked is not None:
        return checked
    row = (await session.execute(select(DirectoryRevision.units, DirectoryRevision.areas)
                                 .where(DirectoryRevision.id == 1))).first()
    revision = (row.units, row.areas) if row is not None else (0, 0)
    cached: Directory | None = state.get(STATE_KEY)
    if session.info.get(_DIRTY):  # sees its own uncommitted changes: never share that copy
        cached = await _load(session, revision, None)
    elif cached is None or cached.revision != revision:
        cached = await _load(session, revision, cached)
        state[STATE_KEY] = cached
    session.info[_CHECKED] = cached
    return cached


async def _load(session: AsyncSession, revision: tuple[int, int], old: Directory | None) -> Directory:
    rows = (await session.execute(select(Unit.id, Unit.kind, Unit.parent_id, Unit.mode))).all()
    units = [UnitInfo(r.id, r.kind, r.parent_id, r.mode) for r in rows]
    if old is not None and old.revision[1] == revision[1]:
        areas = old.areas  # only units or modes changed: keep the index
    else:
        areas_rows = await session.execute(
            select(Unit.id, Unit.area).where(Unit.kind == "station", Unit.area.is_not(None)))
        areas = AreaIndex.build({r.id: r.area for r in areas_rows})
    return Directory.of(revision, units, areas)
