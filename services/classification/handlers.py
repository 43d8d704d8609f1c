"""Classification's bus door: stations from dispatch, incidents and activities counted for features."""
from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.classification import service
from shared.bus import Subscription
from shared.events import ActivityRecorded, Envelope, IncidentReported, UnitUpserted
from shared.runtime import Runtime


def subscriptions(rt: Runtime) -> list[Subscription]:
    """Units and incidents from dispatch; activities (violations, education, hazards) from assessment."""
    timezone = rt.settings.timezone

    async def on_unit(session: AsyncSession, fact: UnitUpserted, _: Envelope) -> None:
        await service.remember_station(session, fact=fact)

    async def on_incident(session: AsyncSession, fact: IncidentReported, _: Envelope) -> None:
        await service.tally_incident(session, fact=fact, timezone=timezone)

    async def on_activity(session: AsyncSession, fact: ActivityRecorded, _: Envelope) -> None:
        await service.tally_activity(session, fact=fact, timezone=timezone)

    return [
        Subscription("classification", "dispatch", {UnitUpserted: on_unit, IncidentReported: on_incident}),
        Subscription("classification", "assessment", {ActivityRecorded: on_activity}),
    ]
