"""Tracing: source registries, the tracing-model catalogue, task orders from incidents."""
from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.tracing.api import router
from services.tracing.catalogue import Catalogue
from services.tracing.config import TracingSettings
from services.tracing.handlers import subscriptions
from services.tracing.models import OUTBOX, metadata
from shared.runtime import Runtime, ServiceSpec, build_service_app


def create_app(settings: TracingSettings | None = None) -> FastAPI:
    """The tracing service app, built from the given settings (or the environment)."""
    settings = settings or TracingSettings()
    catalogue = Catalogue.load(settings.catalogue)

    async def on_start(rt: Runtime) -> None:
        rt.state["catalogue"] = catalogue

    return build_service_app(settings, ServiceSpec(
        name="tracing", metadata=metadata, outbox=OUTBOX, migrations=Path(__file__).parent / "migrations",
        routers=[router], subscriptions=subscriptions, on_start=on_start,
        description="Traces every accident to its five sources and issues task orders through the model catalogue.",
    ))
