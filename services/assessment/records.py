"""Records: activity intake (idempotent on external_id) and the daily measures events and activities add to."""
from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections import defaultdict
from collections.abc import Iterable
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from services.assessment.inputs import MAX_YEAR, MIN_YEAR
from services.assessment.models import Activity, DirtyPeriod, Measure, TaskCopy
from services.assessment.schemas import ActivityBatchOut, ActivityIn, ActivityOut, ActivityResult
from services.assessment.stations import announced_kinds, known_stations, may_record_for
from shared.auth import Identity
from shared.batch import ItemError
from shared.db import insert_ignoring_duplicates, utcnow
from shared.errors import Forbidden, Invalid
from shared.events import (
    ActivityRecorded,
    IncidentArrived,
    IncidentDispatched,
    IncidentReported,
    TaskChanged,
    TaskEscalated,
    TaskOverdue,
)
from shared.outbox import Outbox

log = logging.getLogger(__name__)
COMPLETED = frozenset({"verified", "closed", "done"})

Key = tuple[str, dt.date]


def local_day(at: dt.datetime, tz: str) -> dt.date:
    """The local calendar day of a timestamp."""
    return at.astimezone(ZoneInfo(tz)).date()


def activity_measures(a: ActivityIn | Activity) -> dict[str, float]:
    """What one activity record adds to its station's day (the conventions in docs/ASSESSMENT.md)."""
    d, n = a.details or {}, float(a.count)
    out: dict[str, float] = {f"records.{a.kind}": 1.0}
    if a.kind in ("education", "dissuasion"):
        out[a.kind] = n
    elif a.kind == "helmet_check":
        out["helmet_checks"] = n
        wearing = d.get("wearing")
        if wearing is None and a.value is not None and 0 <= a.value <= 1:
            wearing = round(a.value * n)
        if wearing is not None:
            out["helmet_rated"], out["helmet_worn"] = n, float(wearing)
    elif a.kind == "hazard_remediation":
        out["hazards_remediated"] = n
        out["hazards_found"] = float(d["found"]) if d.get("found") is not None else n
    elif a.kind == "violation":
        out["violations"] = n
        out[f"violation.{d.get('type') or 'other'}"] = n
    elif a.kind == "drunk_driving_check":
        out["drunk_driving_checks"] = n
    elif a.kind == "post_operation":
        out["post_hours"] = n
    elif a.kind == "map_colour":
        out[f"map.{d['colour']}"] = n
    return out


async def add_measures(session: AsyncSession, adds: dict[Key, dict[str, float]]) -> None:
    """Add to daily measures (insert or increment), and mark the touched months (and next year's) dirty."""
    rows = [{"station_id": s, "day": day, "measure": m, "value": v}
            for (s, day), measures in adds.items() for m, v in measures.items()]
    if not rows:
        return
    dialect = postgresql if session.bind.dialect.name == "postgresql" else sqlite
    table = Measure.__table__
    for row in rows:
        stmt = dialect.insert(table).values(**row)
        stmt = stmt.on_conflict_do_update(index_elements=["station_id", "day", "measure"],
                                          set_={"value": table.c.value + stmt.excluded.value})
        await session.execute(stmt)
    await mark_dirty(session, {day for _, day in adds})


async def mark_dirty(session: AsyncSession, days: Iterable[dt.date]) -> None:
    """Months whose scores must be re-announced: the day's month and, for the year-on-year indicator, a year on."""
    months = set()
    for day in days:
        if not MIN_YEAR <= day.year < MAX_YEAR:
            continue  # no period can hold it (periods.py): nothing to re-score
        months.add(f"{day:%Y-%m}")
        months.add(f"{day.year + 1}-{day.month:02d}")
    for period in months:
        await session.execute(insert_ignoring_duplicates(DirtyPeriod.__table__, session.bind.dialect.name,
                                                         period=period, marked_at=utcnow()))


# --- activities --------------------------------------------------------------------------------

def activity_out(a: Activity, *, known: bool = True) -> ActivityOut:
    """An activity as the API shows it (`known`: whether its station id is a known station)."""
    return ActivityOut(id=a.id, external_id=a.external_id, kind=a.kind, station_id=a.station_id,
                       occurred_at=a.occurred_at, day=a.day, count=a.count, value=a.value, details=a.details or {},
                       station_known=known)


def warn_unknown(unknown: set[str], created: int) -> None:
    """Log (as a warning) station ids accepted without being known: a typo, or unit copies lagging."""
    if unknown and created:
        log.warning("recorded %d activities; station ids not known as stations (yet): %s", created,
                    ", ".join(sorted(unknown)[:20]) + (" …" if len(unknown) > 20 else ""))


async def record_activities(session: AsyncSession, *, outbox: Outbox, items: list[ActivityIn], who: Identity,
                            tz: str) -> list[tuple[Activity, bool]]:
    """Accept activity records (idempotent on external_id): (record, created) per item, in order."""
    kinds = await announced_kinds(session, [i.station_id for i in items])
    for item in items:
        if not await may_record_for(session, who, item.station_id):
            raise Forbidden(f"{who.username} may not record activities for {item.station_id}")
        if kinds.get(item.station_id, "station") != "station":
            raise Invalid(f"{item.station_id} is a {kinds[item.station_id]}, not a station",
                          errors=[{"loc": ["body", "station_id"], "msg": "not a station"}])
    ids = list({i.external_id for i in items})
    known: dict[str, Activity] = {}
    for chunk in range(0, len(ids), 500):
        rows = await session.execute(select(Activity).where(Activity.external_id.in_(ids[chunk:chunk + 500])))
        known.update({a.external_id: a for a in rows.scalars()})
    out: list[tuple[Activity, bool]] = []
    adds: dict[Key, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    now = utcnow()
    for item in items:
        if item.external_id in known:
            out.append((known[item.external_id], False))
            continue
        day = local_day(item.occurred_at, tz)
        activity = Activity(id=f"act-{uuid.uuid4().hex}", external_id=item.external_id, kind=item.kind,
                            station_id=item.station_id, occurred_at=item.occurred_at.astimezone(dt.UTC), day=day,
                            count=item.count, value=item.value, details=dict(item.details),
                            recorded_by=who.username, created_at=now)
        session.add(activity)
        known[item.external_id] = activity
        for m, v in activity_measures(item).items():
            adds[(item.station_id, day)][m] += v
        await outbox.stage(session, ActivityRecorded(
            activity_id=activity.id, external_id=activity.external_id, kind=item.kind, station_id=item.station_id,
            occurred_at=item.occurred_at, count=item.count, value=item.value, details=dict(item.details)),
            subject=item.station_id)
        out.append((activity, True))
    await session.flush()
    await add_measures(session, adds)
    return out


async def record_batch(session: AsyncSession, *, outbox: Outbox, valid: list[tuple[int, ActivityIn]],
                       rejected: dict[int, ActivityResult], who: Identity, tz: str) -> ActivityBatchOut:
    """A batch of activity records (read and checked by shared.batch): per-item results; a bad item does not stop
    the others."""
    results = dict(rejected)
    allowed: list[tuple[int, ActivityIn]] = []
    kinds = await announced_kinds(session, [i.station_id for _, i in valid])
    for index, item in valid:
        kind = kinds.get(item.station_id, "station")
        if not await may_record_for(session, who, item.station_id):
            results[index] = ActivityResult.rejected(index, [ItemError(loc=["station_id"],
                                                                       msg="outside your jurisdiction")])
        elif kind != "station":
            results[index] = ActivityResult.rejected(index, [ItemError(
                loc=["station_id"], msg=f"{item.station_id} is a {kind}, not a station")])
        else:
            allowed.append((index, item))
    saved = await record_activities(session, outbox=outbox, items=[i for _, i in allowed], who=who, tz=tz)
    known = await known_stations(session, [i.station_id for _, i in allowed])
    unknown = {i.station_id for _, i in allowed} - known
    for (index, _), (activity, created) in zip(allowed, saved, strict=True):
        results[index] = ActivityResult(index=index, status=201 if created else 200, id=activity.id,
                                        station_id=activity.station_id, station_known=activity.station_id in known)
    warn_unknown(unknown, sum(created for _, created in saved))
    return ActivityBatchOut.of([results[i] for i in sorted(results)], unknown_stations=sorted(unknown))


# --- what other services report -----------------------------------------------------------------

async def on_incident(session: AsyncSession, *, fact: IncidentReported, tz: str) -> None:
    """An incident adds to its station's day: all incidents, by kind, casualties of every incident (the tallies)
    and of accidents (the indicators)."""
    if fact.station_id is None:
        return
    adds = {"incidents": 1.0, f"incident.{fact.kind}": 1.0}
    if fact.severity.deaths:
        adds["incident_deaths"] = float(fact.severity.deaths)
    if fact.severity.injuries:
        adds["incident_injuries"] = float(fact.severity.injuries)
    if fact.kind == "accident":
        adds["accident_deaths"] = float(fact.severity.deaths)
        adds["accident_injuries"] = float(fact.severity.injuries)
    await add_measures(session, {(fact.station_id, local_day(fact.occurred_at, tz)): adds})


async def on_dispatched(session: AsyncSession, *, fact: IncidentDispatched, tz: str) -> None:
    """An incident handed to its unit."""
    if fact.station_id is not None:
        await add_measures(session, {(fact.station_id, local_day(fact.dispatched_at, tz)): {"dispatched": 1.0}})


async def on_arrived(session: AsyncSession, *, fact: IncidentArrived, tz: str) -> None:
    """An arrival at the scene, and whether it was within 5 minutes."""
    if fact.station_id is not None:
        await add_measures(session, {(fact.station_id, local_day(fact.reported_at, tz)): {
            "arrivals": 1.0, "arrivals_within_5": float(fact.within_5_min), "response_s": fact.response_s}})


async def _task(session: AsyncSession, fact: TaskChanged | TaskOverdue | TaskEscalated, **defaults: Any) -> TaskCopy:
    """The copy of the fact's task order, made from the fact when this is its first news."""
    task = await session.get(TaskCopy, fact.task_id)
    if task is None:
        task = TaskCopy(id=fact.task_id, status=defaults.pop("status", "dispatched"), station_id=fact.station_id,
                        unit_id=fact.unit_id, model_id=fact.model_id, category=fact.category, **defaults)
    return task


async def _count_on_station(session: AsyncSession, station_id: str | None, at: dt.datetime, tz: str,
                            adds: dict[str, float]) -> None:
    if adds and station_id is not None:
        await add_measures(session, {(station_id, local_day(at, tz)): adds})


async def on_task_changed(session: AsyncSession, *, fact: TaskChanged, tz: str) -> None:
    """Keep the task's copy; count creations and completions on their day."""
    task = await _task(session, fact, status=fact.new_status)
    task.status, task.unit_id, task.station_id = fact.new_status, fact.unit_id, fact.station_id or task.station_id
    if fact.deadline_at is not None:
        task.deadline_at = fact.deadline_at
    adds: dict[str, float] = {}
    if fact.old_status is None:
        task.created_at = fact.at
        adds.update({"tasks_created": 1.0, f"tasks_created.{fact.category}": 1.0})
    if fact.new_status in COMPLETED and (fact.old_status or "") not in COMPLETED:
        task.closed_at = fact.at
        adds.update({"tasks_completed": 1.0, f"tasks_completed.{fact.category}": 1.0})
    elif fact.new_status not in COMPLETED:
        task.closed_at = None
    session.add(task)
    await _count_on_station(session, task.station_id, fact.at, tz, adds)


async def on_task_overdue(session: AsyncSession, *, fact: TaskOverdue, tz: str) -> None:
    """A task order (not a milestone) passed its deadline unfinished."""
    if fact.milestone is not None:
        return
    task = await _task(session, fact)
    task.overdue_at = task.overdue_at or fact.at
    task.deadline_at = task.deadline_at or fact.deadline_at
    session.add(task)
    await _count_on_station(session, fact.station_id, fact.at, tz,
                            {"tasks_overdue": 1.0, f"tasks_overdue.{fact.category}": 1.0})


async def on_task_escalated(session: AsyncSession, *, fact: TaskEscalated, tz: str) -> None:
    """An overdue task order went up to the supervisor."""
    task = await _task(session, fact)
    task.escalated_at = task.escalated_at or fact.at
    task.overdue_at = task.overdue_at or fact.overdue_since
    session.add(task)
    await _count_on_station(session, fact.station_id, fact.at, tz, {"tasks_escalated": 1.0})
