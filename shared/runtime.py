"""One bootstrap for every service: storage, migrations, bus, relay, consumers, health and metrics."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.auth import Identity, bearer, verify_internal_token
from shared.bus import Bus, OutboxRelay, StreamLimits, Subscription
from shared.consumer import Consumer
from shared.db import ensure_schema, make_engine, make_sessions, ping
from shared.deadletter_api import router as dead_letter_router
from shared.errors import install_problem_handlers
from shared.inputs import RefuseNulInUrl
from shared.lifecycle import Deadline, Loops, bounded
from shared.migrations import upgrade
from shared.observability import Metrics, RequestContextMiddleware, configure_logging
from shared.outbox import Outbox
from shared.retention import prune_loop
from shared.samplers import consumer_sampler, outbox_sampler
from shared.settings import ServiceSettings
from shared.telemetry import Telemetry, setup

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """The long-lived resources of a running service, made in its lifespan."""

    settings: ServiceSettings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    bus: Bus
    outbox: Outbox
    relay: OutboxRelay
    metrics: Metrics
    state: dict[str, Any] = field(default_factory=dict)
    telemetry: Telemetry = field(default_factory=lambda: Telemetry("service"))

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction; staged events are announced to the relay after commit."""
        async with self.sessions() as session:
            async with session.begin():
                yield session
            if session.info.get("staged_events"):
                self.relay.notify()


@dataclass
class ServiceSpec:
    """What a service declares; `build_service_app` does the rest the same way for all.

    `loops` are the service's own background loops (name → coroutine factory), started after `on_start`;
    they run beside the runtime's own (stream set-up, outbox relay, one per consumer). Every one is
    tracked, cancelled on shutdown and awaited with a deadline; `on_stop` runs after they ended.
    `gauges` makes the service's own sampler, run when /metrics is scraped (as the outbox's and consumers' are).
    """

    name: str
    metadata: MetaData
    outbox: Outbox
    migrations: Path
    routers: list[APIRouter]
    subscriptions: Callable[[Runtime], list[Subscription]] = lambda rt: []
    on_start: Callable[[Runtime], Awaitable[None]] | None = None
    loops: Callable[[Runtime], dict[str, Coroutine[Any, Any, None]]] = lambda rt: {}
    on_stop: Callable[[Runtime], Awaitable[None]] | None = None
    gauges: Callable[[Runtime], Callable[[], Awaitable[None]]] | None = None
    description: str = ""


def build_service_app(settings: ServiceSettings, spec: ServiceSpec) -> FastAPI:
    """A FastAPI app for the service; nothing is built until the lifespan starts."""
    metrics = Metrics(spec.name)
    telemetry = setup(spec.name, settings.tracing)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(spec.name, settings.log_level, access_log=settings.access_log)
        engine = make_engine(settings.database(), schema=spec.name)
        telemetry.instrument_engine(engine)
        bus = Bus(settings.nats_url, name=f"jiaozhi-{spec.name}", options=settings.nats_options(),
                  streams=StreamLimits.of(settings))
        loops = Loops(spec.name)
        app.state.loops = loops
        try:
            await ensure_schema(engine, spec.name)
            await upgrade(engine, spec.migrations, schema=spec.name)
            sessions = make_sessions(engine)
            await bus.connect(wait=5)
            relay = OutboxRelay(bus, sessions, spec.outbox, metrics=metrics, poll_s=settings.outbox_poll_s,
                                telemetry=telemetry)
            rt = Runtime(settings, engine, sessions, bus, spec.outbox, relay, metrics, telemetry=telemetry)
            app.state.rt = rt
            loops.start("stream", bus.ensure_stream(spec.name, own=True))
            loops.start("outbox-relay", relay.run())
            loops.start("retention", prune_loop(rt))  # retention (issue 18)
            subs = spec.subscriptions(rt)
            consumers = rt.state["consumers"] = {}  # durable name → Consumer (dead-letter replays run them)
            for sub in subs:
                consumer = consumers[sub.durable] = Consumer(
                    bus, sessions, spec.outbox, sub, relay=relay, metrics=metrics, batch=settings.consumer_batch,
                    telemetry=telemetry, max_deliver=settings.consumer_max_deliver,
                    backoff_s=settings.consumer_backoff_s)
                loops.start(f"consumer:{sub.durable}", consumer.run())
            metrics.samplers[:] = [outbox_sampler(metrics, sessions, spec.outbox), consumer_sampler(metrics, bus, subs)]
            if spec.gauges is not None:
                metrics.samplers.append(spec.gauges(rt))
            if spec.on_start is not None:
                await spec.on_start(rt)
            for name, coro in spec.loops(rt).items():
                loops.start(name, coro)
            log.info("%s started", spec.name)
            yield
        finally:
            await shut_down(spec, app, engine, bus, loops, settings.shutdown_s)
            telemetry.shutdown()

    app = FastAPI(title=f"jiaozhi {spec.name}", description=spec.description, lifespan=lifespan,
                  docs_url="/internal/docs", openapi_url="/internal/openapi.json",
                  telemetry=telemetry.fastapi_config())  # type: ignore[arg-type]
    install_problem_handlers(app)
    app.add_middleware(RequestContextMiddleware, metrics=metrics)
    app.add_middleware(RefuseNulInUrl)
    app.include_router(health_router(metrics))
    app.include_router(dead_letter_router)
    for router in spec.routers:
        app.include_router(router)
    return app


async def shut_down(spec: ServiceSpec, app: FastAPI, engine: AsyncEngine, bus: Bus, loops: Loops,
                    budget_s: float) -> None:
    """Stop loops, run `on_stop`, close NATS and the pool, all within `budget_s`; log what had to be cut."""
    started = time.monotonic()
    deadline = Deadline(budget_s)
    cut = await loops.stop(deadline.left(budget_s * 0.5))
    rt: Runtime | None = getattr(app.state, "rt", None)
    if spec.on_stop is not None and rt is not None:
        if not await bounded(spec.on_stop(rt), seconds=deadline.left(budget_s * 0.2), what=f"{spec.name} on_stop"):
            cut.append("on_stop")
    if not await bus.close(within_s=deadline.left(budget_s * 0.2)):
        cut.append("nats-close")
    if not await bounded(engine.dispose(), seconds=deadline.left(), what="disposing the database pool"):
        cut.append("db-dispose")
    took = time.monotonic() - started
    if cut:
        log.warning("%s stopped in %.2fs; cut: %s", spec.name, took, ", ".join(cut))
    else:
        log.info("%s stopped in %.2fs", spec.name, took)


def health_router(metrics: Metrics) -> APIRouter:
    """/healthz (alive), /readyz (the database: without NATS a service still serves reads and takes writes into
    its outbox, so NATS is reported but does not make it unready), /metrics (Prometheus)."""
    router = APIRouter(include_in_schema=False)

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz(request: Request) -> JSONResponse:
        rt: Runtime = request.app.state.rt
        checks = {"database": "ok", "nats": "ok" if rt.bus.is_ready else "unreachable"}
        try:
            await asyncio.wait_for(ping(rt.engine), 2)
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            checks["database"] = f"unreachable: {type(exc).__name__}"
        ready = checks["database"] == "ok"
        return JSONResponse({"status": "ready" if ready else "not ready", "checks": checks},
                            status_code=200 if ready else 503)

    @router.get("/metrics")
    async def metrics_endpoint() -> Response:
        await metrics.refresh()
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    return router


def runtime(request: Request) -> Runtime:
    """The running service's resources."""
    return request.app.state.rt


async def caller(request: Request, authorization: Annotated[str | None, Header()] = None) -> Identity:
    """The identity in the internal token the gateway minted for this caller; services trust nothing else
    (a public access token sent straight to a service is refused: wrong audience and type)."""
    return verify_internal_token(request.app.state.rt.settings, bearer(authorization))


RuntimeDep = Annotated[Runtime, Depends(runtime)]
CallerDep = Annotated[Identity, Depends(caller)]
