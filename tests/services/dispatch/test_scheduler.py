"""Deadlines with two dispatch replicas on one database: overdue and escalation on time, exactly once."""
from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from pathlib import Path

from sqlalchemy import select

from services.dispatch import scheduler
from services.dispatch.models import TaskOrder
from shared.db import utcnow
from shared.events import TaskEscalated, TaskOverdueV2
from tests.helpers import eventually
from tests.services.dispatch.support import Svc, order, receive, running, settings_for, staged

GRACE_S = 0.6
INTERVAL_S = 0.1
LATE_S = 10.0  # at most this late on a loaded machine (a day-long order stays untouched)


async def test_two_replicas_mark_overdue_and_escalate_each_order_exactly_once_and_on_time(
        database_url: str, nats_url: str, tmp_path: Path) -> None:
    fast = {"scheduler_interval_s": INTERVAL_S, "escalation_grace_s": GRACE_S}
    async with running(settings_for(database_url, nats_url, tmp_path / "a", **fast)) as a, \
            running(settings_for(database_url, nats_url, tmp_path / "b", **fast), load_units=False) as b:
        late = [await receive(a, order("ps-yiqiao", deadline_in=dt.timedelta(seconds=1.0),
                                       milestones={"visit": dt.timedelta(seconds=0.5)})) for _ in range(12)]
        squadron_own = await receive(a, order("ps-heshang", "personal_penalty", deadline_in=dt.timedelta(seconds=1)))
        on_time = await receive(b, order("ps-yiqiao", deadline_in=dt.timedelta(days=1)))
        everything = [*late, squadron_own]

        async def all_escalated() -> bool:
            async with a.rt.sessions() as session:
                rows = (await session.execute(select(TaskOrder.escalated_at).where(TaskOrder.id.in_(everything))))
                return sum(at is not None for at in rows.scalars()) == len(everything)

        await eventually(all_escalated, what="every late order escalated", timeout=20)
        await asyncio.sleep(10 * INTERVAL_S)  # both replicas keep ticking: give them the chance to double up

        by_replica = [a.rt.state["scheduler"], b.rt.state["scheduler"]]
        assert sum(t.overdue for t in by_replica) == len(everything)  # each replica counts only what it committed
        assert sum(t.milestones for t in by_replica) == len(late)
        assert sum(t.escalated for t in by_replica) == len(everything)
        overdue = await staged(a, TaskOverdueV2.subject)
        escalated = await staged(a, TaskEscalated.subject)
        assert Counter((e["task_id"], e["milestone"]) for e in overdue) == Counter(
            [(t, None) for t in everything] + [(t, "visit") for t in late])
        assert Counter(e["task_id"] for e in escalated) == Counter(everything)
        assert {e["supervisor_id"] for e in escalated if e["task_id"] in late} == {"sq-rural"}

        async with b.rt.sessions() as session:
            for task_id in everything:
                task = await session.get(TaskOrder, task_id)
                assert task is not None and task.overdue_at and task.escalated_at
                # on time: ticks come every 0.1 s; the slack is for a loaded machine running tests in parallel
                assert dt.timedelta(0) <= task.overdue_at - task.deadline_at < dt.timedelta(seconds=LATE_S)
                waited = task.escalated_at - task.overdue_at
                assert dt.timedelta(seconds=GRACE_S) <= waited < dt.timedelta(seconds=GRACE_S + LATE_S)
            untouched = await session.get(TaskOrder, on_time)
            assert untouched is not None and untouched.overdue_at is None and untouched.escalated_at is None

        supervisor = await a.client.get(f"/api/v1/tasks/{late[0]}", headers=a.as_("squadron", "sq-rural"))
        assert supervisor.json()["escalated_to"] == "sq-rural" and supervisor.json()["overdue"] is True
        actions = [h["action"] for h in supervisor.json()["history"]]
        assert Counter(actions) == Counter(["create", "dispatch", "milestone_overdue", "overdue", "escalate"])
        listed = await b.client.get("/api/v1/tasks", params={"overdue": "true", "limit": 500},
                                    headers=b.as_("command"))
        assert {t["id"] for t in listed.json()["items"]} == set(everything)


async def test_a_tick_leaves_submitted_orders_alone_and_an_extension_makes_an_order_due_again(svc: Svc) -> None:
    submitted = await receive(svc, order("ps-yiqiao", deadline_in=dt.timedelta(seconds=-1)))
    again = await receive(svc, order("ps-yiqiao", deadline_in=dt.timedelta(seconds=-1)))
    for action in ("accept", "start", "submit"):
        response = await svc.client.post(f"/api/v1/tasks/{submitted}/transitions", json={"action": action},
                                         headers=svc.station("ps-yiqiao"))
        assert response.status_code == 200, response.text

    first = await scheduler.tick(svc.rt, now=utcnow(), grace_s=3600)
    extended = await svc.client.post("/api/v1/tasks:bulk", headers=svc.as_("command"), json={
        "action": "extend", "task_ids": [again], "extend_by": 1, "note": "one more second"})
    assert extended.json()["succeeded"] == 1
    second = await scheduler.tick(svc.rt, now=utcnow() + dt.timedelta(seconds=5), grace_s=3600)
    repeat = await scheduler.tick(svc.rt, now=utcnow() + dt.timedelta(seconds=5), grace_s=3600)

    assert (first.overdue, second.overdue, repeat.overdue) == (1, 1, 0)
    assert [e["task_id"] for e in await staged(svc, TaskOverdueV2.subject)] == [again, again]
