"""A task order's texts: stored by code with every language of the model version that issued it, read in the
caller's language. Orders received as v1 events (English strings, milestones by name) are read the same way."""
from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel

from shared.events import TaskOrderGenerated, TaskOrderGeneratedV2
from shared.i18n import Lang, label, pick
from shared.texts import legacy_lines, legacy_milestone


class LineOut(BaseModel):
    """A key point (工作要点) or measure (工作措施): its code and its text in the caller's language."""

    code: str
    text: str


class MilestoneOut(BaseModel):
    """A milestone (工作节点): complete it by `code`; `name` is in the caller's language."""

    code: str
    name: str
    due_at: dt.datetime
    done_at: dt.datetime | None = None
    done_by: str | None = None
    overdue_at: dt.datetime | None = None


def received(fact: TaskOrderGenerated) -> dict[str, Any]:
    """The stored columns of an order's texts, from a v2 event or a v1 one (its English upgraded)."""
    if isinstance(fact, TaskOrderGeneratedV2):
        return {"key_points": [k.model_dump() for k in fact.key_points],
                "measures": [m.model_dump() for m in fact.measures],
                "milestones": [{"code": m.code, "text": dict(m.text), "due_at": m.due_at.isoformat(), "done_at": None}
                               for m in fact.milestones],
                "model_name": dict(fact.model_name) if fact.model_name else None}
    return {"key_points": legacy_lines(list(fact.key_points), "k"), "measures": legacy_lines(list(fact.measures), "m"),
            "milestones": [legacy_milestone({"name": m.name, "due_at": m.due_at.isoformat(), "done_at": None})
                           for m in fact.milestones],
            "model_name": None}


def code_of(milestone: dict[str, Any]) -> str:
    """A stored milestone's code (a row the migration has not seen yet: from its English name)."""
    return str(upgraded(milestone)["code"])


def upgraded(line: Any, prefix: str = "k", index: int = 1) -> dict[str, Any]:
    """A stored line in today's shape (rows written before codes: upgraded on read)."""
    if isinstance(line, str):
        return legacy_lines([line], prefix)[0] | {"code": f"{prefix}{index}"}
    return legacy_milestone(line) if isinstance(line, dict) and "name" in line and "text" not in line else line


def matches(milestone: dict[str, Any], given: str) -> bool:
    """Whether a caller's `milestone` names this one: its code, or (for old clients) its text in any language."""
    m = upgraded(milestone)
    return given == m["code"] or given in (m.get("text") or {}).values()


def read_lines(lines: list[Any], prefix: str, lang: Lang) -> list[LineOut]:
    """Key points or measures in a language."""
    out = []
    for i, line in enumerate(lines, start=1):
        m = upgraded(line, prefix, i)
        out.append(LineOut(code=m["code"], text=pick(m.get("text"), lang) or m["code"]))
    return out


def read_milestones(milestones: list[dict[str, Any]], lang: Lang) -> list[MilestoneOut]:
    """Milestones in a language, with their state."""
    out = []
    for raw in milestones:
        m = upgraded(raw)
        out.append(MilestoneOut(code=m["code"], name=pick(m.get("text"), lang) or m["code"], due_at=m["due_at"],
                                done_at=m.get("done_at"), done_by=m.get("done_by"), overdue_at=m.get("overdue_at")))
    return out


def read_task(values: dict[str, Any], lang: Lang) -> dict[str, Any]:
    """The text fields of a task order's API form, in a language."""
    return {"lang": lang, "key_points": read_lines(values.get("key_points") or [], "k", lang),
            "measures": read_lines(values.get("measures") or [], "m", lang),
            "milestones": read_milestones(values.get("milestones") or [], lang),
            "model_name": pick(values.get("model_name"), lang),
            "category_label": label("category", values.get("category"), lang),
            "status_label": label("task_status", values.get("status"), lang)}
