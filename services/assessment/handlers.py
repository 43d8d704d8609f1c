"""Assessment's bus door: incidents, dispatch, arrivals and task orders from dispatch; modes from classification."""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.assessment import records, stations
from shared.bus import Handler, Subscription
from shared.db import utcnow
from shared.events import (
    Envelope,
    IncidentArrived,
    IncidentDispatched,
    IncidentReported,
    StationClassified,
    TaskChanged,
    TaskEscalated,
    TaskOverdue,
    TaskOverdueV2,
    UnitUpserted,
)
from shared.runtime import Runtime


def subscriptions(rt: Runtime) -> list[Subscription]:
    """Everything assessment counts."""
    tz = rt.settings.timezone

    def counted(count: Callable[..., Awaitable[None]]) -> Handler:
        """A handler that counts the event on its local day (in the district's time zone)."""
        async def handle(session: AsyncSession, fact: Any, _: Envelope) -> None:
            await count(session, fact=fact, tz=tz)
        return handle

    on_incident, on_dispatched, on_arrived = (counted(records.on_incident), counted(records.on_dispatched),
                                              counted(records.on_arrived))
    on_task, on_overdue, on_escalated = (counted(records.on_task_changed), counted(records.on_task_overdue),
                                         counted(records.on_task_escalated))

    async def on_unit(session: AsyncSession, fact: UnitUpserted, _: Envelope) -> None:
        await stations.remember_unit(session, fact=fact)
        await records.mark_dirty(session, [records.local_day(utcnow(), "UTC")])

    async def on_mode(session: AsyncSession, fact: StationClassified, envelope: Envelope) -> None:
        await stations.remember_mode(session, fact=fact)
        await records.mark_dirty(session, [records.local_day(envelope.time, tz)])

    return [
        Subscription("assessment", "dispatch", {
            IncidentReported: on_incident, IncidentDispatched: on_dispatched, IncidentArrived: on_arrived,
            TaskChanged: on_task, TaskOverdue: on_overdue, TaskOverdueV2: on_overdue,  # v1 read until the next minor
            TaskEscalated: on_escalated, UnitUpserted: on_unit}),
        Subscription("assessment", "classification", {StationClassified: on_mode}),
    ]
