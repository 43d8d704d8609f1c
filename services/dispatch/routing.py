"""The routing table as validated, versioned data: who handles an incident, who receives a task order."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.dispatch.models import RoutingVersion
from shared.db import insert_ignoring_duplicates, utcnow
from shared.errors import Conflict, Invalid, NotFound
from shared.events import Category

Target = Literal["station", "squadron", "case_squadron", "order_squadron"]
MODES = ("basic", "deep", "full")


class Cell(BaseModel):
    """A cell with exceptions for particular models."""

    model_config = ConfigDict(extra="forbid")
    default: Target
    by_model: dict[str, Target] = {}


class RoutingTable(BaseModel):
    """Category × mode → target; and mode → who handles incidents."""

    model_config = ConfigDict(extra="forbid")
    version: int
    description: str = ""
    incident_handler: dict[Literal["basic", "deep", "full", "unknown"], Target]
    tasks: dict[Category, dict[Literal["basic", "deep", "full"], Target | Cell]]

    @classmethod
    def load(cls, path: Path) -> RoutingTable:
        """Read and validate the table; every category must have every mode."""
        return cls.from_data(json.loads(path.read_text(encoding="utf-8")))

    @classmethod
    def from_data(cls, data: object) -> RoutingTable:
        """Validate a table; every category must have every mode (ValueError or ValidationError otherwise)."""
        table = cls.model_validate(data)
        for category, row in table.tasks.items():
            missing = set(MODES) - set(row)
            if missing:
                raise ValueError(f"routing table: {category} lacks modes {sorted(missing)}")
        missing_categories = set(get_args(Category)) - set(table.tasks)
        if missing_categories:
            raise ValueError(f"routing table: no row for {sorted(missing_categories)}")
        return table

    def task_target(self, *, category: str, mode: str | None, model_id: str) -> tuple[Target, str]:
        """The target kind for a task order, and the reason in words."""
        effective = mode if mode in MODES else "deep"
        cell = self.tasks[category][effective]  # type: ignore[index]
        why = f"{category} in a {effective}-mode area"
        if mode not in MODES:
            why += " (station mode not yet known: routed as deep)"
        if isinstance(cell, Cell):
            if model_id in cell.by_model:
                return cell.by_model[model_id], f"{why}, model {model_id} exception"
            return cell.default, why
        return cell, why

    def incident_target(self, mode: str | None) -> Target:
        """The target kind that handles an accident in an area of this mode."""
        return self.incident_handler[mode if mode in MODES else "unknown"]  # type: ignore[index]


# --- versions kept in the database --------------------------------------------------------------


async def seed(session: AsyncSession, *, table: RoutingTable, source: str) -> None:
    """Store the shipped table as the first version unless some version exists (replicas may race: harmless)."""
    if (await session.execute(select(RoutingVersion.version).limit(1))).first() is not None:
        return
    await session.execute(insert_ignoring_duplicates(
        RoutingVersion.__table__, session.bind.dialect.name, version=table.version, body=table.model_dump(mode="json"),
        created_by=source, created_at=utcnow()))


async def newest(session: AsyncSession) -> RoutingVersion:
    """The version in force (the newest)."""
    row = (await session.execute(select(RoutingVersion).order_by(RoutingVersion.version.desc()).limit(1))).scalar()
    if row is None:
        raise NotFound("no routing table stored")
    return row


async def get_version(session: AsyncSession, *, version: int) -> RoutingVersion:
    """One stored version."""
    row = await session.get(RoutingVersion, version)
    if row is None:
        raise NotFound(f"routing table version {version} does not exist")
    return row


async def save(session: AsyncSession, *, data: dict, by: str) -> RoutingVersion:
    """Validate and store an edited table as the next version.

    `version` in the body, if given, must be the next number (the edit was based on the newest version).
    """
    current = await newest(session)
    wanted = data.get("version", current.version + 1) if isinstance(data, dict) else None
    if wanted != current.version + 1:
        raise Conflict(f"the routing table is at version {current.version}; an edit must be version "
                       f"{current.version + 1} (reload and edit the newest)")
    try:
        table = RoutingTable.from_data(data)
    except ValidationError as exc:
        raise Invalid("the routing table is not valid", errors=[
            {"loc": [str(part) for part in e["loc"]], "msg": e["msg"]} for e in exc.errors()]) from exc
    except ValueError as exc:
        raise Invalid(str(exc)) from exc
    row = RoutingVersion(version=table.version, body=table.model_dump(mode="json"), created_by=by,
                         created_at=utcnow())
    session.add(row)
    return row


async def in_force(state: dict[str, Any], session: AsyncSession, *, ttl_s: float) -> tuple[int, RoutingTable]:
    """The table in force, as this replica caches it for `ttl_s` (dropped locally after an edit)."""
    cached = state.get("routing")
    if cached is None or time.monotonic() - cached[2] > ttl_s:
        row = await newest(session)
        cached = (row.version, RoutingTable.from_data(row.body), time.monotonic())
        state["routing"] = cached
    return cached[0], cached[1]
