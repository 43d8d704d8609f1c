"""The gateway's own tables: its migrations build exactly what its models declare (SQLite and PostgreSQL)."""
from __future__ import annotations

from gateway.app import MIGRATIONS
from gateway.models import metadata
from shared.db import ensure_schema, make_engine
from shared.migrations import upgrade
from tests.shared.test_migrations import columns_by_table


async def test_migrations_match_the_models(database_url: str) -> None:
    engine = make_engine(database_url, schema="gateway")
    try:
        await ensure_schema(engine, "gateway")
        await upgrade(engine, MIGRATIONS, schema="gateway")
        await upgrade(engine, MIGRATIONS, schema="gateway")  # a re-run is a no-op
        schema = "gateway" if engine.dialect.name == "postgresql" else None
        tables = await columns_by_table(engine, schema)
    finally:
        await engine.dispose()
    expected = {table.name: {c.name for c in table.columns} for table in metadata.sorted_tables}
    assert {name: cols for name, cols in tables.items() if name != "alembic_version"} == expected
