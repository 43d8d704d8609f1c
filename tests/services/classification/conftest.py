"""Fixtures for classification's tests: the service on SQLite and PostgreSQL with stations learned from NATS."""
from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.classification.app import create_app
from services.classification.config import ClassificationSettings
from services.classification.models import Station
from tests.helpers import Service, eventually, running_service
from tests.services.classification.helpers import DEMO, STATIONS, unit_facts


@pytest.fixture
async def classification(database_url: str, nats_url: str, tmp_path: Path) -> AsyncIterator[Service]:
    """The service, with the demo district's units announced by 'dispatch' and its six stations known."""
    settings = ClassificationSettings(database_url=database_url, nats_url=nats_url, data_dir=tmp_path,
                                      outbox_poll_s=0.2)
    async with running_service(create_app, settings, streams=("dispatch", "assessment")) as c:
        await c.publish(*unit_facts(DEMO["units"]))  # stations, squadrons and the brigade

        async def stations_known() -> bool:
            return await c.count(Station) == len(STATIONS)

        await eventually(stations_known, what="the six stations to arrive from dispatch")
        await c.bus.ensure_stream("classification")
        yield c
