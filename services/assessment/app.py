"""Assessment: records, indicators, scores, rankings, the daily board and reports."""
from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.assessment.api import router
from services.assessment.config import AssessmentSettings
from services.assessment.handlers import subscriptions
from services.assessment.models import OUTBOX, metadata
from shared.runtime import ServiceSpec, build_service_app


def create_app(settings: AssessmentSettings | None = None) -> FastAPI:
    """The assessment service app, built from the given settings (or the environment)."""
    settings = settings or AssessmentSettings()
    return build_service_app(settings, ServiceSpec(
        name="assessment", metadata=metadata, outbox=OUTBOX, migrations=Path(__file__).parent / "migrations",
        routers=[router], subscriptions=subscriptions,
        description="Counts what the other services report; scores and ranks stations.",
    ))
