"""Tracing's bus door: every reported incident is traced once."""
from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.tracing import service
from shared.bus import Subscription
from shared.events import Envelope, IncidentReported
from shared.runtime import Runtime


def subscriptions(rt: Runtime) -> list[Subscription]:
    """Incidents from dispatch."""

    async def on_incident(session: AsyncSession, fact: IncidentReported, _: Envelope) -> None:
        await service.trace_incident(session, outbox=rt.outbox, catalogue=rt.state["catalogue"], fact=fact)

    return [Subscription("tracing", "dispatch", {IncidentReported: on_incident})]
