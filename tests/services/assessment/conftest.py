"""Fixtures of assessment's tests: the service on a real nats-server, SQLite and PostgreSQL."""
from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.assessment.app import create_app
from services.assessment.config import AssessmentSettings
from tests.helpers import Service, running_service


@pytest.fixture
async def assessment(database_url: str, nats_url: str, tmp_path: Path) -> AsyncIterator[Service]:
    """Assessment with fast scoring announcements, and the streams of the services whose events it consumes."""
    settings = AssessmentSettings(database_url=database_url, nats_url=nats_url, data_dir=tmp_path,
                                  score_debounce_s=0.2, outbox_poll_s=0.1)
    async with running_service(create_app, settings, streams=("dispatch", "classification", "assessment")) as a:
        yield a
