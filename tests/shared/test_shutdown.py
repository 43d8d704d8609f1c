"""Shutdown is bounded: a loop that swallows its cancel, a NATS close that never returns, a broker or a database
that is gone, none of them holds a service's shutdown (or a test's teardown) past its deadline.

The teardown hang these reproduce: a lifespan cancelled its tasks once and then awaited them with no deadline
(`asyncio.gather`); a task whose cancel was swallowed (as `asyncio.wait_for` does on Python 3.11 when its inner
future finishes in the same tick) went on awaiting, and the teardown sat in `selectors.poll` for ever.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from nats.aio.client import Client as NATS

from deploy.natsd import free_port, start_nats
from services.assessment.app import create_app as assessment_app
from services.assessment.config import AssessmentSettings
from services.classification.app import create_app as classification_app
from services.classification.config import ClassificationSettings
from services.dispatch.app import create_app as dispatch_app
from services.dispatch.config import DispatchSettings
from services.tracing.app import create_app as tracing_app
from services.tracing.config import TracingSettings
from shared.lifecycle import Loops, bounded
from shared.runtime import ServiceSpec, build_service_app
from tests.helpers import fresh_pg_database, pg_admin

pytestmark = pytest.mark.timeout(120)

SERVICES: dict[str, tuple[Callable[[Any], FastAPI], type]] = {
    "classification": (classification_app, ClassificationSettings),
    "tracing": (tracing_app, TracingSettings),
    "dispatch": (dispatch_app, DispatchSettings),
    "assessment": (assessment_app, AssessmentSettings),
}


class Deaf:
    """Loops that ignore cancels until `release()` (so a test can clean up what it leaves running)."""

    def __init__(self) -> None:
        self.released = False
        self.waiting: set[asyncio.Future[None]] = set()

    async def loop(self, times: int = 10**9) -> None:
        """Ignore the first `times` cancels, each time waiting again on a future nothing completes (no timer)."""
        swallowed = 0
        while True:
            future = asyncio.get_running_loop().create_future()
            self.waiting.add(future)
            try:
                await future
            except asyncio.CancelledError:
                if swallowed >= times or self.released:
                    raise
                swallowed += 1
            finally:
                self.waiting.discard(future)

    def release(self) -> None:
        """The next cancel lands."""
        self.released = True


@pytest.fixture
async def deaf() -> Any:
    d = Deaf()
    yield d
    d.release()
    for task in [t for t in asyncio.all_tasks() if "Deaf.loop" in repr(t.get_coro())]:
        task.cancel()
        await asyncio.wait({task}, timeout=1)


def swallow_cancels(times: int) -> Any:
    """A loop that swallows its first `times` cancels (a released Deaf, so nothing is left behind)."""
    return Deaf().loop(times)


async def within(step: Any, seconds: float) -> tuple[Any, float]:
    """Run a step; fail if it is still running after `seconds` (without awaiting it further); (result, duration)."""
    started = time.monotonic()
    task = asyncio.ensure_future(step)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if task not in done:
        pytest.fail(f"still running after {seconds}s")
    return task.result(), time.monotonic() - started


async def test_a_loop_that_swallows_its_first_cancel_still_stops() -> None:
    loops = Loops("t")
    task = loops.start("stubborn", swallow_cancels(1))
    await asyncio.sleep(0)
    _, took = await within(loops.stop(deadline_s=2), 3)
    assert task.cancelled()
    assert took < 0.5


async def test_a_loop_that_never_stops_is_cut_at_the_deadline_and_named(caplog: pytest.LogCaptureFixture,
                                                                        deaf: Deaf) -> None:
    loops = Loops("t")
    loops.start("deaf", deaf.loop())
    loops.start("polite", asyncio.sleep(3600))
    await asyncio.sleep(0)
    cut, _ = await within(loops.stop(deadline_s=0.5), 2)
    assert cut == ["t:deaf"]
    assert "t:deaf did not stop within 0.5s" in caplog.text


async def test_a_step_that_ignores_cancellation_is_left_behind_after_its_time(deaf: Deaf) -> None:
    ended, took = await within(bounded(deaf.loop(), seconds=0.3, what="a close"), 2)
    assert not ended and took < 1.5


async def test_the_old_way_hangs_where_the_bounded_one_does_not() -> None:
    """Reproduction: cancel once and gather (what the service lifespans did) never returns for a task that
    swallowed its cancel; `Loops.stop` on the same kind of task returns."""
    task = asyncio.create_task(swallow_cancels(1))
    await asyncio.sleep(0)
    task.cancel()
    old_way = asyncio.ensure_future(asyncio.gather(task, return_exceptions=True))
    done, _ = await asyncio.wait({old_way}, timeout=1)
    assert not done, "the old shutdown was expected to hang on a swallowed cancel"
    task.cancel()  # clean up: the second cancel lands
    await asyncio.wait({old_way}, timeout=1)

    loops = Loops("t")
    loops.start("stubborn", swallow_cancels(1))
    await asyncio.sleep(0)
    assert (await within(loops.stop(deadline_s=2), 3))[1] < 1


def _spec_with(loop_factory: Callable[[], Any]) -> ServiceSpec:
    """Classification's spec with one more loop."""
    from services.classification.models import OUTBOX, metadata

    here = Path(__file__).resolve().parents[2] / "services" / "classification" / "migrations"
    return ServiceSpec(name="classification", metadata=metadata, outbox=OUTBOX, migrations=here, routers=[],
                       loops=lambda rt: {"stubborn": loop_factory()})


async def test_a_service_whose_loop_swallows_cancels_and_whose_nats_close_hangs_stops_within_its_budget(
        nats_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, deaf: Deaf) -> None:
    settings = ClassificationSettings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'c.db'}", nats_url=nats_url,
                                      data_dir=tmp_path, shutdown_s=2.0)
    app = build_service_app(settings, _spec_with(deaf.loop))
    lifespan = app.router.lifespan_context(app)
    await lifespan.__aenter__()

    async def close_for_ever(self: NATS) -> None:
        await deaf.loop()

    monkeypatch.setattr(NATS, "close", close_for_ever)
    _, took = await within(lifespan.__aexit__(None, None, None), 5)
    assert took < 2.5


@pytest.mark.postgres
@pytest.mark.parametrize("gone", ["nats", "database"])
@pytest.mark.parametrize("name", list(SERVICES))
async def test_each_service_stops_within_5s_when_nats_or_the_database_is_gone(name: str, gone: str,
                                                                              tmp_path: Path) -> None:
    """Every service app with all its loops running; then the broker is killed or the database dropped."""
    port = free_port()
    broker = start_nats(tmp_path / "nats", port, log_file=tmp_path / "nats.log")
    create_app, settings_type = SERVICES[name]
    try:
        async with fresh_pg_database() as url:
            settings = settings_type(database_url=url, nats_url=f"nats://127.0.0.1:{port}", data_dir=tmp_path,
                                     outbox_poll_s=0.1)
            app = create_app(settings)
            lifespan = app.router.lifespan_context(app)
            await lifespan.__aenter__()
            assert len([n for n in app.state.loops.names if "consumer" in n or "relay" in n]) >= 1
            await asyncio.sleep(0.3)  # loops under way
            if gone == "nats":
                broker.kill()
                broker.wait(timeout=10)
            else:
                await pg_admin(f'DROP DATABASE "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
            await asyncio.sleep(0.3)  # the loops meet the loss
            _, took = await within(lifespan.__aexit__(None, None, None), 8)
            assert took < 5.0, f"{name} took {took:.2f}s to stop without {gone}"
    finally:
        if broker.poll() is None:
            broker.kill()
            broker.wait(timeout=10)
