"""Assessment: records, indicators, scores, rankings, the daily board and reports."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from services.assessment import jobs, service
from services.assessment.api import router
from services.assessment.config import AssessmentSettings
from services.assessment.handlers import subscriptions
from services.assessment.models import OUTBOX, metadata
from shared.runtime import Runtime, ServiceSpec, build_service_app

log = logging.getLogger(__name__)


async def announce_loop(rt: Runtime, every_s: float) -> None:
    """Debounced online scoring: every few seconds re-score the months whose records changed, announce changes."""
    while True:
        await asyncio.sleep(every_s)
        try:
            async with service.announcing(rt) as session:
                staged = await service.announce_dirty(session, outbox=rt.outbox)
            if staged:
                log.info("announced %d changed scores", staged)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - keep scoring on the next tick (database away, a race)
            log.exception("re-scoring changed months failed; will retry")


async def stop_report_jobs(rt: Runtime) -> None:
    """On shutdown: cancel this replica's report builds and mark their jobs failed (`interrupted`)."""
    running: dict[str, asyncio.Task[None]] = dict(rt.state.get("report_jobs", {}))
    for task in running.values():
        task.cancel()
    await asyncio.gather(*running.values(), return_exceptions=True)
    if not running:
        return
    try:
        async with rt.transaction() as session:
            for job_id in running:
                await jobs.finish(session, job_id, body=None, error=jobs.INTERRUPTED)
    except Exception:  # noqa: BLE001 - the timeout rule marks them failed later anyway
        log.exception("could not mark %d interrupted report jobs", len(running))


def create_app(settings: AssessmentSettings | None = None) -> FastAPI:
    """The assessment service app, built from the given settings (or the environment)."""
    settings = settings or AssessmentSettings()
    def loops(rt: Runtime) -> dict[str, Coroutine[Any, Any, None]]:
        """Debounced online scoring (off when the debounce is 0)."""
        if settings.score_debounce_s <= 0:
            return {}
        return {"announce-scores": announce_loop(rt, settings.score_debounce_s)}

    return build_service_app(settings, ServiceSpec(
        name="assessment", metadata=metadata, outbox=OUTBOX, migrations=Path(__file__).parent / "migrations",
        routers=[router], subscriptions=subscriptions, loops=loops, on_stop=stop_report_jobs,
        description="Records activities; scores, ranks and colours stations; the daily board and reports.",
    ))
