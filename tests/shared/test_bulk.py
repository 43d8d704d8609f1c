"""insert_many stores what a Core INSERT would, on SQLite and PostgreSQL."""
from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import JSON, Boolean, Column, Float, MetaData, String, Table, select

from shared.bulk import insert_many
from shared.db import UTCDateTime, make_engine, make_sessions, utcnow


async def test_insert_many_stores_what_a_core_insert_would(database_url: str) -> None:
    metadata = MetaData()
    table = Table(f"bulk_{uuid.uuid4().hex[:8]}", metadata, Column("id", String(20), primary_key=True),
                  Column("doc", JSON, nullable=False), Column("flag", Boolean), Column("score", Float),
                  Column("note", String(20)), Column("at", UTCDateTime, nullable=False))
    engine = make_engine(database_url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    sessions = make_sessions(engine)
    now = utcnow()
    rows = [{"id": f"r{i}", "doc": [{"feature": "x", "z": i / 3}], "flag": i % 2 == 0, "score": i * 1.5,
             "note": None if i % 3 else "zh 中文"} for i in range(50)]
    try:
        async with sessions() as session, session.begin():
            assert await insert_many(session, table, rows[:25], constants={"at": now}) == 25
            await session.execute(table.insert(), [r | {"at": now} for r in rows[25:]])
            assert await insert_many(session, table, []) == 0
        async with sessions() as session:
            stored = [r._asdict() for r in (await session.execute(select(table).order_by(table.c.id))).all()]
        expected = sorted(({**r, "at": now} for r in rows), key=lambda r: r["id"])
        assert stored == expected
        assert all(s["at"].tzinfo is not None and s["at"].utcoffset() == dt.timedelta(0) for s in stored)
    finally:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.drop_all)
        await engine.dispose()


async def test_insert_many_is_part_of_the_transaction(database_url: str) -> None:
    metadata = MetaData()
    table = Table(f"bulk_{uuid.uuid4().hex[:8]}", metadata, Column("id", String(20), primary_key=True))
    engine = make_engine(database_url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    sessions = make_sessions(engine)
    try:
        with pytest.raises(RuntimeError):
            async with sessions() as session, session.begin():
                await insert_many(session, table, [{"id": "gone"}])
                raise RuntimeError("use case failed")
        async with sessions() as session:
            assert (await session.execute(select(table))).all() == []
    finally:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.drop_all)
        await engine.dispose()
