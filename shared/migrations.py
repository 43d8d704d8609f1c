"""Alembic migrations per service: applied on start and by `jiaozhi migrate`."""
from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import MetaData, text
from sqlalchemy.ext.asyncio import AsyncEngine


def alembic_config(script_location: Path, connection: Any = None) -> Config:
    """An Alembic config for one service's migrations folder, bound to a live connection."""
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    cfg.attributes["connection"] = connection
    return cfg


async def upgrade(engine: AsyncEngine, script_location: Path, *, schema: str) -> None:
    """Bring the service's database to the newest revision.

    On PostgreSQL an advisory lock makes replicas starting together migrate one at a time.
    """
    async with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": zlib.crc32(schema.encode())})
        await conn.run_sync(lambda sync_conn: command.upgrade(alembic_config(script_location, sync_conn), "head"))


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at (None before the first migration)."""
    async with engine.connect() as conn:
        try:
            row = (await conn.execute(text("SELECT version_num FROM alembic_version"))).first()
        except Exception:  # noqa: BLE001 - no table yet means no revision
            return None
    return row[0] if row else None


def run_env(target_metadata: MetaData) -> None:
    """Body of every service's migrations/env.py: run against the connection handed in."""
    from alembic import context

    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through `jiaozhi migrate` (needs a live connection)")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
