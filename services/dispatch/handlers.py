"""Dispatch's bus door: the events it consumes, each applied idempotently."""
from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.dispatch import directory, routing, service, tasks, webhooks
from shared.bus import Subscription
from shared.events import Envelope, StationClassified, TaskOrderGenerated, TaskOrderGeneratedV2
from shared.runtime import Runtime


def subscriptions(rt: Runtime) -> list[Subscription]:
    """Task orders from tracing; station modes from classification; its own task events for webhooks."""

    async def on_task_generated(session: AsyncSession, fact: TaskOrderGenerated, _: Envelope) -> None:
        version, table = await routing.in_force(rt.state, session, ttl_s=rt.settings.area_cache_s)
        units = await directory.current(rt.state, session)  # one revision check per transaction
        await tasks.receive_task_order(session, outbox=rt.outbox, fact=fact, routing=table, routing_version=version,
                                       directory=units)

    async def on_station_classified(session: AsyncSession, fact: StationClassified, _: Envelope) -> None:
        await service.apply_classification(session, fact=fact)  # bumps the directory revision: next order follows

    return [
        # v2 carries codes and both languages; v1 (English strings) is still read until the next minor version
        Subscription("dispatch", "tracing", {TaskOrderGenerated: on_task_generated,
                                             TaskOrderGeneratedV2: on_task_generated}),
        Subscription("dispatch", "classification", {StationClassified: on_station_classified}),
        webhooks.subscription(rt),
    ]
