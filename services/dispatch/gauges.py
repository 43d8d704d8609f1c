"""Dispatch's gauges for paging: open task orders that are overdue, and those escalated to the squadron."""
from __future__ import annotations

from collections.abc import Awaitable, Callable

from prometheus_client import Gauge
from sqlalchemy import func, select

from services.dispatch.lifecycle import OPEN
from services.dispatch.models import TaskOrder
from shared.runtime import Runtime


def task_order_gauges(rt: Runtime) -> Callable[[], Awaitable[None]]:
    """Sets `task_orders_overdue` and `task_orders_escalated` (open orders only) when /metrics is scraped."""
    registry = rt.metrics.registry
    overdue = Gauge("task_orders_overdue", "open task orders marked overdue", registry=registry,
                    multiprocess_mode="livemax")
    escalated = Gauge("task_orders_escalated", "open task orders escalated past the grace period",
                      registry=registry, multiprocess_mode="livemax")

    async def sample() -> None:
        query = select(func.count(TaskOrder.overdue_at), func.count(TaskOrder.escalated_at)).where(
            TaskOrder.status.in_(OPEN))
        async with rt.sessions() as session:
            late, raised = (await session.execute(query)).one()
        overdue.set(late)
        escalated.set(raised)

    return sample
