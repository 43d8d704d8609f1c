"""JSON logs carrying the request id and trace ids, Prometheus metrics, and the request-context middleware."""
from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import logging
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from opentelemetry import trace
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from pythonjsonlogger.json import JsonFormatter

from shared.telemetry import traceparent

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


def current_request_id() -> str | None:
    """The id of the request (or event) being handled, if any."""
    return _request_id.get()


def set_request_id(value: str | None) -> contextvars.Token:
    """Bind a request id to the current context."""
    return _request_id.set(value)


def reset_request_id(token: contextvars.Token) -> None:
    """Undo `set_request_id`."""
    _request_id.reset(token)


class _RequestIdFilter(logging.Filter):
    def __init__(self, component: str) -> None:
        super().__init__()
        self.component = component

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _request_id.get()
        record.component = self.component
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.trace_id = format(context.trace_id, "032x")
            record.span_id = format(context.span_id, "016x")
        return True


class _Formatter(JsonFormatter):
    """ISO 8601 times with the offset (UTC), and no terminal colour codes (uvicorn's `color_message`)."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 - logging's name
        return dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds")

    def add_fields(self, log_record: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        super().add_fields(log_record, record, message_dict)
        log_record.pop("color_message", None)


def configure_logging(component: str, level: str = "INFO", *, access_log: bool | None = None) -> None:
    """JSON lines on stderr, one per record: time, level, logger, message, component, request id, and
    `trace_id`/`span_id` when a span is current. `access_log` True/False turns the access lines (one per
    request, `jiaozhi.access`) on or off; None leaves them as they are."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        _Formatter("%(asctime)s %(levelname)s %(name)s %(message)s %(component)s %(request_id)s",
                   rename_fields={"levelname": "level", "asctime": "time"})
    )
    handler.addFilter(_RequestIdFilter(component))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):  # through the root's JSON handler only
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)  # our own access line replaces uvicorn's
    if access_log is not None:
        _access.setLevel(logging.INFO if access_log else logging.WARNING)


class Metrics:
    """A component's Prometheus metrics (own registry, so tests can build many apps).

    With PROMETHEUS_MULTIPROC_DIR set (the gateway with several workers), every process writes its
    values there and /metrics adds up all of them (prometheus_client's multiprocess mode). The gauges
    of the pipeline are sampled when /metrics is scraped (`samplers`), so they are never stale.
    """

    def __init__(self, component: str) -> None:
        self.registry = CollectorRegistry()
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.component = component
        self.samplers: list[Callable[[], Awaitable[None]]] = []
        self.requests = Counter(
            "http_requests", "HTTP requests", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "http_request_duration_seconds", "HTTP request latency", ["method", "route"], registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.events_published = Counter("events_published", "events relayed from the outbox", ["subject"],
                                         registry=self.registry)
        self.events_consumed = Counter("events_consumed", "events handled", ["subject", "outcome"],
                                       registry=self.registry)
        self.dead_letters = Counter("dead_letters", "events parked after failing every delivery (or unreadable)",
                                    ["consumer", "subject"], registry=self.registry)
        self.handle_latency = Histogram(
            "event_handle_duration_seconds", "time to handle one event, its transaction included (per batch "
            "event: the batch's time shared out)", ["subject"], registry=self.registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
        )
        self.outbox_backlog = Gauge("outbox_backlog", "outbox rows not yet published", registry=self.registry,
                                    multiprocess_mode="livemax")
        self.outbox_oldest_age = Gauge("outbox_oldest_unsent_age_seconds",
                                       "age of the oldest outbox row not yet published (0: none)",
                                       registry=self.registry, multiprocess_mode="livemax")
        self.consumer_pending = Gauge("consumer_pending", "events on the stream the durable consumer has not "
                                      "been given yet", ["consumer"], registry=self.registry,
                                      multiprocess_mode="livemax")
        self.consumer_ack_pending = Gauge("consumer_ack_pending", "events given to the consumer, not yet acked",
                                          ["consumer"], registry=self.registry, multiprocess_mode="livemax")
        self.consumer_redelivered = Gauge("consumer_redelivered", "events given more than once and not yet acked",
                                          ["consumer"], registry=self.registry, multiprocess_mode="livemax")

    async def refresh(self, timeout_s: float = 2.0) -> None:
        """Run the samplers (bounded: a slow database or broker leaves the last values, and says so)."""
        for sample in self.samplers:
            try:
                await asyncio.wait_for(sample(), timeout_s)
            except Exception as exc:  # noqa: BLE001 - a scrape must answer even if a source is away
                logging.getLogger(__name__).warning("metrics: sampling failed: %s", exc or type(exc).__name__)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        if self.multiprocess:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class RequestContextMiddleware:
    """Pure ASGI middleware: takes or makes X-Request-ID, echoes it (and `traceparent` when tracing), records
    metrics, and writes one access line per request when the `jiaozhi.access` logger is at INFO (inside the
    request's span, so with its trace id)."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        rid = incoming[:128] if incoming else uuid.uuid4().hex
        token = set_request_id(rid)
        status_holder = {"status": 500}
        started = time.perf_counter()

        async def send_with_id(message: dict) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                headers = list(message.get("headers") or []) + [(b"x-request-id", rid.encode("latin-1"))]
                if (parent := traceparent()) is not None:
                    headers.append((b"traceparent", parent.encode("latin-1")))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            took = time.perf_counter() - started
            self.metrics.requests.labels(scope["method"], path, str(status_holder["status"])).inc()
            self.metrics.latency.labels(scope["method"], path).observe(took)
            if _access.isEnabledFor(logging.INFO):
                _access.info("%s %s %d %.1f ms", scope["method"], scope["path"], status_holder["status"],
                             took * 1000, extra={"method": scope["method"], "path": scope["path"],
                                                 "route": path, "status": status_holder["status"],
                                                 "duration_ms": round(took * 1000, 2)})
            reset_request_id(token)


_access = logging.getLogger("jiaozhi.access")
_access.setLevel(logging.WARNING)  # off unless configure_logging(access_log=True) or the gateway's setting
