"""OpenTelemetry traces: one per incident across HTTP, the database and NATS; off unless asked for.

On when `JIAOZHI_TRACING=true` (spans made and carried, trace ids in the logs, nothing exported unless an
exporter is set) or when the standard variables name an exporter: `OTEL_TRACES_EXPORTER=otlp|console`, or
`OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (OTLP over HTTP; the exporter reads the
other `OTEL_EXPORTER_OTLP_*` variables itself). `OTEL_SDK_DISABLED=true` turns it off whatever else says.
Off, nothing is wrapped: no span, no instrumentation, no header.

Each component has its own tracer provider (its `service.name` is `jiaozhi-<component>` unless
`OTEL_SERVICE_NAME` says otherwise), so several components in one process (tests) keep apart.
NATS has no official instrumentation: the W3C `traceparent` is written into the outbox row's headers when
an event is staged (inside the request's or the handled message's span), the relay's publish span is its
child and travels in the message headers, and the consumer's span per message is a child of that.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

#: span processors every provider made here also gets (tests add an in-memory exporter here)
EXTRA_PROCESSORS: list[Any] = []
#: paths that make no span (probes and scrapes)
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def exporter_wanted() -> str | None:
    """`otlp` or `console` if the standard variables ask for an exporter, else None."""
    name = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if name in ("otlp", "console"):
        return name
    if name == "none":
        return None
    if os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return "otlp"
    return None


def tracing_wanted(flag: bool) -> bool:
    """Whether a component traces: its setting, or an exporter asked for, unless the SDK is disabled."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return flag or exporter_wanted() is not None or bool(EXTRA_PROCESSORS)


@dataclass
class Telemetry:
    """A component's tracer (a no-op one when off) and, when on, its provider."""

    component: str
    provider: Any = None
    owned: list[Any] = field(default_factory=list)

    @property
    def on(self) -> bool:
        return self.provider is not None

    @property
    def tracer(self) -> trace.Tracer:
        return self.provider.get_tracer("jiaozhi") if self.provider is not None else trace.NoOpTracer()

    def fastapi_config(self) -> dict[str, Any]:
        """FastAPI's own telemetry (its server span per request), bound to this provider; all off when off."""
        if not self.on:
            return {"tracing": False, "metrics": False, "logs": False, "auto_configure": False}
        return {"tracer_provider": self.provider, "tracing": True, "metrics": False, "logs": False,
                "operation_spans": False, "auto_configure": False,
                "exclude": lambda scope: scope.get("path") in QUIET_PATHS}

    def instrument_engine(self, engine: Any) -> None:
        """A span per database statement (the official SQLAlchemy instrumentation, on this engine only)."""
        if not self.on:
            return
        from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
        from opentelemetry.metrics import NoOpMeter

        sync_engine = getattr(engine, "sync_engine", engine)
        EngineTracer(self.provider.get_tracer("opentelemetry.instrumentation.sqlalchemy"), sync_engine,
                     NoOpMeter("jiaozhi").create_up_down_counter("db.client.connections.usage"))

    def client_trace_configs(self) -> list[Any]:
        """aiohttp trace configs: a client span per upstream call, `traceparent` sent along."""
        if not self.on:
            return []
        from opentelemetry.instrumentation.aiohttp_client import create_trace_config

        return [create_trace_config(tracer_provider=self.provider)]

    def wrap_asgi(self, app: Any) -> Any:
        """A server span around a plain ASGI app (the gateway's forwarding path, which skips FastAPI)."""
        if not self.on:
            return app
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

        return OpenTelemetryMiddleware(app, tracer_provider=self.provider, exclude_spans=["receive", "send"],
                                       default_span_details=_span_details)

    def shutdown(self) -> None:
        """Flush the spans and stop the exporters made here (not the shared EXTRA_PROCESSORS)."""
        if self.provider is not None:
            self.provider.force_flush(timeout_millis=2000)
            for processor in self.owned:
                processor.shutdown()


def _span_details(scope: dict) -> tuple[str, dict[str, Any]]:
    route = getattr(scope.get("route"), "path", None) or scope.get("path", "")
    return f"{scope.get('method', 'HTTP')} {route}", {}


def setup(component: str, enabled: bool) -> Telemetry:
    """The component's telemetry: a provider with the wanted exporter when tracing is on, else a no-op."""
    if not tracing_wanted(enabled):
        return Telemetry(component)
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    attributes = {"jiaozhi.component": component}
    if not os.environ.get("OTEL_SERVICE_NAME"):
        attributes[SERVICE_NAME] = f"jiaozhi-{component}"
    provider = TracerProvider(resource=Resource.create(attributes))
    owned = []
    exporter = exporter_wanted()
    if exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        owned.append(BatchSpanProcessor(OTLPSpanExporter()))
    elif exporter == "console":
        owned.append(BatchSpanProcessor(ConsoleSpanExporter()))
    for processor in [*owned, *EXTRA_PROCESSORS]:
        provider.add_span_processor(processor)
    return Telemetry(component, provider, owned)


# --- NATS: no official instrumentation, so inject and extract with opentelemetry.propagate --------------

def inject_current(headers: dict[str, str]) -> dict[str, str]:
    """Add the current trace context (`traceparent`, `tracestate`) to message headers."""
    propagate.inject(headers)
    return headers


def traceparent() -> str | None:
    """The current span's W3C traceparent, if a span is recording or carried."""
    if not trace.get_current_span().get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent")


@contextlib.contextmanager
def message_span(tracer: trace.Tracer, name: str, headers: Mapping[str, str] | None, kind: SpanKind,
                 **attributes: Any) -> Iterator[trace.Span]:
    """A span for one message whose parent is the context carried in its headers; current inside."""
    parent = propagate.extract(dict(headers or {}))
    with tracer.start_as_current_span(name, context=parent, kind=kind, attributes=attributes) as span:
        yield span


def nats_span(telemetry: Telemetry, action: str, subject: str, message_id: str, headers: Mapping[str, str] | None,
              **attributes: Any) -> contextlib.AbstractContextManager[Any]:
    """A producer (`publish`) or consumer (`process`) span for one NATS message, or nothing when tracing is off."""
    if not telemetry.on:
        return contextlib.nullcontext()
    kind = SpanKind.PRODUCER if action == "publish" else SpanKind.CONSUMER
    return message_span(telemetry.tracer, f"{subject} {action}", headers, kind, **{
        "messaging.system": "nats", "messaging.destination.name": subject, "messaging.message.id": message_id,
        "messaging.operation.type": action, **attributes})


def mark_failed(span: trace.Span, exc: BaseException) -> None:
    """Record an exception on a span and set its status to error."""
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
