"""The 5-minute arrival rate: arrivals at most 300 s after dispatch ÷ dispatched incidents, grouped."""
from __future__ import annotations

import datetime as dt
from typing import Literal

from sqlalchemy import case, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.dispatch.models import Incident
from services.dispatch.schemas import ArrivalRateGroup, ArrivalRatesOut
from services.dispatch.service import ARRIVAL_THRESHOLD_S, incident_scope
from shared.auth import Identity
from shared.errors import InvalidParameter
from shared.scope import Scope

GroupBy = Literal["unit", "station", "mode", "district"]


async def arrival_rates(session: AsyncSession, *, viewer: Identity, group_by: GroupBy,
                        since: dt.datetime | None = None, until: dt.datetime | None = None) -> ArrivalRatesOut:
    """Per group, for dispatched incidents in the viewer's jurisdiction that occurred in [since, until).

    Incidents outside every area are never dispatched and so do not count. `district` is one group over
    everything the viewer sees (the whole district for command staff).
    """
    Scope.of(viewer, what="arrival rates")
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise InvalidParameter(name, f"{name} needs an offset, e.g. 2024-05-01T00:00:00+08:00")
    if since and until and until <= since:
        raise InvalidParameter("until", "until must be after since")
    key = {
        "unit": Incident.handling_unit_id,
        "station": Incident.station_id,
        "mode": func.coalesce(Incident.mode, "unknown"),
        "district": literal_column("'district'"),
    }[group_by].label("key")
    within = func.sum(case((Incident.response_s <= ARRIVAL_THRESHOLD_S, 1), else_=0))
    stmt = (select(key, func.count(), func.count(Incident.arrived_at), within, func.avg(Incident.response_s))
            .where(Incident.handling_unit_id.is_not(None), Incident.dispatched_at.is_not(None)))
    if group_by != "district":  # the district is one row over everything in scope
        stmt = stmt.group_by(key).order_by(key)
    scope = await incident_scope(session, viewer)
    if scope is not None:
        stmt = stmt.where(scope)
    if since:
        stmt = stmt.where(Incident.occurred_at >= since)
    if until:
        stmt = stmt.where(Incident.occurred_at < until)
    groups = [
        ArrivalRateGroup(key=str(k), dispatched=n, arrived=arrived, within_5_min=int(ok or 0),
                         rate=round(int(ok or 0) / n, 4) if n else None,
                         mean_response_s=None if mean is None else round(float(mean), 1))
        for k, n, arrived, ok, mean in (await session.execute(stmt)).all()
    ]
    return ArrivalRatesOut(group_by=group_by, since=since, until=until, threshold_s=ARRIVAL_THRESHOLD_S,
                           groups=groups)
