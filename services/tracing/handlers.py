"""Tracing's bus door: every reported accident is traced once; unit and mode changes are kept as read copies."""
from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncSession

from services.tracing import service
from shared.bus import Subscription
from shared.events import Envelope, IncidentReported, StationClassified, UnitUpserted
from shared.runtime import Runtime


def subscriptions(rt: Runtime) -> list[Subscription]:
    """Incidents and units from dispatch, station modes from classification."""
    settings = rt.settings
    loaded: asyncio.Event = rt.state.setdefault("loaded", asyncio.Event())

    async def on_incident(session: AsyncSession, fact: IncidentReported, _: Envelope) -> None:
        await loaded.wait()  # the mirror (index and catalogue) is loaded in on_start, after consumers start
        await service.trace_incident(session, outbox=rt.outbox, mirror=rt.state["mirror"], fact=fact,
                                     historical_after_h=getattr(settings, "historical_after_h", 720))

    async def on_unit(session: AsyncSession, fact: UnitUpserted, _: Envelope) -> None:
        await service.apply_unit(session, fact=fact)

    async def on_classified(session: AsyncSession, fact: StationClassified, _: Envelope) -> None:
        await service.apply_classification(session, fact=fact)

    return [Subscription("tracing", "dispatch", {IncidentReported: on_incident, UnitUpserted: on_unit}),
            Subscription("tracing", "classification", {StationClassified: on_classified})]
