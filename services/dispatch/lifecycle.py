"""The task-order loop as data: which action is allowed from which status, who may take it, where it leads."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from shared.errors import Conflict

Actor = Literal["unit", "supervisor"]


@dataclass(frozen=True)
class Step:
    """An action: the statuses it is allowed from, the status it leads to (None: unchanged), who takes it."""

    allowed_from: frozenset[str]
    leads_to: str | None
    actor: Actor
    needs_note: bool = False


#: statuses in which the receiving unit still owes work: deadlines and milestones can pass in them
OPEN = frozenset({"dispatched", "accepted", "in_progress", "returned", "reassigned"})
STATUSES = ("created", "dispatched", "accepted", "in_progress", "submitted", "verified", "returned", "reassigned")

STEPS: dict[str, Step] = {
    "accept": Step(frozenset({"dispatched", "reassigned"}), "accepted", "unit"),
    "start": Step(frozenset({"accepted", "returned"}), "in_progress", "unit"),
    "complete_milestone": Step(frozenset({"in_progress"}), None, "unit"),
    "submit": Step(frozenset({"in_progress"}), "submitted", "unit"),
    "verify": Step(frozenset({"submitted"}), "verified", "supervisor"),
    "return": Step(frozenset({"submitted"}), "returned", "supervisor", needs_note=True),
    "reassign": Step(OPEN, "reassigned", "supervisor", needs_note=True),
}


def step_for(action: str, status: str) -> Step:
    """The step for an action from the current status; Conflict with the allowed alternatives otherwise."""
    step = STEPS[action]
    if status not in step.allowed_from:
        possible = sorted(a for a, s in STEPS.items() if status in s.allowed_from)
        raise Conflict(
            f"cannot {action.replace('_', ' ')} a task order that is {status}: {action} is allowed only from "
            f"{', '.join(sorted(step.allowed_from))}; from {status} the possible actions are "
            f"{', '.join(possible) or 'none (the loop is closed)'}",
            status_now=status, allowed_actions=possible)
    return step
