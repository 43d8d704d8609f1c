"""Dispatch's unit event and classification's mode event for a new station, handled at once by two consumers (two
transactions): the second makes no duplicate key, it completes the same row."""
from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from services.assessment.models import UnitCopy, metadata
from services.assessment.stations import remember_mode, remember_unit
from shared.events import StationClassified, UnitUpserted
from tests.helpers import fresh_pg_database

pytestmark = pytest.mark.postgres


async def test_a_unit_and_its_mode_announced_at_once_for_a_new_station_make_one_row() -> None:
    async with fresh_pg_database() as url:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(metadata.create_all)
            sessions = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
            unit = UnitUpserted(unit_id="ps-new", name="新站派出所", kind="station", population=30000)
            mode = StationClassified(station_id="ps-new", mode="deep", source="model", run_id="r1")
            async with sessions() as first, sessions() as second:
                await remember_unit(first, fact=unit)
                await first.flush()  # the unit's row is written, not yet committed: the mode's consumer comes now
                moded = asyncio.create_task(_remember_and_commit(second, mode))
                await asyncio.sleep(0.3)
                assert not moded.done()  # it waits on the first transaction's row
                await first.commit()
                await asyncio.wait_for(moded, timeout=10)  # before: IntegrityError (duplicate key)
            async with sessions() as session:
                row = await session.get(UnitCopy, "ps-new")
                assert (row.name, row.kind, row.population, row.mode) == ("新站派出所", "station", 30000, "deep")
        finally:
            await engine.dispose()


async def _remember_and_commit(session: AsyncSession, fact: StationClassified) -> None:
    await remember_mode(session, fact=fact)
    await session.commit()
