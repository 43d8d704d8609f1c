"""Gauges of the pipeline, read when /metrics is scraped: the outbox backlog and each consumer's lag."""
from __future__ import annotations

from collections.abc import Awaitable, Callable

from shared.bus import Bus, Subscription
from shared.db import utcnow
from shared.events import stream_name
from shared.observability import Metrics
from shared.outbox import Outbox


def outbox_sampler(metrics: Metrics, sessions: Callable, outbox: Outbox) -> Callable[[], Awaitable[None]]:
    """Sets `outbox_backlog` and `outbox_oldest_unsent_age_seconds`."""

    async def sample() -> None:
        async with sessions() as session:
            count, oldest = await outbox.backlog(session)
        metrics.outbox_backlog.set(count)
        metrics.outbox_oldest_age.set(max(0.0, (utcnow() - oldest).total_seconds()) if oldest is not None else 0.0)

    return sample


def consumer_sampler(metrics: Metrics, bus: Bus, subs: list[Subscription]) -> Callable[[], Awaitable[None]]:
    """Sets `consumer_pending`, `consumer_ack_pending` and `consumer_redelivered` from JetStream's consumer info
    (a consumer not created yet is left out)."""

    async def sample() -> None:
        if bus.js is None or not bus.is_ready:
            return
        for sub in subs:
            try:
                info = await bus.js.consumer_info(stream_name(sub.owner), sub.durable, timeout=1)
            except Exception:  # noqa: BLE001 - not created yet (or the broker is away): no figure
                continue
            metrics.consumer_pending.labels(sub.durable).set(info.num_pending or 0)
            metrics.consumer_ack_pending.labels(sub.durable).set(info.num_ack_pending or 0)
            metrics.consumer_redelivered.labels(sub.durable).set(info.num_redelivered or 0)

    return sample
