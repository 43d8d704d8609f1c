"""What the benches share: a scratch PostgreSQL database, an app served in-process, internal tokens.

The benches do not import the test suite's helpers (tests/ is not shipped with the code they measure).
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import httpx
from fastapi import FastAPI

from shared.auth import Identity, SigningKey, issue_internal_token, public_keyset
from shared.settings import Settings

#: the benches' gateway key: in-process services and gateways started by a bench use it (the variables are set
#: when this module is imported, unless already set); a launched system has its own (`System.keys()`)
GATEWAY_KEY = SigningKey.generate("bench")
os.environ.setdefault("JIAOZHI_JWT_PUBLIC_KEYS", public_keyset(GATEWAY_KEY))
os.environ.setdefault("JIAOZHI_JWT_PRIVATE_KEY", GATEWAY_KEY.private_jwk())
PG_ADMIN_DSN = os.environ.get("JIAOZHI_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


@contextlib.contextmanager
def pg_database() -> Iterator[str | None]:
    """A scratch PostgreSQL database, or None if PostgreSQL is not reachable."""
    name = f"jz_bench_{uuid.uuid4().hex[:8]}"

    async def run(sql: str) -> bool:
        try:
            conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=3)
        except (OSError, asyncpg.PostgresError, TimeoutError):
            return False
        try:
            await conn.execute(sql)
        finally:
            await conn.close()
        return True

    if not asyncio.run(run(f'CREATE DATABASE "{name}"')):
        yield None
        return
    try:
        yield PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + "/" + name
    finally:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))



@contextlib.asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The app's lifespan running, and an in-process client of it."""
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench",
                                     timeout=120) as client:
            yield client


def auth(settings: Settings, role: str, unit_id: str | None = None, *,
         key: SigningKey = GATEWAY_KEY) -> dict[str, str]:
    """The header the gateway would pass a service for a caller with this role (signed with the benches' gateway
    key, or a launched system's)."""
    identity = Identity(username=unit_id or f"bench-{role}", role=role, unit_id=unit_id)  # type: ignore[arg-type]
    return {"authorization": "Bearer " + issue_internal_token(settings, identity, key=key)}
