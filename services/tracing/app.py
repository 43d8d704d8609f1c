"""Tracing: source registries, the tracing-model catalogue, task orders from incidents."""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from services.tracing.api import router
from services.tracing.catalogue import Catalogue
from services.tracing.config import TracingSettings
from services.tracing.examples import check_examples
from services.tracing.handlers import subscriptions
from services.tracing.mirror import Mirror, keep_up
from services.tracing.models import OUTBOX, metadata
from shared.runtime import Runtime, ServiceSpec, build_service_app

log = logging.getLogger(__name__)


def create_app(settings: TracingSettings | None = None) -> FastAPI:
    """The tracing service app, built from the given settings (or the environment)."""
    settings = settings or TracingSettings()
    shipped = Catalogue.load(settings.catalogue)
    for model in shipped.models:
        check_examples(model, shipped.engine)  # a catalogue whose examples misbehave does not start

    async def on_start(rt: Runtime) -> None:
        started = time.perf_counter()
        async with rt.sessions() as session:
            mirror = await Mirror.load(session, shipped=shipped)
        rt.state["mirror"] = mirror
        rt.state.setdefault("loaded", asyncio.Event()).set()
        log.info("catalogue v%s (%d models), index of %d accidents loaded in %.2fs (change clock %d)",
                 shipped.version, len(shipped.models), len(mirror.index.accidents), time.perf_counter() - started,
                 mirror.mark)

    def loops(rt: Runtime) -> dict[str, Coroutine[Any, Any, None]]:
        """The loop that keeps this replica up with the others' writes."""
        return {"catch-up": keep_up(rt.state["mirror"], rt.sessions, settings.refresh_s)}

    return build_service_app(settings, ServiceSpec(
        name="tracing", metadata=metadata, outbox=OUTBOX, migrations=Path(__file__).parent / "migrations",
        routers=[router], subscriptions=subscriptions, on_start=on_start, loops=loops,
        description="Traces every accident to its five sources and issues task orders through the model catalogue.",
    ))
