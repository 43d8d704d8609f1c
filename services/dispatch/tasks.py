"""Task orders: routing on receipt, the loop's transitions, bulk actions, and reading them back in scope."""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import and_, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from services.dispatch import directory as unit_directory
from services.dispatch import photo_store, texts
from services.dispatch.directory import Directory
from services.dispatch.lifecycle import OPEN, STEPS, step_for
from services.dispatch.models import TaskHistory, TaskOrder, Unit
from services.dispatch.routing import RoutingTable
from services.dispatch.service import may_act_for, one_in_scope, zone_station_ids
from services.dispatch.task_views import BulkIn, BulkItemResult, BulkOut, TaskOut, TransitionIn
from shared.auth import Identity
from shared.db import insert_ignoring_duplicates, utcnow
from shared.errors import Conflict, DomainError, Forbidden, Invalid, NotFound
from shared.events import TaskChanged, TaskOrderGenerated
from shared.i18n import DEFAULT, Lang
from shared.outbox import Outbox
from shared.pagination import Keyset, PageRequest
from shared.scope import Scope

TASKS, HISTORY = TaskOrder.__table__, TaskHistory.__table__

# --- receiving and routing ----------------------------------------------------------------------


def next_milestone_due(milestones: list[dict]) -> dt.datetime | None:
    """The earliest due time among milestones neither done nor already marked overdue."""
    due = [dt.datetime.fromisoformat(m["due_at"]) for m in milestones
           if not m.get("done_at") and not m.get("overdue_at")]
    return min(due) if due else None


async def receive_task_order(session: AsyncSession, *, outbox: Outbox, fact: TaskOrderGenerated,
                             routing: RoutingTable, routing_version: int,
                             directory: Directory | None = None) -> TaskOrder | None:
    """Store a generated task order and route it to one unit; a repeat of the same id changes nothing.

    `directory`: the replica's unit directory (read from the database when not given). Three statements
    per order: the order (INSERT … ON CONFLICT DO NOTHING: a repeat inserts nothing), its two history
    steps, its event.
    """
    directory = directory or await unit_directory.current({}, session)
    station = directory.units.get(fact.station_id) if fact.station_id else None
    if station is None:
        command = directory.first_of_kind.get("brigade")
        if command is None:
            raise NotFound("no station for the task order and no brigade to take it")
        unit_id, reason = command, "no station area holds the incident: sent to the brigade's command office"
    else:
        target, why = routing.task_target(category=fact.category, mode=station.mode, model_id=fact.model_id)
        unit_id, note = directory.resolve_target(station, target)
        reason = f"{why} goes to the {target} (routing table v{routing_version})" + note
    now = utcnow()
    lines = texts.received(fact)  # codes with the texts of the model version, every language
    task = TaskOrder(
        id=fact.task_id, incident_id=fact.incident_id, model_id=fact.model_id, source=fact.source,
        entity_ref=fact.entity_ref, category=fact.category, station_id=fact.station_id, unit_id=unit_id,
        status="dispatched", version=2, deadline_at=fact.deadline_at, model_version=fact.model_version,
        next_milestone_due_at=next_milestone_due(lines["milestones"]), routing_reason=reason, created_at=now,
        updated_at=now, **lines,
    )
    stored = await session.execute(insert_ignoring_duplicates(
        TASKS, session.bind.dialect.name, **{c: getattr(task, c) for c in TASKS.c.keys()}))
    if stored.rowcount != 1:
        return None  # already received under this id
    await session.execute(insert(HISTORY), [
        _step(task.id, 1, "create", None, "created", f"model:{fact.model_id}", now, fact.reason),
        _step(task.id, 2, "dispatch", "created", "dispatched", "dispatch", now, reason)])
    await announce(session, outbox, task, old_status=None, by="dispatch", at=now, note=reason)
    return task


def _step(task_id: str, seq: int, action: str, from_status: str | None, to_status: str, by: str, at: dt.datetime,
          note: str, milestone: str | None = None, evidence: list[str] | None = None) -> dict[str, Any]:
    """A task_history row."""
    return {"task_id": task_id, "seq": seq, "action": action, "from_status": from_status, "to_status": to_status,
            "by": by, "at": at, "note": note, "milestone": milestone, "evidence": list(evidence or [])}


async def announce(session: AsyncSession, outbox: Outbox, task: TaskOrder, *, old_status: str | None, by: str,
                   at: dt.datetime, note: str, previous_unit_id: str | None = None) -> None:
    """Stage the TaskChanged fact of a change (`previous_unit_id`: the unit a reassigned order left)."""
    await outbox.stage(session, TaskChanged(
        task_id=task.id, incident_id=task.incident_id, model_id=task.model_id, category=task.category,
        station_id=task.station_id, unit_id=task.unit_id, old_status=old_status, new_status=task.status, by=by,
        at=at, deadline_at=task.deadline_at, note=note, previous_unit_id=previous_unit_id,
    ), subject=task.id)


async def write_change(session: AsyncSession, task: TaskOrder, *, action: str, from_status: str | None, by: str,
                       at: dt.datetime, note: str = "", milestone: str | None = None,
                       evidence: list[str] | None = None, **values: Any) -> None:
    """Apply `values` to the task if nobody changed it since it was read, and record the step in its history.

    The UPDATE is conditional on the version read: of two replicas or requests racing, one wins and the
    other gets Conflict, so nothing is applied twice and no change is lost.
    """
    version = task.version
    done = await session.execute(
        update(TaskOrder).where(TaskOrder.id == task.id, TaskOrder.version == version)
        .values(version=version + 1, updated_at=at, **values).execution_options(synchronize_session=False))
    if done.rowcount != 1:
        raise Conflict(f"task order {task.id} was changed meanwhile; reload it and try again")
    # the row is written: bring the object up to date without making it dirty (no second UPDATE at flush)
    for name, value in (values | {"version": version + 1, "updated_at": at}).items():
        set_committed_value(task, name, value)
    await session.execute(insert(HISTORY).values(
        _step(task.id, version + 1, action, from_status, task.status, by, at, note, milestone, evidence)))


# --- jurisdiction -------------------------------------------------------------------------------


TASK_ORDER = Keyset(TaskOrder.created_at, TaskOrder.id, descending=True)


async def task_scope(session: AsyncSession, viewer: Identity) -> Any:
    """A WHERE clause limiting task orders to the viewer's jurisdiction (None: everything): a station its own
    orders, a squadron its own, its stations' and those escalated to it."""
    scope = Scope.of(viewer, what="task orders")
    zone = await zone_station_ids(session, scope.unit_id or "") if scope.kind == "zone" else ()
    units = (TaskOrder.escalated_to,) if scope.kind == "zone" else ()
    return scope.clause(TaskOrder.unit_id, zone=zone, units=units)


async def scoped_task(session: AsyncSession, viewer: Identity, task_id: str) -> TaskOrder:
    """The order if it lies in the viewer's jurisdiction; NotFound otherwise (whether it exists is not theirs)."""
    return await one_in_scope(session, TaskOrder, task_id, await task_scope(session, viewer), "task")


async def list_tasks(session: AsyncSession, *, viewer: Identity, status: str | None = None,
                     category: str | None = None, unit_id: str | None = None, incident_id: str | None = None,
                     overdue: bool | None = None, request: PageRequest = PageRequest(),
                     ) -> tuple[list[TaskOrder], str | None]:
    """Task orders in the viewer's jurisdiction, newest first, one page."""
    stmt = select(TaskOrder)
    scope = await task_scope(session, viewer)
    if scope is not None:
        stmt = stmt.where(scope)
    for column, value in ((TaskOrder.status, status), (TaskOrder.category, category),
                          (TaskOrder.unit_id, unit_id), (TaskOrder.incident_id, incident_id)):
        if value:
            stmt = stmt.where(column == value)
    if overdue is not None:
        stmt = stmt.where(TaskOrder.overdue_at.is_not(None) if overdue else TaskOrder.overdue_at.is_(None))
    return await TASK_ORDER.page(session, stmt, request)


async def get_task(session: AsyncSession, *, viewer: Identity, task_id: str, lang: Lang = DEFAULT) -> TaskOut:
    """One task order with its history, in the viewer's jurisdiction, its texts in `lang`."""
    task = await scoped_task(session, viewer, task_id)
    return task_out(task, await history_of(session, task_id), lang=lang)


async def history_of(session: AsyncSession, task_id: str) -> list[TaskHistory]:
    """A task order's steps, oldest first."""
    return list((await session.execute(
        select(TaskHistory).where(TaskHistory.task_id == task_id).order_by(TaskHistory.seq))).scalars())


def task_out(task: TaskOrder, history: list[TaskHistory] | None = None, *, lang: Lang = DEFAULT) -> TaskOut:
    """A task order as the API shows it, its texts in the reader's language."""
    values = task.model_dump()
    return TaskOut(**(values | texts.read_task(values, lang)), overdue=task.overdue_at is not None,
                   history=[h.model_dump() for h in history or []])


# --- the loop -----------------------------------------------------------------------------------


async def _may_supervise(session: AsyncSession, viewer: Identity, task: TaskOrder) -> bool:
    """Command staff, or the squadron above the receiving unit (never the receiving unit itself)."""
    scope = Scope.of(viewer, what="task orders")
    if scope.whole:
        return True
    if scope.kind != "zone" or scope.unit_id == task.unit_id:
        return False
    return task.escalated_to == scope.unit_id or await may_act_for(session, viewer, task.unit_id)


async def _receiving_unit(session: AsyncSession, viewer: Identity, unit_id: str | None, task: TaskOrder) -> Unit:
    if not unit_id:
        raise Invalid("reassign needs unit_id: the unit that receives the order")
    unit = await session.get(Unit, unit_id)
    if unit is None:
        raise Invalid(f"unit {unit_id} does not exist")
    if unit_id == task.unit_id:
        raise Invalid(f"task order {task.id} is already with {unit_id}")
    if not await may_act_for(session, viewer, unit_id):
        raise Forbidden(f"{unit_id} is outside your jurisdiction")
    return unit


async def transition(session: AsyncSession, *, outbox: Outbox, viewer: Identity, task_id: str,
                     data: TransitionIn) -> TaskOrder:
    """Take one step of the loop; NotFound outside jurisdiction, Forbidden for the wrong actor, Conflict if
    the step is not allowed from the current status."""
    task = await scoped_task(session, viewer, task_id)
    actor = STEPS[data.action].actor
    if actor == "unit" and viewer.unit_id != task.unit_id and viewer.role != "admin":
        raise Forbidden(f"only the receiving unit {task.unit_id} may {data.action.replace('_', ' ')} this order")
    if actor == "supervisor" and not await _may_supervise(session, viewer, task):
        raise Forbidden(f"only a unit above {task.unit_id} or the command centre may {data.action} this order")
    step = step_for(data.action, task.status)
    if step.needs_note and not data.note.strip():
        raise Invalid(f"{data.action} needs a note saying why")
    now = utcnow()
    old_status, old_unit = task.status, task.unit_id
    values: dict[str, Any] = {}
    if step.leads_to:
        values["status"] = step.leads_to
    note = data.note
    if data.action == "complete_milestone":
        values.update(_tick(task, data.milestone, viewer, now))
        data = data.model_copy(update={"milestone": values.pop("code")})  # history and events keep the code
        note = note or f"milestone {data.milestone} done"
    elif data.action == "submit":
        left = ", ".join(texts.code_of(m) for m in task.milestones if not m.get("done_at"))
        if left:
            raise Conflict(f"cannot submit task order {task.id}: milestones not done yet: {left}",
                           code="task.milestones_open", params={"task_id": task.id, "milestones": left})
    elif data.action == "reassign":
        unit = await _receiving_unit(session, viewer, data.unit_id, task)
        values["unit_id"] = unit.id
        note = f"reassigned from {task.unit_id} to {unit.id}: {data.note}"
    milestone = data.milestone if data.action == "complete_milestone" else None
    await photo_store.attach(session, task_id=task.id, evidence=data.evidence, action=data.action,
                             milestone=milestone, at=now)
    await write_change(session, task, action=data.action, from_status=old_status, by=viewer.username, at=now,
                       note=note, milestone=milestone, evidence=data.evidence, **values)
    await announce(session, outbox, task, old_status=old_status, by=viewer.username, at=now, note=note,
                   previous_unit_id=old_unit if task.unit_id != old_unit else None)
    return task


def _tick(task: TaskOrder, given: str | None, viewer: Identity, now: dt.datetime) -> dict[str, Any]:
    """Mark the next milestone done, named by its code (or, for older clients, its text in any language);
    milestones are ticked one by one, in order."""
    if not given:
        raise Invalid("complete_milestone needs milestone: its code", code="task.milestone_needed")
    current = [texts.upgraded(m) for m in task.milestones]
    codes = [m["code"] for m in current]
    hit = next((m for m in current if texts.matches(m, given)), None)
    if hit is None:
        raise Invalid(f"task order {task.id} has no milestone {given!r}; its milestones are {codes}",
                      code="task.no_milestone", params={"task_id": task.id, "milestone": given,
                                                        "milestones": ", ".join(codes)})
    code = hit["code"]
    pending = [m for m in current if not m.get("done_at")]
    if all(m["code"] != code for m in pending):
        raise Conflict(f"milestone {code} of task order {task.id} is already done", code="task.milestone_done",
                       params={"task_id": task.id, "milestone": code})
    if pending[0]["code"] != code:
        raise Conflict(f"milestones are ticked one by one: the next one is {pending[0]['code']}, not {code}",
                       code="task.milestone_order", params={"next": pending[0]["code"], "milestone": code})
    milestones = [dict(m, done_at=now.isoformat(), done_by=viewer.username) if m["code"] == code else dict(m)
                  for m in current]
    return {"milestones": milestones, "next_milestone_due_at": next_milestone_due(milestones), "code": code}


# --- bulk actions -------------------------------------------------------------------------------


async def bulk(session: AsyncSession, *, outbox: Outbox, viewer: Identity, data: BulkIn) -> BulkOut:
    """Reassign or extend many orders; each succeeds or fails on its own (per-item results)."""
    if Scope.of(viewer, what="task orders").kind not in ("district", "zone"):
        raise Forbidden("bulk actions are for command staff and squadrons")
    results = []
    for task_id in dict.fromkeys(data.task_ids):
        try:
            if data.action == "reassign":
                task = await transition(session, outbox=outbox, viewer=viewer, task_id=task_id, data=TransitionIn(
                    action="reassign", unit_id=data.unit_id, note=data.note))
            else:
                task = await _extend(session, outbox=outbox, viewer=viewer, task_id=task_id, data=data)
            results.append(BulkItemResult(task_id=task_id, status=200, task_status=task.status))
        except DomainError as exc:
            results.append(BulkItemResult(task_id=task_id, status=exc.status, detail=exc.detail))
    ok = sum(r.status == 200 for r in results)
    return BulkOut(results=results, succeeded=ok, failed=len(results) - ok)


async def _extend(session: AsyncSession, *, outbox: Outbox, viewer: Identity, task_id: str,
                  data: BulkIn) -> TaskOrder:
    """Move an open order's deadline later; it is no longer overdue (a new deadline can pass again)."""
    task = await scoped_task(session, viewer, task_id)
    if not await _may_supervise(session, viewer, task):
        raise Forbidden(f"only a unit above {task.unit_id} or the command centre may extend this order")
    if task.status == "verified":
        raise Conflict(f"task order {task_id} is verified: its loop is closed")
    new = data.deadline_at if data.deadline_at is not None else task.deadline_at + data.extend_by  # type: ignore[operator]
    if new <= task.deadline_at:
        raise Invalid(f"the new deadline {new.isoformat()} is not later than {task.deadline_at.isoformat()}")
    now = utcnow()
    note = f"deadline extended from {task.deadline_at.isoformat()} to {new.isoformat()}: {data.note}"
    await write_change(session, task, action="extend", from_status=task.status, by=viewer.username, at=now,
                       note=note, deadline_at=new, overdue_at=None, escalated_at=None)
    await announce(session, outbox, task, old_status=task.status, by=viewer.username, at=now, note=note)
    return task


def open_and_late(now: dt.datetime) -> Any:
    """Open orders whose deadline passed and that are not yet marked overdue."""
    return and_(TaskOrder.status.in_(OPEN), TaskOrder.overdue_at.is_(None), TaskOrder.deadline_at <= now)
