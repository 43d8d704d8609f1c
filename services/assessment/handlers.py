"""Assessment's bus door: incidents, dispatch, arrivals and task orders from dispatch; modes from classification."""
from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.assessment import records, stations
from shared.bus import Subscription
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

    async def on_incident(session: AsyncSession, fact: IncidentReported, _: Envelope) -> None:
        await records.on_incident(session, fact=fact, tz=tz)

    async def on_dispatched(session: AsyncSession, fact: IncidentDispatched, _: Envelope) -> None:
        await records.on_dispatched(session, fact=fact, tz=tz)

    async def on_arrived(session: AsyncSession, fact: IncidentArrived, _: Envelope) -> None:
        await records.on_arrived(session, fact=fact, tz=tz)

    async def on_task(session: AsyncSession, fact: TaskChanged, _: Envelope) -> None:
        await records.on_task_changed(session, fact=fact, tz=tz)

    async def on_overdue(session: AsyncSession, fact: TaskOverdue, _: Envelope) -> None:
        await records.on_task_overdue(session, fact=fact, tz=tz)

    async def on_escalated(session: AsyncSession, fact: TaskEscalated, _: Envelope) -> None:
        await records.on_task_escalated(session, fact=fact, tz=tz)

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
