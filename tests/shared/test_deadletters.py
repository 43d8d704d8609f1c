"""Poison messages against a real nats-server: a bounded number of deliveries, then parked (identity numbers
masked) and counted; the messages behind them go on; a replay after the fix takes effect once."""
from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field

import pytest
from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.bus import Bus, StreamLimits, Subscription
from shared.consumer import Consumer
from shared.db import make_sessions, utcnow
from shared.events import Envelope, Fact, UnitUpserted
from shared.observability import Metrics
from shared.outbox import Outbox
from tests.helpers import effect_database, eventually

RAW_ID = "330109199001011234"
MAX_DELIVER = 3


@dataclass
class Poisoned:
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    outbox: Outbox
    effect: Table
    bus: Bus
    metrics: Metrics
    fixed: bool = False
    attempts: dict[str, int] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)  # every handling attempt, in order

    async def rows(self, table: Table) -> list:
        async with self.sessions() as session:
            return list((await session.execute(select(table).order_by(table.c.id))).all())

    async def count(self, table: Table) -> int:
        async with self.sessions() as session:
            return int((await session.execute(select(func.count()).select_from(table))).scalar_one())

    async def handle(self, session: AsyncSession, fact: Fact, env: Envelope) -> None:
        assert isinstance(fact, UnitUpserted)
        self.attempts[fact.unit_id] = self.attempts.get(fact.unit_id, 0) + 1
        self.order.append(fact.unit_id)
        if fact.unit_id == "ps-poison" and not self.fixed:
            raise RuntimeError("no such area: the handler's bug")
        await session.execute(self.effect.insert().values(event_id=env.id, unit_id=fact.unit_id))

    def consumer(self) -> Consumer:
        sub = Subscription("probe", "dispatch", {UnitUpserted: self.handle})
        return Consumer(self.bus, self.sessions, self.outbox, sub, relay=None, metrics=self.metrics, batch=10,
                        max_deliver=MAX_DELIVER, backoff_s=[1.0, 1.0])

    async def publish(self, body: bytes) -> None:
        assert self.bus.js is not None
        await self.bus.js.publish(UnitUpserted.subject, body, headers={"Nats-Msg-Id": uuid.uuid4().hex,
                                                                       "X-Citizen": RAW_ID})


@pytest.fixture
async def poisoned(database_url: str, nats_url: str) -> AsyncIterator[Poisoned]:
    async with effect_database(database_url, source="test") as (engine, outbox, effect):
        bus = Bus(nats_url, name="test-dead-letters", streams=StreamLimits(max_age_s=3600, max_bytes=10_000_000,
                                                                            duplicate_window_s=60))
        await bus.connect(wait=5)
        await bus.ensure_stream("dispatch", own=True)
        yield Poisoned(engine, make_sessions(engine), outbox, effect, bus,
                       Metrics("test"))
        await bus.close()


def event(unit_id: str, subject: str | None = None) -> bytes:
    fact = UnitUpserted(unit_id=unit_id, name=unit_id, kind="station", area_type="rural")
    return Envelope(source="test", type=fact.subject, subject=subject, time=utcnow(),
                    data=fact.model_dump(mode="json")).model_dump_json().encode()


async def has(count: Awaitable[int], wanted: int) -> bool:
    return await count == wanted


@contextlib.asynccontextmanager
async def running(consumer: Consumer) -> AsyncIterator[None]:
    task = asyncio.create_task(consumer.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_stream_limits_come_from_configuration(poisoned: Poisoned) -> None:
    assert poisoned.bus.js is not None
    config = (await poisoned.bus.js.stream_info("DISPATCH")).config
    assert (config.max_age, config.max_bytes, config.duplicate_window, config.num_replicas) == (3600, 10_000_000, 60, 1)
    poisoned.bus.streams = StreamLimits(max_age_s=7200, max_bytes=20_000_000, duplicate_window_s=30)
    await poisoned.bus.ensure_stream("dispatch")  # not the owner: leaves it
    assert (await poisoned.bus.js.stream_info("DISPATCH")).config.max_age == 3600
    await poisoned.bus.ensure_stream("dispatch", own=True)  # the owner: brings it to the configuration
    config = (await poisoned.bus.js.stream_info("DISPATCH")).config
    assert (config.max_age, config.max_bytes, config.duplicate_window) == (7200, 20_000_000, 30)


async def test_a_poison_event_is_delivered_max_deliver_times_then_parked_masked_counted_and_replayed_once(
        poisoned: Poisoned) -> None:
    consumer = poisoned.consumer()
    async with running(consumer):
        await poisoned.publish(event("ps-poison", subject=f"person {RAW_ID}"))
        await poisoned.publish(b'{"not": "an envelope", "id_number": "' + RAW_ID.encode() + b'"}')
        for n in range(3):
            await poisoned.publish(event(f"ps-good-{n}"))
        # the messages behind the bad ones are handled at once (not after the bad one's retries)
        await eventually(lambda: has(poisoned.count(poisoned.effect), 3), what="the good events handled")
        await eventually(lambda: has(poisoned.count(poisoned.outbox.dead_letters), 2), what="both parked",
                         timeout=15)
        await asyncio.sleep(1.5)  # longer than the back-off: nothing comes back after parking
    assert poisoned.attempts["ps-poison"] == MAX_DELIVER
    second_try = [i for i, unit in enumerate(poisoned.order) if unit == "ps-poison"][1]
    assert all(poisoned.order.index(f"ps-good-{n}") < second_try for n in range(3)), poisoned.order  # not blocked
    rows = await poisoned.rows(poisoned.outbox.dead_letters)
    by_kind = {("envelope" if r.event_id else "malformed"): r for r in rows}
    poison, malformed = by_kind["envelope"], by_kind["malformed"]
    assert poison.deliveries == MAX_DELIVER and malformed.deliveries == 1  # unreadable: parked at once
    assert poison.subject == UnitUpserted.subject and "no such area" in poison.error
    for row in rows:
        kept = row.body + row.headers + row.error
        assert RAW_ID not in kept and "330*************34" in kept, kept
    assert json.loads(malformed.body)["id_number"] == "330*************34"
    assert poisoned.metrics.registry.get_sample_value(
        "dead_letters_total", {"consumer": "probe-on-dispatch", "subject": UnitUpserted.subject}) == 2

    with pytest.raises(Exception, match="replay of dead letter .* failed"):
        await consumer.replay(poison)  # not fixed yet: refused, nothing applied
    poisoned.fixed = True
    assert await consumer.replay(poison) == "handled"
    assert await consumer.replay(poison) == "duplicate"  # a second replay changes nothing
    units = [r.unit_id for r in await poisoned.rows(poisoned.effect)]
    assert units.count("ps-poison") == 1 and len(units) == 4
    replayed = {r.id: r for r in await poisoned.rows(poisoned.outbox.dead_letters)}[poison.id]
    assert replayed.replayed_at is not None and replayed.replay_outcome == "duplicate"
    with pytest.raises(Exception, match="not a readable event"):
        await consumer.replay(malformed)
