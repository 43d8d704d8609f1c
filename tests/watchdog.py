"""Making a hang cheap to diagnose: on a timeout, print every pending asyncio task with its stack.

pytest-timeout prints the threads' stacks; a hang in this project is usually an asyncio task awaiting
something that never comes, with the main thread idle in `selectors.poll`, which thread stacks do not show.
"""
from __future__ import annotations

import asyncio
import io
import signal
import sys
import threading
from typing import Any

import pytest
import pytest_timeout


def dump_tasks(title: str, file: Any = None) -> int:
    """Print every pending task of the running event loop with its stack; returns how many."""
    out = file or sys.stderr
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        print(f"=== {title}: no running event loop ===", file=out)
        return 0
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    print(f"=== {title}: {len(tasks)} pending asyncio task(s) ===", file=out)
    for task in sorted(tasks, key=lambda t: t.get_name()):
        buffer = io.StringIO()
        task.print_stack(limit=12, file=buffer)
        print(f"--- {task.get_name()} ---\n{buffer.getvalue()}", file=out)
    return len(tasks)


@pytest.hookimpl(tryfirst=True)
def pytest_timeout_set_timer(item: pytest.Item, settings: Any) -> bool | None:
    """pytest-timeout's signal method, plus the asyncio task dump before it fails the test."""
    if settings.method != "signal" or threading.current_thread() is not threading.main_thread():
        return None  # pytest-timeout's own implementation

    def handler(signum: int, frame: Any) -> None:
        __tracebackhide__ = True
        dump_tasks(f"{item.nodeid} timed out after {settings.timeout}s")
        pytest_timeout.timeout_sigalrm(item, settings)

    def cancel() -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)

    item.cancel_timeout = cancel  # type: ignore[attr-defined]
    signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, settings.timeout)
    return True
