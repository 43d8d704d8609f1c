"""Assessment's HTTP door: the counts scoring will be built on."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from services.assessment import service
from services.assessment.models import TalliesOut
from shared.runtime import CallerDep, RuntimeDep

router = APIRouter(prefix="/api/v1")


@router.get("/assessment/tallies", response_model=TalliesOut, tags=["assessment"])
async def tallies(rt: RuntimeDep, who: CallerDep,
                  period: Annotated[str, Query(pattern=r"^\d{4}-\d{2}$")]) -> TalliesOut:
    """Incidents, casualties and task orders per station for a month (a station sees its own row)."""
    async with rt.sessions() as session:
        rows = await service.tallies(session, period=period)
    if not who.sees_whole_district:
        rows = [r for r in rows if r.station_id == who.unit_id]
    return TalliesOut(period=period, stations=rows)
