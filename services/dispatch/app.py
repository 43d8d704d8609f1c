"""Dispatch: units and areas, incident reception and dispatch, task-order routing."""
from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.dispatch.api import router
from services.dispatch.config import DispatchSettings
from services.dispatch.handlers import subscriptions
from services.dispatch.models import OUTBOX, metadata
from services.dispatch.routing import RoutingTable
from shared.runtime import Runtime, ServiceSpec, build_service_app


def create_app(settings: DispatchSettings | None = None) -> FastAPI:
    """The dispatch service app, built from the given settings (or the environment)."""
    settings = settings or DispatchSettings()
    routing = RoutingTable.load(settings.routing_table)

    async def on_start(rt: Runtime) -> None:
        rt.state["routing"] = routing

    return build_service_app(settings, ServiceSpec(
        name="dispatch", metadata=metadata, outbox=OUTBOX, migrations=Path(__file__).parent / "migrations",
        routers=[router], subscriptions=subscriptions, on_start=on_start,
        description="Units and areas, incident dispatch with arrival times, task-order routing and lifecycle.",
    ))
