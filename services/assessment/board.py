"""The daily board (日清看板): 8 themes per station per day — target, actual, progress, colour, overdue orders."""
from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from functools import cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, model_validator
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.assessment.models import Measure, TaskCopy
from services.assessment.schemas import BoardOut, StationBoardOut, ThemeOut
from services.assessment.stations import StationInfo
from shared.errors import Invalid


class Actual(BaseModel):
    """How a theme's actual is measured on a day."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["count", "rate", "tasks_due"]
    measures: list[str] = []
    denominator: list[str] = []


class Theme(BaseModel):
    """A board theme: its measure, daily target per mode and the task categories that can turn it red."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    id: str
    name: str
    name_zh: str
    unit: str
    actual: Actual
    target: dict[str, float] = {}
    categories: list[str] = []

    @model_validator(mode="after")
    def _target(self) -> Theme:
        if self.actual.kind != "tasks_due" and "default" not in self.target:
            raise ValueError(f"{self.id}: needs a default target")
        return self

    def target_for(self, mode: str | None) -> float:
        """The daily target for a station of this mode."""
        return self.target.get(mode or "default", self.target.get("default", 0.0))


class BoardRules(BaseModel):
    """The 8 themes and the progress thresholds, from `data/board.json`."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    thresholds: dict[Literal["blue", "yellow"], float]
    themes: list[Theme]


@cache
def rules() -> BoardRules:
    """The board's rules, validated at load."""
    path = Path(__file__).with_name("data") / "board.json"
    return BoardRules.model_validate(json.loads(path.read_text(encoding="utf-8")))


def theme_colour(progress: float | None, overdue: bool, thresholds: dict[str, float], *, nothing_due: bool) -> str:
    """red on any overdue order or below the yellow share of the pro-rata target; blue on track."""
    if overdue:
        return "red"
    if progress is None:
        return "blue" if nothing_due else "red"
    return "blue" if progress >= thresholds["blue"] else "yellow" if progress >= thresholds["yellow"] else "red"


def day_window(day: dt.date, tz: str, now: dt.datetime) -> tuple[dt.datetime, dt.datetime, float]:
    """(start of the local day, the moment to judge at, share of the day gone); 422 for a future day."""
    zone = ZoneInfo(tz)
    start = dt.datetime.combine(day, dt.time(), zone)
    end = start + dt.timedelta(days=1)
    if now < start:
        raise Invalid(f"{day} has not started yet", errors=[{"loc": ["query", "date"], "msg": "date in the future"}])
    as_of = min(now, end)
    return start, as_of, (as_of - start) / (end - start)


async def board(session: AsyncSession, *, day: dt.date, shown: dict[str, StationInfo], tz: str,
                now: dt.datetime) -> BoardOut:
    """The board of a day for the given stations."""
    start, as_of, elapsed = day_window(day, tz, now)
    ids = sorted(shown)
    measures: dict[str, dict[str, float]] = defaultdict(dict)
    if ids:
        rows = await session.execute(select(Measure.station_id, Measure.measure, Measure.value)
                                     .where(Measure.day == day, Measure.station_id.in_(ids)))
        for sid, name, value in rows.all():
            measures[sid][name] = value
    tasks: dict[str, list[TaskCopy]] = defaultdict(list)
    if ids:
        rows = await session.execute(select(TaskCopy).where(
            TaskCopy.station_id.in_(ids),
            or_(TaskCopy.closed_at.is_(None), TaskCopy.closed_at >= start),
            or_(TaskCopy.created_at.is_(None), TaskCopy.created_at < as_of)))
        for task in rows.scalars():
            tasks[task.station_id].append(task)
    cfg = rules()
    out = []
    for sid in ids:
        info = shown[sid]
        themes = [_theme(t, info.mode, measures[sid], tasks[sid], start=start, as_of=as_of, elapsed=elapsed,
                         thresholds=cfg.thresholds) for t in cfg.themes]
        out.append(StationBoardOut(station_id=sid, name=info.name, mode=info.mode, themes=themes))
    return BoardOut(date=day, elapsed=round(elapsed, 4), stations=out)


def _open_at(task: TaskCopy, as_of: dt.datetime) -> bool:
    return task.closed_at is None or task.closed_at > as_of


def _overdue_at(task: TaskCopy, as_of: dt.datetime) -> bool:
    late = (task.overdue_at is not None and task.overdue_at <= as_of) or (
        task.deadline_at is not None and task.deadline_at < as_of)
    return late and _open_at(task, as_of)


def _theme(theme: Theme, mode: str | None, measures: dict[str, float], tasks: list[TaskCopy], *,
           start: dt.datetime, as_of: dt.datetime, elapsed: float, thresholds: dict[str, float]) -> ThemeOut:
    overdue = sorted(t.id for t in tasks if t.category in theme.categories and _overdue_at(t, as_of))
    kind = theme.actual.kind
    if kind == "tasks_due":
        due = [t for t in tasks if t.deadline_at is not None and start <= t.deadline_at < as_of]
        target = float(len(due))
        actual = float(sum(1 for t in due if not _open_at(t, as_of)))
        progress = actual / target if target else None
        colour = theme_colour(progress, bool(overdue), thresholds, nothing_due=target == 0)
        return ThemeOut(theme=theme.id, name=theme.name_zh, unit=theme.unit, target=target, actual=actual,
                        progress=None if progress is None else round(progress, 4), colour=colour,
                        overdue_tasks=overdue)
    target = theme.target_for(mode)
    if kind == "rate":
        den = sum(measures.get(m, 0.0) for m in theme.actual.denominator)
        actual = sum(measures.get(m, 0.0) for m in theme.actual.measures) / den * 100 if den else None
        pro_rata = target
    else:
        actual = sum(measures.get(m, 0.0) for m in theme.actual.measures)
        pro_rata = target * elapsed
    progress = None if actual is None or pro_rata <= 0 else actual / pro_rata
    colour = theme_colour(progress, bool(overdue), thresholds, nothing_due=pro_rata <= 0 and actual is not None)
    return ThemeOut(theme=theme.id, name=theme.name_zh, unit=theme.unit, target=target,
                    actual=None if actual is None else round(actual, 4),
                    progress=None if progress is None else round(progress, 4), colour=colour, overdue_tasks=overdue)
