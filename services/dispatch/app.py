"""Dispatch: units and areas, incident reception and dispatch, task-order routing and the loop."""
from __future__ import annotations

from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from services.dispatch import photo_store, routing, scheduler
from services.dispatch.api import router
from services.dispatch.config import DispatchSettings
from services.dispatch.gauges import task_order_gauges
from services.dispatch.handlers import subscriptions
from services.dispatch.models import OUTBOX, metadata
from services.dispatch.photo_api import router as photo_router
from services.dispatch.routing import RoutingTable
from services.dispatch.stream import TaskFeed
from services.dispatch.webhook_api import box_of
from services.dispatch.webhook_api import router as webhook_router
from services.dispatch.webhook_delivery import Deliverer, prune_deliveries
from shared.retention import every
from shared.runtime import Runtime, ServiceSpec, build_service_app


def create_app(settings: DispatchSettings | None = None) -> FastAPI:
    """The dispatch service app, built from the given settings (or the environment)."""
    settings = settings or DispatchSettings()
    shipped = RoutingTable.load(settings.routing_table)

    async def on_start(rt: Runtime) -> None:
        async with rt.transaction() as session:
            await routing.seed(session, table=shipped, source=f"file:{settings.routing_table.name}")
        rt.state["feed"] = TaskFeed()

    def loops(rt: Runtime) -> dict[str, Coroutine[Any, Any, None]]:
        """The deadline scheduler, the task feed of the live stream, the webhook deliveries, photo retention."""
        return {
            "webhook-delivery": Deliverer(rt, settings, box_of(rt)).run(),
            "webhook-retention": prune_deliveries(rt, settings),
            "deadline-scheduler": scheduler.run(rt, interval_s=settings.scheduler_interval_s,
                                                grace_s=settings.escalation_grace_s),
            "task-feed": rt.state["feed"].run(rt.bus),
            "photo-retention": every(settings.retention_interval_s, "dispatch photos", lambda: (
                photo_store.prune_unattached(rt.sessions, days=settings.photo_unattached_days,
                                             batch=settings.retention_batch))),
        }

    return build_service_app(settings, ServiceSpec(
        name="dispatch", metadata=metadata, outbox=OUTBOX, migrations=Path(__file__).parent / "migrations",
        routers=[router, photo_router, webhook_router], subscriptions=subscriptions, on_start=on_start, loops=loops,
        gauges=task_order_gauges,
        description="Units and areas, incident dispatch with arrival times, task-order routing and lifecycle.",
    ))
