"""Classification's bus door: stations from dispatch."""
from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.classification import service
from shared.bus import Subscription
from shared.events import Envelope, UnitUpserted
from shared.runtime import Runtime


def subscriptions(rt: Runtime) -> list[Subscription]:
    """Units from dispatch (stations, with population and area)."""

    async def on_unit(session: AsyncSession, fact: UnitUpserted, _: Envelope) -> None:
        await service.remember_station(session, fact=fact)

    return [Subscription("classification", "dispatch", {UnitUpserted: on_unit})]
