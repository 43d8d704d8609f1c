"""Fixtures of the dispatch tests."""
from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.services.dispatch.support import Svc, running, settings_for


@pytest.fixture
async def svc(database_url: str, nats_url: str, tmp_path: Path) -> AsyncIterator[Svc]:
    """One dispatch replica with the demo district's units, on SQLite and PostgreSQL."""
    async with running(settings_for(database_url, nats_url, tmp_path)) as replica:
        yield replica
