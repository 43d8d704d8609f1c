"""One incident posted through the gateway is one trace: gateway → dispatch → (NATS) tracing → (NATS) dispatch, and
assessment, every hop linked through the W3C context carried in the outbox rows and the NATS headers.

Dispatch runs behind a real HTTP server (the gateway forwards over HTTP), tracing and assessment in-process on
the same nats-server; every component's spans go to one in-memory exporter. SQLite only: the propagation is the
same on PostgreSQL (the outbox row's headers are a text column on both).
"""
from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from deploy.natsd import free_port
from gateway.app import create_app as create_gateway
from gateway.config import GatewaySettings
from services.assessment.app import create_app as create_assessment
from services.assessment.config import AssessmentSettings
from services.tracing.app import create_app as create_tracing
from services.tracing.config import TracingSettings
from shared import telemetry
from shared.events import TaskChanged, TaskOrderGeneratedV2
from tests.e2e.test_dispatch_loop import login
from tests.helpers import eventually, serving
from tests.services.dispatch.support import DEMO, IN_YIQIAO, served, set_modes, settings_for


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    """Every provider made while the test runs sends its spans here."""
    memory = InMemorySpanExporter()
    processor = SimpleSpanProcessor(memory)
    telemetry.EXTRA_PROCESSORS.append(processor)
    try:
        yield memory
    finally:
        telemetry.EXTRA_PROCESSORS.remove(processor)


def component(span) -> str:  # noqa: ANN001 - a ReadableSpan
    return span.resource.attributes["jiaozhi.component"]


async def test_one_incident_is_one_trace_across_gateway_dispatch_tracing_and_assessment(
        exporter: InMemorySpanExporter, nats_url: str, tmp_path: Path) -> None:
    database = f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
    common = {"database_url": database, "nats_url": nats_url, "data_dir": tmp_path, "outbox_poll_s": 0.1,
              "tracing": True}
    tracing_app = create_tracing(TracingSettings(**common))
    assessment_app = create_assessment(AssessmentSettings(**common))
    async with served(settings_for(**common)) as (dispatch_url, dispatch_app), \
            serving(tracing_app) as _tracing, serving(assessment_app) as _assessment:
        dead = f"http://127.0.0.1:{free_port()}"
        gateway = create_gateway(GatewaySettings(
            environment="test", database_url=f"sqlite+aiosqlite:///{tempfile.mkdtemp(prefix='jz-gw-')}/gw.db",
            nats_url=nats_url, dispatch_url=dispatch_url, classification_url=dead, tracing_url=dead,
            assessment_url=dead, log_level="WARNING", tracing=True))
        async with serving(gateway) as gw:
            admin = await login(gw, "admin")
            assert (await gw.post("/api/v1/units", json=DEMO["units"], headers=admin)).status_code == 200
            await set_modes(dispatch_app.state.rt, {"ps-yiqiao": "deep"})
            platform = await login(gw, "platform")
            exporter.clear()
            reported = await gw.post("/api/v1/incidents", headers=platform, json={
                "external_id": "trace-1", "occurred_at": (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat(),
                "location": IN_YIQIAO, "parties": [{"role": "driver", "person": {"drunk": True}}]})
            assert reported.status_code == 201, reported.text
            trace_id = int(reported.headers["traceparent"].split("-")[1], 16)

            def in_trace() -> list:
                return [s for s in exporter.get_finished_spans() if s.context.trace_id == trace_id]

            def consumed(who: str, subject: str) -> bool:
                return any(component(s) == who and s.kind == SpanKind.CONSUMER and s.name == f"{subject} process"
                           for s in in_trace())

            async def whole_loop() -> bool:
                return consumed("tracing", "dispatch.incident.reported.v1") and \
                    consumed("dispatch", TaskOrderGeneratedV2.subject) and consumed("assessment", TaskChanged.subject)

            await eventually(whole_loop, what="the incident's trace to reach tracing, dispatch and assessment",
                             timeout=30)

    spans = in_trace()
    by_id = {s.context.span_id: s for s in spans}
    assert {component(s) for s in spans} >= {"gateway", "dispatch", "tracing", "assessment"}
    # one root: the gateway's server span; every other span's parent is in the same trace
    roots = [s for s in spans if s.parent is None]
    assert [(component(r), r.kind) for r in roots] == [("gateway", SpanKind.SERVER)]
    assert all(s.parent.span_id in by_id for s in spans if s.parent is not None)

    def chain(span) -> list[str]:  # noqa: ANN001 - the components from the root down to this span
        path = []
        while span is not None:
            path.append(f"{component(span)}:{span.kind.name}")
            span = by_id.get(span.parent.span_id) if span.parent is not None else None
        return path[::-1]

    order_handled = next(s for s in spans if component(s) == "dispatch" and s.name == f"{TaskOrderGeneratedV2.subject}"
                         " process")
    hops = [step for step in chain(order_handled) if step.split(":")[1] in ("SERVER", "PRODUCER", "CONSUMER")]
    assert hops == ["gateway:SERVER", "dispatch:SERVER", "dispatch:PRODUCER", "tracing:CONSUMER",
                    "tracing:PRODUCER", "dispatch:CONSUMER"]
    assert any(s.kind == SpanKind.CLIENT and component(s) == "gateway" for s in spans), "the upstream call"
    assert any(component(s) == "dispatch" and s.attributes.get("db.system") or
               component(s) == "dispatch" and s.attributes.get("db.system.name") for s in spans), "database spans"
