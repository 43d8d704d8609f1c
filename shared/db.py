"""Async engines and sessions on SQLite (aiosqlite) or PostgreSQL (asyncpg), and column types."""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import DateTime, MetaData, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import registry
from sqlalchemy.sql import Insert
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_registry() -> registry:
    """A registry with its own MetaData: each service's tables live apart from the others'."""
    return registry(metadata=MetaData(naming_convention=NAMING_CONVENTION))


def utcnow() -> dt.datetime:
    """Now, timezone-aware, in UTC."""
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator):
    """A timestamp stored in UTC and always read back timezone-aware (SQLite forgets the offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: store timestamps with their offset")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def timestamp_field(*, nullable: bool = False, index: bool = False) -> Any:
    """A SQLModel field for a timezone-aware UTC timestamp column."""
    from sqlalchemy import Column
    from sqlmodel import Field

    return Field(sa_column=Column(UTCDateTime, nullable=nullable, index=index))


def is_sqlite(url: str) -> bool:
    """Whether the URL points at SQLite."""
    return url.startswith("sqlite")


def make_engine(url: str, *, schema: str | None = None) -> AsyncEngine:
    """An engine tuned for its backend.

    SQLite gets WAL and one connection: SQLite has one writer at a time anyway, and a single
    connection turns lock contention ("database is locked") into an orderly queue.
    PostgreSQL gets a pool and `search_path` set to the service's own schema.
    """
    if is_sqlite(url):
        engine = create_async_engine(url, pool_size=1, max_overflow=0, pool_timeout=60)

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=10000", "foreign_keys=ON"):
                cur.execute(f"PRAGMA {pragma}")
            cur.close()

        return engine
    connect_args: dict[str, Any] = {}
    if schema:
        connect_args["server_settings"] = {"search_path": schema}
    return create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True, connect_args=connect_args)


def make_sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """A session factory whose objects stay readable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)


async def ensure_schema(engine: AsyncEngine, schema: str) -> None:
    """Create the service's schema on PostgreSQL (no-op on SQLite)."""
    if engine.dialect.name != "postgresql":
        return
    async with engine.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))


async def ping(engine: AsyncEngine) -> None:
    """Raise unless the database answers."""
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


def insert_ignoring_duplicates(table: Any, dialect_name: str, **values: Any) -> Insert:
    """INSERT … ON CONFLICT DO NOTHING, for the backend in use."""
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    return dialect.insert(table).values(**values).on_conflict_do_nothing()
