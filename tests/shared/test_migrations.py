"""Alembic migrations per service: tables in their own schema, re-runs are no-ops, and `jiaozhi migrate`."""
from __future__ import annotations

import asyncio
import importlib
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, func, inspect, select, text
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from deploy.cli import cli
from deploy.components import service_settings
from shared.db import ensure_schema, make_engine, utcnow
from shared.migrations import alembic_config, current_revision, upgrade

SERVICES = ("classification", "tracing", "dispatch", "assessment")
ROOT = Path(__file__).resolve().parents[2]


def migrations_of(service: str) -> Path:
    return ROOT / "services" / service / "migrations"


def metadata_of(service: str) -> MetaData:
    return importlib.import_module(f"services.{service}.models").metadata


def head_of(service: str) -> str:
    head = ScriptDirectory.from_config(alembic_config(migrations_of(service))).get_current_head()
    assert head is not None
    return head


async def columns_by_table(engine: AsyncEngine, schema: str | None) -> dict[str, set[str]]:
    """Table name → column names, as the database reports them."""

    def read(sync_conn):  # noqa: ANN001, ANN202 - run_sync callback
        inspector = inspect(sync_conn)
        return {name: {c["name"] for c in inspector.get_columns(name, schema=schema)}
                for name in inspector.get_table_names(schema=schema)}

    async with engine.connect() as conn:
        return await conn.run_sync(read)


async def fresh_engine(database_url: str, service: str) -> AsyncEngine:
    engine = make_engine(database_url, schema=service)
    await ensure_schema(engine, service)
    return engine


def schema_for(engine: AsyncEngine, service: str) -> str | None:
    return service if engine.dialect.name == "postgresql" else None


@pytest.mark.parametrize("service", SERVICES)
async def test_upgrade_on_an_empty_database_creates_every_model_table_and_reaches_head(
        database_url: str, service: str) -> None:
    engine = await fresh_engine(database_url, service)
    try:
        assert await current_revision(engine) is None
        await upgrade(engine, migrations_of(service), schema=service)

        found = await columns_by_table(engine, schema_for(engine, service))
        metadata = metadata_of(service)
        assert {"outbox", "inbox"} <= set(metadata.tables)
        for name, table in metadata.tables.items():
            assert name in found, f"{service}: migrations do not create table {name}"
            assert found[name] == {c.name for c in table.columns}, f"{service}.{name}: columns differ from the model"
        assert await current_revision(engine) == head_of(service)
        if engine.dialect.name == "postgresql":
            public = await columns_by_table(engine, "public")
            assert not set(metadata.tables) & set(public), "tables leaked into the public schema"
    finally:
        await engine.dispose()


@pytest.mark.parametrize("service", SERVICES)
async def test_a_second_upgrade_is_a_no_op_that_keeps_existing_rows(database_url: str, service: str) -> None:
    engine = await fresh_engine(database_url, service)
    inbox = metadata_of(service).tables["inbox"]
    try:
        await upgrade(engine, migrations_of(service), schema=service)
        async with engine.begin() as conn:
            await conn.execute(inbox.insert().values(consumer="probe", event_id="evt-1", processed_at=utcnow()))

        await upgrade(engine, migrations_of(service), schema=service)

        async with engine.connect() as conn:
            rows = (await conn.execute(select(inbox.c.consumer, inbox.c.event_id))).all()
            versions = (await conn.execute(text("SELECT count(*) FROM alembic_version"))).scalar_one()
            outbox_rows = (await conn.execute(select(func.count()).select_from(metadata_of(service).tables["outbox"]))
                           ).scalar_one()
        assert [tuple(r) for r in rows] == [("probe", "evt-1")]
        assert versions == 1
        assert outbox_rows == 0
        assert await current_revision(engine) == head_of(service)
    finally:
        await engine.dispose()


def _clear_database_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("JIAOZHI_DATABASE_URL", raising=False)
    for service in SERVICES:
        monkeypatch.delenv(f"JIAOZHI_{service.upper()}_DATABASE_URL", raising=False)
    monkeypatch.setenv("JIAOZHI_DATA_DIR", str(tmp_path / "cli-data"))


async def _invoke_migrate() -> tuple[int, str]:
    # `jiaozhi migrate` calls asyncio.run, so it must run outside this test's event loop.
    result = await asyncio.to_thread(CliRunner().invoke, cli, ["migrate"])
    return result.exit_code, result.output


async def test_jiaozhi_migrate_with_one_database_url_brings_every_service_to_its_head(
        database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _clear_database_env(monkeypatch, tmp_path)
    monkeypatch.setenv("JIAOZHI_DATABASE_URL", database_url)
    # PostgreSQL: one database, a schema per service; SQLite: a file per service derived from the URL
    urls = {service: service_settings(service).database() for service in SERVICES}
    if database_url.startswith("sqlite"):
        assert len(set(urls.values())) == len(SERVICES)

    code, output = await _invoke_migrate()

    assert code == 0, output
    for service in SERVICES:
        assert f"{service}: at revision {head_of(service)}" in output
        engine = make_engine(urls[service], schema=service)
        try:
            assert await current_revision(engine) == head_of(service)
            tables = await columns_by_table(engine, schema_for(engine, service))
            assert set(metadata_of(service).tables) <= set(tables)
        finally:
            await engine.dispose()
    code, again = await _invoke_migrate()
    assert code == 0, again
    assert all(f"{service}: at revision {head_of(service)}" in again for service in SERVICES)
