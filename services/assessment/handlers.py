"""Assessment's bus door: incidents and task orders from dispatch, modes from classification."""
from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.assessment import service
from shared.bus import Subscription
from shared.events import Envelope, IncidentReported, StationClassified, TaskChanged
from shared.runtime import Runtime


def subscriptions(rt: Runtime) -> list[Subscription]:
    """Everything assessment counts."""
    tz = rt.settings.timezone

    async def on_incident(session: AsyncSession, fact: IncidentReported, _: Envelope) -> None:
        await service.count_incident(session, fact=fact, tz=tz)

    async def on_task(session: AsyncSession, fact: TaskChanged, _: Envelope) -> None:
        await service.count_task(session, fact=fact, tz=tz)

    async def on_mode(session: AsyncSession, fact: StationClassified, _: Envelope) -> None:
        await service.remember_mode(session, fact=fact)

    return [
        Subscription("assessment", "dispatch", {IncidentReported: on_incident, TaskChanged: on_task}),
        Subscription("assessment", "classification", {StationClassified: on_mode}),
    ]
