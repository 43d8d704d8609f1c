"""What assessment's tests share: events as dispatch and classification publish them, and the tallies."""
from __future__ import annotations

import uuid
from typing import Any

from shared.events import (
    Envelope,
    IncidentReported,
    Location,
    Severity,
    StationClassified,
    TaskChanged,
    UnitUpserted,
)
from tests.helpers import Service, envelope_of


def unit(unit_id: str, kind: str = "station", parent_id: str | None = None, population: int | None = None
         ) -> Envelope:
    return envelope_of(UnitUpserted(unit_id=unit_id, name=unit_id.upper(), kind=kind, parent_id=parent_id,
                             population=population))


def mode(station_id: str, mode_: str) -> Envelope:
    return envelope_of(StationClassified(station_id=station_id, mode=mode_, source="model"))


def accident(station_id: str, occurred_at: str, kind: str = "accident") -> Envelope:
    return envelope_of(IncidentReported(
        incident_id=f"inc-{uuid.uuid4().hex}", external_id=f"ext-{uuid.uuid4().hex[:8]}", kind=kind,
        occurred_at=occurred_at, location=Location(lat=30.1, lon=120.45), station_id=station_id,
        severity=Severity()))


def task(task_id: str, station_id: str, at: str, *, old: str | None = None, new: str = "dispatched",
         category: str = "enterprise_rectification", deadline_at: str | None = None) -> Envelope:
    return envelope_of(TaskChanged(task_id=task_id, incident_id=None, model_id="E01", category=category,
                            station_id=station_id, unit_id=station_id, old_status=old, new_status=new, by="x",
                            at=at, deadline_at=deadline_at))


async def tallies(a: Service, period: str, role: str = "command", unit_id: str | None = None) -> dict[str, Any]:
    """Per-station counts of a period, keyed by station."""
    response = await a.get("/api/v1/assessment/tallies", role, unit_id, period=period)
    assert response.status_code == 200, response.text
    assert response.json()["period"] == period
    return {row.pop("station_id"): row for row in response.json()["stations"]}
