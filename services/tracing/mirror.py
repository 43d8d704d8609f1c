"""One replica's memory of the database: the engine's index and the catalogue, kept up with every replica's writes.

Each tracing replica sees only some incident events (replicas share one durable consumer) and only the registry
and catalogue writes sent to it. The database is the source of truth: `Mirror.load` reads everything at start and
`Mirror.catch_up` reads the rows whose change stamp (services/tracing/changes.py) lies between the replica's
high-water mark and the clock. When nothing changed that is one primary-key read of the clock row. Catching up is
safe to run concurrently (the consumer, the API and the background loop all call it): accidents are immutable,
and hazards, road sections and models are applied only if their stamp or version is newer than the one held.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.tracing import changes
from services.tracing.catalogue import Catalogue, TracingModel
from services.tracing.index import Accident, Index
from services.tracing.models import HazardPoint, ModelRevision, RoadSection, TracedIncident
from services.tracing.registries import hazard_of, section_of

log = logging.getLogger(__name__)

_ACCIDENT_COLUMNS = (TracedIncident.incident_id, TracedIncident.occurred_at, TracedIncident.lat, TracedIncident.lon,
                     TracedIncident.junction, TracedIncident.persons, TracedIncident.operators,
                     TracedIncident.villages, TracedIncident.seq)


@dataclass
class Mirror:
    """The index and catalogue one replica evaluates with, and how far into the change clock it has read."""

    shipped: Catalogue
    index: Index = field(default_factory=Index)
    catalogue: Catalogue | None = None
    mark: int = 0
    stamps: dict[str, int] = field(default_factory=dict)  # "hazard:<id>" / "section:<id>" → stamp applied
    applied: int = 0  # rows applied by catch-ups so far (for logs and tests)

    @property
    def models(self) -> Catalogue:
        """The catalogue in force on this replica."""
        return self.catalogue or self.shipped

    @classmethod
    async def load(cls, session: AsyncSession, *, shipped: Catalogue) -> Mirror:
        """Everything from the database: traced accidents, open hazards, road sections, the latest model versions."""
        mirror = cls(shipped=shipped)
        mirror.mark = await changes.clock(session)  # read first: whatever commits later is caught up later
        for row in await session.execute(select(*_ACCIDENT_COLUMNS)):
            mirror.index.add_accident(_accident(row))
        for hazard in (await session.execute(select(HazardPoint).where(HazardPoint.status == "open"))).scalars():
            mirror._put_hazard(hazard)
        for section in (await session.execute(select(RoadSection))).scalars():
            mirror._put_section(section)
        revisions = (await session.execute(select(ModelRevision).order_by(ModelRevision.version))).scalars()
        mirror._put_revisions(list(revisions))
        return mirror

    async def catch_up(self, session: AsyncSession) -> int:
        """Apply every row stamped above the high-water mark up to the clock; returns how many rows were read."""
        high = await changes.clock(session)
        low = self.mark
        if high <= low:
            return 0
        window = (TracedIncident.seq > low) & (TracedIncident.seq <= high)
        rows = 0
        for row in await session.execute(select(*_ACCIDENT_COLUMNS).where(window)):
            self._put_accident(_accident(row))
            rows += 1
        for table, put in ((HazardPoint, self._put_hazard), (RoadSection, self._put_section)):
            for record in (await session.execute(select(table).where(table.seq > low, table.seq <= high))).scalars():
                put(record)
                rows += 1
        revisions = list((await session.execute(select(ModelRevision).where(
            ModelRevision.seq > low, ModelRevision.seq <= high).order_by(ModelRevision.version))).scalars())
        self._put_revisions(revisions)
        rows += len(revisions)
        self.mark = max(self.mark, high)
        self.applied += rows
        return rows

    # --- applying rows ---------------------------------------------------------------------------------

    def _put_accident(self, accident: Accident) -> None:
        held = self.index.accidents.get(accident.incident_id)
        if held is None or not held.same_facts(accident):
            self.index.add_accident(accident)
        elif held.seq is None:
            held.seq = accident.seq  # this replica's own accident, now known to be committed

    def _newer(self, key: str, seq: int) -> bool:
        if seq <= self.stamps.get(key, -1) and seq != changes.UNSTAMPED:
            return False
        self.stamps[key] = seq
        return True

    def _put_hazard(self, row: HazardPoint) -> None:
        if self._newer(f"hazard:{row.id}", row.seq):
            self.index.put_hazard(hazard_of(row), hazard_id=row.id)

    def _put_section(self, row: RoadSection) -> None:
        if self._newer(f"section:{row.id}", row.seq):
            self.index.put_section(section_of(row), section_id=row.id)

    def _put_revisions(self, rows: list[ModelRevision]) -> None:
        catalogue = self.models
        for row in rows:
            current = catalogue.get(row.model_id)
            if current is not None and row.version > current.version:
                catalogue = catalogue.replaced(TracingModel.model_validate(row.body))
        self.catalogue = catalogue

    def forget_unless_committed(self, incident_id: str) -> None:
        """Take back an accident whose tracing rolled back, unless a catch-up has seen it committed meanwhile."""
        held = self.index.accidents.get(incident_id)
        if held is not None and held.seq is None:
            self.index.drop_accident(incident_id)


def _accident(row: tuple) -> Accident:
    return Accident(row[0], row[1].timestamp(), row[2], row[3], row[4], tuple(row[5]), tuple(row[6]), tuple(row[7]),
                    row[8])


async def keep_up(mirror: Mirror, sessions: async_sessionmaker[AsyncSession], interval_s: float) -> None:
    """Catch up every `interval_s` seconds until cancelled, so little is left to read when an incident comes."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            async with sessions() as session:
                await mirror.catch_up(session)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - database away: the next round (or the next incident) retries
            log.warning("tracing catch-up failed: %s", exc)
