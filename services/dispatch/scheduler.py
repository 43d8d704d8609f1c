"""Deadlines: mark late orders and milestones overdue, escalate overdue orders after a grace period.

Every replica runs the same loop. Each mark is one transaction whose UPDATE is conditional on the
order's version (`tasks.write_change`): when two replicas find the same late order, one UPDATE
matches and commits the mark, its history step and its event together; the other matches no row
(or, on SQLite, fails to upgrade its stale snapshot) and changes nothing. So each overdue and each
escalation is recorded and announced exactly once.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from services.dispatch.lifecycle import OPEN
from services.dispatch.models import TaskOrder, Unit
from services.dispatch.tasks import next_milestone_due, open_and_late, write_change
from services.dispatch.texts import upgraded
from shared.bus import stop_if_cancelled
from shared.db import utcnow
from shared.errors import Conflict
from shared.events import TaskEscalated, TaskOverdueV2
from shared.runtime import Runtime

log = logging.getLogger(__name__)
BY = "scheduler"


@dataclass
class Tick:
    """What one pass did."""

    overdue: int = 0
    milestones: int = 0
    escalated: int = 0
    lost_races: int = 0


async def run(rt: Runtime, *, interval_s: float, grace_s: float, batch: int = 200) -> None:
    """Check deadlines every `interval_s` until cancelled; totals of this replica in rt.state["scheduler"]."""
    totals = rt.state.setdefault("scheduler", Tick())
    while True:
        stop_if_cancelled()
        try:
            done = await tick(rt, now=utcnow(), grace_s=grace_s, batch=batch)
            for name in ("overdue", "milestones", "escalated", "lost_races"):
                setattr(totals, name, getattr(totals, name) + getattr(done, name))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the database may be briefly away; try next time
            log.warning("deadline scheduler: %s", exc)
        await asyncio.sleep(interval_s)


async def tick(rt: Runtime, *, now: dt.datetime, grace_s: float, batch: int = 200) -> Tick:
    """One pass: late orders, late milestones, escalations (each order in its own transaction)."""
    done = Tick()
    async with rt.sessions() as session:
        late = list((await session.execute(
            select(TaskOrder.id).where(open_and_late(now)).limit(batch))).scalars())
        late_steps = list((await session.execute(
            select(TaskOrder.id).where(TaskOrder.status.in_(OPEN), TaskOrder.next_milestone_due_at <= now)
            .limit(batch))).scalars())
        to_escalate = list((await session.execute(
            select(TaskOrder.id).where(TaskOrder.status.in_(OPEN), TaskOrder.escalated_at.is_(None),
                                       TaskOrder.overdue_at <= now - dt.timedelta(seconds=grace_s))
            .limit(batch))).scalars())
    for task_id in late:
        done.overdue += await _once(rt, done, _mark_overdue, task_id, now)
    for task_id in late_steps:
        done.milestones += await _once(rt, done, _mark_milestones, task_id, now)
    for task_id in to_escalate:
        done.escalated += await _once(rt, done, _escalate, task_id, now, grace_s)
    return done


async def _once(rt: Runtime, done: Tick, mark, task_id: str, *args) -> int:  # noqa: ANN001, ANN002
    """Run one mark in its own transaction; a lost race with another replica counts as nothing done."""
    try:
        async with rt.transaction() as session:
            task = await session.get(TaskOrder, task_id)
            return 0 if task is None else await mark(rt, session, task, *args)
    except (Conflict, DBAPIError) as exc:  # another replica marked it first
        log.debug("scheduler lost a race on %s: %s", task_id, exc)
        done.lost_races += 1
        return 0


async def _mark_overdue(rt: Runtime, session, task: TaskOrder, now: dt.datetime) -> int:  # noqa: ANN001
    if task.status not in OPEN or task.overdue_at is not None or task.deadline_at > now:
        return 0
    note = f"deadline {task.deadline_at.isoformat()} passed"
    await write_change(session, task, action="overdue", from_status=task.status, by=BY, at=now, note=note,
                       overdue_at=now)
    await rt.outbox.stage(session, TaskOverdueV2(
        task_id=task.id, model_id=task.model_id, category=task.category, station_id=task.station_id,
        unit_id=task.unit_id, milestone=None, deadline_at=task.deadline_at, at=now), subject=task.id)
    return 1


async def _mark_milestones(rt: Runtime, session, task: TaskOrder, now: dt.datetime) -> int:  # noqa: ANN001
    current = [upgraded(m) for m in task.milestones]
    late = [m for m in current if not m.get("done_at") and not m.get("overdue_at")
            and dt.datetime.fromisoformat(m["due_at"]) <= now]
    if task.status not in OPEN or not late:
        return 0
    codes = {m["code"] for m in late}
    milestones = [dict(m, overdue_at=now.isoformat()) if m["code"] in codes else dict(m) for m in current]
    note = "milestone " + ", ".join(f"{m['code']} (due {m['due_at']})" for m in late) + " passed unfinished"
    await write_change(session, task, action="milestone_overdue", from_status=task.status, by=BY, at=now, note=note,
                       milestones=milestones, next_milestone_due_at=next_milestone_due(milestones))
    for m in late:
        await rt.outbox.stage(session, TaskOverdueV2(
            task_id=task.id, model_id=task.model_id, category=task.category, station_id=task.station_id,
            unit_id=task.unit_id, milestone=m["code"], deadline_at=dt.datetime.fromisoformat(m["due_at"]), at=now),
            subject=task.id)
    return len(late)


async def _escalate(rt: Runtime, session, task: TaskOrder, now: dt.datetime, grace_s: float) -> int:  # noqa: ANN001
    if (task.status not in OPEN or task.overdue_at is None or task.escalated_at is not None
            or task.overdue_at > now - dt.timedelta(seconds=grace_s)):
        return 0
    unit = await session.get(Unit, task.unit_id)
    supervisor = unit.parent_id if unit is not None else None
    note = (f"overdue since {task.overdue_at.isoformat()}: escalated to {supervisor}" if supervisor
            else f"overdue since {task.overdue_at.isoformat()}: {task.unit_id} has no supervising unit")
    overdue_since = task.overdue_at
    await write_change(session, task, action="escalate", from_status=task.status, by=BY, at=now, note=note,
                       escalated_at=now, escalated_to=supervisor)
    await rt.outbox.stage(session, TaskEscalated(
        task_id=task.id, model_id=task.model_id, category=task.category, station_id=task.station_id,
        unit_id=task.unit_id, supervisor_id=supervisor, overdue_since=overdue_since, at=now), subject=task.id)
    return 1
