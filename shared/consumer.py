"""Durable pull consumers: each event handled in one transaction with its inbox row, acked after commit.

A failing event is redelivered after the back-off schedule (`consumer_backoff_s`) at most
`consumer_max_deliver` times; then, or at once if it cannot be read, it is parked in the service's
dead-letter table (shared.deadletters) and only then `term()`-ed. Others on the subject go on meanwhile:
a failing event is nak'ed with a delay, so it never blocks the ones behind it.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import nats
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from pydantic import ValidationError
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.bus import Bus, OutboxRelay, Subscription, stop_if_cancelled
from shared.db import utcnow
from shared.deadletters import park
from shared.errors import Conflict, Invalid
from shared.events import Envelope, stream_name
from shared.observability import Metrics, reset_request_id, set_request_id
from shared.outbox import Outbox
from shared.telemetry import Telemetry, nats_span

log = logging.getLogger(__name__)
_access = logging.getLogger("jiaozhi.access")

ACK_WAIT_S = 30.0


class Consumer:
    """Runs a subscription: fetch, handle in batches (one by one when a batch fails), ack, park what keeps failing."""

    def __init__(self, bus: Bus, sessions: async_sessionmaker[AsyncSession], outbox: Outbox, sub: Subscription, *,
                 relay: OutboxRelay | None, metrics: Metrics, batch: int = 100,
                 telemetry: Telemetry | None = None, max_deliver: int = 5,
                 backoff_s: tuple[float, ...] | list[float] = (1.0, 5.0, 30.0, 120.0)) -> None:
        self.bus = bus
        self.telemetry = telemetry or Telemetry(sub.consumer)
        self.sessions = sessions
        self.outbox = outbox
        self.sub = sub
        self.relay = relay
        self.metrics = metrics
        self.batch = batch
        self.max_deliver = max_deliver
        self.backoff_s = list(backoff_s)
        self.by_subject = {fact.subject: (fact, handler) for fact, handler in sub.handlers.items()}

    def config(self) -> ConsumerConfig:
        """The durable consumer: explicit acks, the delivery limit, and (for acks that never come, e.g. a
        crash mid-handling) the server's back-off, never shorter than the ack wait."""
        return ConsumerConfig(name=self.sub.durable, durable_name=self.sub.durable, ack_policy=AckPolicy.EXPLICIT,
                              deliver_policy=DeliverPolicy.ALL, ack_wait=ACK_WAIT_S, max_ack_pending=1000,
                              max_deliver=self.max_deliver, backoff=[max(ACK_WAIT_S, b) for b in self.backoff_s],
                              filter_subjects=sorted(self.by_subject))

    def delay_before(self, delivery: int) -> float:
        """Seconds before redelivery number `delivery + 1` (the schedule's last value repeats)."""
        return self.backoff_s[min(delivery, len(self.backoff_s)) - 1]

    async def run(self) -> None:
        """Fetch and handle until cancelled."""
        await self.bus.ensure_stream(self.sub.owner)
        assert self.bus.js is not None
        psub = None
        stream = stream_name(self.sub.owner)
        while psub is None:
            try:
                # create, or update an existing durable whose subject filters an older release set
                await self.bus.js.add_consumer(stream, self.config())
                psub = await self.bus.js.pull_subscribe_bind(durable=self.sub.durable, stream=stream)
            except Exception as exc:  # noqa: BLE001 - broker away; try again
                log.warning("subscribe %s: %s", self.sub.durable, exc)
                await asyncio.sleep(1)
        while True:
            stop_if_cancelled()
            try:
                msgs = await psub.fetch(self.batch, timeout=1)
            except (TimeoutError, nats.errors.TimeoutError):
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - reconnecting; keep the loop alive
                log.debug("fetch %s: %s", self.sub.durable, exc)
                await asyncio.sleep(0.5)
                continue
            await self.handle_batch(msgs)

    async def handle_batch(self, msgs: list[Msg]) -> None:
        """Handle a fetched batch in one transaction (one commit, not one per event), then ack it.

        If anything in the batch fails, the transaction rolls back and each message is handled
        on its own, so one bad event cannot hold back the others.
        """
        if len(msgs) == 1:
            await self.handle(msgs[0])
            return
        try:
            envelopes = [Envelope.model_validate_json(m.data) for m in msgs]
            async with self.sessions() as session:
                async with session.begin():
                    outcomes = []
                    for envelope, msg in zip(envelopes, msgs, strict=True):
                        outcomes.append(await self._apply(session, envelope, msg.headers))
                staged = session.info.get("staged_events", 0)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - fall back to one transaction per message
            log.info("batch of %d failed (%s); handling one by one", len(msgs), exc)
            for msg in msgs:
                await self.handle(msg)
            return
        if staged and self.relay is not None:
            self.relay.notify()
        await asyncio.gather(*(m.ack() for m in msgs))
        for envelope, outcome in zip(envelopes, outcomes, strict=True):
            self.metrics.events_consumed.labels(envelope.type, outcome).inc()

    async def _apply(self, session: AsyncSession, envelope: Envelope, headers: dict[str, str] | None) -> str:
        """Claim the event in the inbox and run its handler in the session's transaction.

        Each event keeps its own request id and, when tracing, its own consumer span (child of the relay's
        publish span carried in its headers), in a batch too; so events it stages carry its trace on.
        """
        entry = self.by_subject.get(envelope.type)
        if entry is None:
            return "ignored"
        fact_type, handler = entry
        token = set_request_id((headers or {}).get("X-Request-ID") or envelope.id)
        started = time.perf_counter()
        try:
            with nats_span(self.telemetry, "process", envelope.type, envelope.id, headers,
                           **{"messaging.consumer.group.name": self.sub.durable}):
                fresh = await self.outbox.claim_for(session, consumer=self.sub.consumer, event_id=envelope.id)
                if fresh:
                    await handler(session, envelope.payload(fact_type), envelope)
                if _access.isEnabledFor(logging.INFO):  # the access log's line per event, in its span
                    _access.info("%s %s %s", envelope.type, envelope.id, "handled" if fresh else "duplicate")
                return "handled" if fresh else "duplicate"
        finally:
            self.metrics.handle_latency.labels(envelope.type).observe(time.perf_counter() - started)
            reset_request_id(token)

    async def handle(self, msg: Msg) -> None:
        """Handle one message: parse, claim in the inbox, apply, commit, then ack (or nak, or park)."""
        try:
            envelope = Envelope.model_validate_json(msg.data)
        except ValidationError as exc:
            log.error("malformed message on %s: %s", msg.subject, exc.errors()[:3])
            self.metrics.events_consumed.labels(msg.subject, "malformed").inc()
            await self.give_up(msg, None, f"malformed envelope: {exc.errors()[:3]}")
            return
        token = set_request_id((msg.headers or {}).get("X-Request-ID") or envelope.id)
        try:
            async with self.sessions() as session:
                async with session.begin():
                    outcome = await self._apply(session, envelope, msg.headers)
                staged = session.info.get("staged_events", 0)
            if staged and self.relay is not None:
                self.relay.notify()
            await msg.ack()
            self.metrics.events_consumed.labels(envelope.type, outcome).inc()
        except ValidationError as exc:
            log.error("event %s does not match its contract: %s", envelope.id, exc.errors()[:3])
            self.metrics.events_consumed.labels(envelope.type, "malformed").inc()
            await self.give_up(msg, envelope.id, f"does not match its contract: {exc.errors()[:3]}")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.metrics.events_consumed.labels(envelope.type, "failed").inc()
            delivery = _deliveries(msg)
            if delivery >= self.max_deliver:
                log.exception("handling %s %s failed on delivery %d of %d; parking it", envelope.type, envelope.id,
                              delivery, self.max_deliver)
                await self.give_up(msg, envelope.id, f"{type(exc).__name__}: {exc}")
            else:
                log.exception("handling %s %s failed (delivery %d of %d); redelivery in %gs", envelope.type,
                              envelope.id, delivery, self.max_deliver, self.delay_before(delivery))
                try:
                    await msg.nak(delay=self.delay_before(delivery))
                except Exception:  # noqa: BLE001 - no ack means redelivery after the ack wait anyway
                    pass
        finally:
            reset_request_id(token)

    async def give_up(self, msg: Msg, event_id: str | None, error: str) -> None:
        """Park the message in the dead-letter table, count it, then term() it. If parking fails (the database
        is away) the message is nak'ed instead, to come back."""
        meta = msg.metadata
        try:
            async with self.sessions() as session:
                async with session.begin():
                    await park(session, self.outbox.dead_letters, consumer=self.sub.durable, subject=msg.subject,
                               stream_seq=meta.sequence.stream, event_id=event_id, headers=msg.headers,
                               body=msg.data, error=error, deliveries=meta.num_delivered)
        except Exception as exc:  # noqa: BLE001 - keep the message rather than lose it
            log.warning("cannot park %s (stream seq %d): %s; it will come back", msg.subject, meta.sequence.stream,
                        exc)
            await msg.nak(delay=self.backoff_s[-1])
            return
        self.metrics.dead_letters.labels(self.sub.durable, msg.subject).inc()
        log.warning("parked %s (stream seq %d) as a dead letter after %d deliveries", msg.subject,
                    meta.sequence.stream, meta.num_delivered)
        await msg.term()

    async def replay(self, row: Any) -> str:
        """Run the handler again for a parked message (through the inbox: once); mark the row replayed.

        Invalid if the body is no event this consumer handles; Conflict with the error if the handler fails."""
        try:
            envelope = Envelope.model_validate_json(row.body)
        except ValidationError as exc:
            raise Invalid(f"dead letter {row.id} is not a readable event: {exc.errors()[:1]}") from exc
        if envelope.type not in self.by_subject:
            raise Invalid(f"{self.sub.durable} handles no {envelope.type}")
        table = self.outbox.dead_letters
        try:
            async with self.sessions() as session:
                async with session.begin():
                    outcome = await self._apply(session, envelope, None)
                    await session.execute(update(table).where(table.c.id == row.id)
                                          .values(replayed_at=utcnow(), replay_outcome=outcome))
                staged = session.info.get("staged_events", 0)
        except (ValidationError, Exception) as exc:
            raise Conflict(f"replay of dead letter {row.id} failed: {type(exc).__name__}: {exc}") from exc
        if staged and self.relay is not None:
            self.relay.notify()
        self.metrics.events_consumed.labels(envelope.type, f"replayed-{outcome}").inc()
        return outcome


def _deliveries(msg: Msg) -> int:
    try:
        return msg.metadata.num_delivered
    except Exception:  # noqa: BLE001 - not a JetStream message (tests): count it as the first
        return 1
