"""Classification: station features, K-Means runs, integration modes and overrides."""
from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.classification.api import router
from services.classification.config import ClassificationSettings
from services.classification.handlers import subscriptions
from services.classification.models import OUTBOX, metadata
from shared.runtime import ServiceSpec, build_service_app


def create_app(settings: ClassificationSettings | None = None) -> FastAPI:
    """The classification service app, built from the given settings (or the environment)."""
    settings = settings or ClassificationSettings()
    return build_service_app(settings, ServiceSpec(
        name="classification", metadata=metadata, outbox=OUTBOX, migrations=Path(__file__).parent / "migrations",
        routers=[router], subscriptions=subscriptions,
        description="Classifies stations with K-Means into basic / deep / full integration modes.",
    ))
