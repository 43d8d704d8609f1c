"""Fixtures of tracing's tests."""
from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.tracing.app import create_app
from services.tracing.config import TracingSettings
from tests.helpers import Service, running_service


@pytest.fixture
async def tracing(database_url: str, nats_url: str, tmp_path: Path) -> AsyncIterator[Service]:
    """The tracing service on SQLite and PostgreSQL, with dispatch's stream to publish incidents on."""
    settings = TracingSettings(database_url=database_url, nats_url=nats_url, data_dir=tmp_path, outbox_poll_s=0.2)
    async with running_service(create_app, settings, streams=("dispatch",)) as t:
        yield t
