"""The gateway's traces, access log and metrics across worker processes.

`instrument(app)` runs once the app is assembled. When tracing is on (shared.telemetry), the forwarding
path gets the official ASGI instrumentation's server span (it skips FastAPI, whose own telemetry serves
the services), the gateway's own routes get the same middleware, and the upstream client (made in the
lifespan with `client_trace_configs`) a client span per call that sends `traceparent` upstream.
Off, nothing is wrapped. The request-context middleware sits inside the span, so answers carry
`traceparent` and log lines the trace id.

Several workers (`JIAOZHI_GATEWAY_WORKERS`) each count their own requests; `multiprocess_metrics_dir` gives
them one PROMETHEUS_MULTIPROC_DIR, so /metrics on any worker adds up all of them.
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from shared.observability import RequestContextMiddleware
from shared.telemetry import setup

log = logging.getLogger(__name__)


def instrument(app: Any) -> Any:
    """Trace the app's two paths and switch the access log on if asked for; returns the app."""
    core = app.proxy.core
    settings = core.settings
    core.telemetry = telemetry = setup("gateway", settings.tracing)
    if settings.access_log:
        logging.getLogger("jiaozhi.access").setLevel(logging.INFO)
    if telemetry.on:
        inner: RequestContextMiddleware = app.fast_path
        app.fast_path = telemetry.wrap_asgi(inner)
        app.add_middleware(_Traced, telemetry=telemetry)  # outermost: the request context sees the span
    return app


class _Traced:
    """The ASGI instrumentation as a Starlette middleware class (for `add_middleware`)."""

    def __init__(self, app: Any, telemetry: Any) -> None:
        self.app = telemetry.wrap_asgi(app)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope.get("path") in ("/healthz", "/readyz", "/metrics"):
            await self.app.app(scope, receive, send)  # probes and scrapes make no span
            return
        await self.app(scope, receive, send)


def multiprocess_metrics_dir(workers: int) -> str | None:
    """With several workers, an empty PROMETHEUS_MULTIPROC_DIR for them (the operator's, emptied, or a new
    temporary one), set in the environment the workers inherit; None with one worker."""
    if workers <= 1:
        return None
    chosen = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if chosen:
        shutil.rmtree(chosen, ignore_errors=True)  # counts of a former run must not add up with this one's
        Path(chosen).mkdir(parents=True, exist_ok=True)
    else:
        chosen = tempfile.mkdtemp(prefix="jiaozhi-gateway-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = chosen
    log.info("gateway metrics of %d workers add up in %s", workers, chosen)
    return chosen
