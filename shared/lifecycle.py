"""Bounded shutdown: every background loop is tracked, cancelled and awaited with a deadline.

A loop that swallows its cancellation (on Python 3.11 `asyncio.wait_for` can return normally when the
inner future finishes in the same tick as the cancel) or an await with no timer below it must never hold a
process, or a test's teardown, for ever. So shutdown never waits on a task without a deadline: it cancels,
waits a little, cancels again what is still running (a second cancel lands where the first was swallowed),
and at the deadline gives up on the rest, logging each task it had to cut with where it was stuck.
"""
from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import Awaitable, Coroutine
from typing import Any

log = logging.getLogger(__name__)

#: how often a task still running after its cancel is cancelled again
RECANCEL_S = 0.05


def where(task: asyncio.Task[Any]) -> str:
    """The task's name and the innermost lines of its stack, for a log line."""
    out = io.StringIO()
    task.print_stack(limit=6, file=out)
    return f"{task.get_name()}: {out.getvalue().strip()}"


async def cancel_and_wait(tasks: list[asyncio.Task[Any]], deadline_s: float) -> list[asyncio.Task[Any]]:
    """Cancel the tasks and wait until they end, at most `deadline_s`; returns those still running then.

    Never waits on a task without a timeout, so a task that ignores cancellation cannot hold the caller.
    """
    pending = {t for t in tasks if not t.done()}
    until = time.monotonic() + deadline_s
    while pending:
        for task in pending:
            task.cancel()
        left = until - time.monotonic()
        if left <= 0:
            break
        _, pending = await asyncio.wait(pending, timeout=min(RECANCEL_S, left))
    for task in tasks:  # retrieve results so nothing logs "exception was never retrieved"
        if task.done() and not task.cancelled():
            task.exception()
    return sorted(pending, key=lambda t: t.get_name())


async def bounded(step: Awaitable[Any], *, seconds: float, what: str) -> bool:
    """Run one shutdown step (closing a connection, disposing a pool) for at most `seconds`; True if it ended.

    A step that overruns is cancelled and left behind with a warning, never awaited without a deadline.
    """
    task = asyncio.ensure_future(step)
    try:
        done, _ = await asyncio.wait({task}, timeout=max(seconds, 0.0))
    except asyncio.CancelledError:
        task.cancel()
        raise
    if task in done:
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.warning("shutdown: %s failed: %s", what, exc)
        return True
    stuck = where(task)
    left = await cancel_and_wait([task], RECANCEL_S * 4)
    log.warning("shutdown: %s did not finish within %.1fs; cut%s (%s)", what, seconds,
                "" if not left else ", still running", stuck)
    return False


class Loops:
    """The background loops of one running component: started by name, stopped together within a deadline."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.tasks: list[asyncio.Task[Any]] = []

    def start(self, name: str, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run `coro` as a tracked task; a loop that ends with an error is logged at once."""
        task = asyncio.create_task(coro, name=f"{self.owner}:{name}")
        task.add_done_callback(self._ended)
        self.tasks.append(task)
        return task

    def _ended(self, task: asyncio.Task[Any]) -> None:
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("%s ended with an error: %r", task.get_name(), exc, exc_info=exc)

    @property
    def names(self) -> list[str]:
        """Names of the loops started (running or not)."""
        return [t.get_name() for t in self.tasks]

    async def stop(self, deadline_s: float) -> list[str]:
        """Cancel every loop and wait at most `deadline_s`; returns (and logs) the names of those cut."""
        stuck = {t: where(t) for t in self.tasks if not t.done()}
        left = await cancel_and_wait(self.tasks, deadline_s)
        for task in left:
            log.error("shutdown: %s did not stop within %.1fs; cut (%s)", task.get_name(), deadline_s, stuck[task])
        return [t.get_name() for t in left]


class Deadline:
    """What is left of a shutdown budget, shared by its steps."""

    def __init__(self, seconds: float) -> None:
        self.until = time.monotonic() + seconds

    def left(self, cap: float | None = None) -> float:
        """Seconds left (at most `cap`), never below a short floor so every step gets a chance."""
        remaining = max(self.until - time.monotonic(), 0.2)
        return min(remaining, cap) if cap is not None else remaining

