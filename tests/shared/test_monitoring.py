"""deploy/monitoring: the alert rules and the dashboard name only metrics the code exports, and the
falling-behind alert fires on what a stopped consumer really shows on /metrics (evaluated by promtool).
"""
from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path
from types import SimpleNamespace

import promql_parser
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from services.dispatch.gauges import task_order_gauges
from services.tracing.app import create_app as create_tracing
from services.tracing.config import TracingSettings
from shared.events import UnitUpserted
from shared.observability import Metrics
from tests.helpers import IN_CI, eventually, running_service

MONITORING = Path(__file__).resolve().parents[2] / "deploy" / "monitoring"
#: series Prometheus makes itself, not the code
PROMETHEUS_OWN = {"up"}


def exported_names() -> set[str]:
    """Every series name the components can expose (counters as *_total, histograms as their three series)."""
    metrics = Metrics("any")
    task_order_gauges(SimpleNamespace(metrics=metrics, sessions=None))  # type: ignore[arg-type]
    names: set[str] = set()
    for family in metrics.registry.collect():
        if family.type == "counter":
            names.add(family.name + "_total")
        elif family.type == "histogram":
            names.update(family.name + suffix for suffix in ("_bucket", "_sum", "_count"))
        else:
            names.add(family.name)
    return names


def selectors(expr: str) -> set[str]:
    """The metric names an expression reads (walking the parsed PromQL)."""
    found: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            name = node.name or next((m.value for m in node.matchers.matchers if m.name == "__name__"), None)
            assert name, f"a selector without a metric name in {expr!r}"
            found.add(name)
            return
        for attr in ("expr", "lhs", "rhs", "vector_selector", "param"):
            child = getattr(node, attr, None)
            if child is not None and not isinstance(child, str | int | float):
                walk(child)
        for child in getattr(node, "args", None) or []:
            walk(child)

    walk(promql_parser.parse(expr))
    return found


def rules() -> list[dict]:
    return [rule for group in yaml.safe_load((MONITORING / "alerts.yml").read_text())["groups"]
            for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    board = json.loads((MONITORING / "dashboard.json").read_text())
    return [target["expr"] for panel in board["panels"] for target in panel["targets"]]


def test_the_alert_rules_and_the_dashboard_name_only_exported_metrics() -> None:
    exported = exported_names() | PROMETHEUS_OWN
    assert {"consumer_pending", "outbox_backlog", "outbox_oldest_unsent_age_seconds", "consumer_redelivered",
            "event_handle_duration_seconds_bucket", "task_orders_overdue", "task_orders_escalated",
            "http_request_duration_seconds_bucket"} <= exported
    for where, exprs in (("alerts.yml", [r["expr"] for r in rules()]), ("dashboard.json", dashboard_exprs())):
        assert exprs, where
        for expr in exprs:
            unknown = selectors(expr) - exported
            assert not unknown, f"{where}: {expr!r} reads {unknown}, which no component exports"


def test_the_checker_catches_a_metric_nobody_exports() -> None:
    assert selectors('sum(rate(events_dropped_total{job="x"}[5m])) / on(job) up') == {"events_dropped_total", "up"}


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if IN_CI:
            pytest.fail("promtool (Debian package prometheus) is required in CI")
        pytest.skip("promtool not installed (apt-get install prometheus)")
    return found


def test_promtool_accepts_the_rules() -> None:
    result = subprocess.run([promtool(), "check", "rules", str(MONITORING / "alerts.yml")], capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def pending(text: str, consumer: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "consumer_pending" and sample.labels.get("consumer") == consumer:
                return sample.value
    return None


async def test_a_stopped_consumer_shows_a_rising_backlog_and_the_alert_fires(nats_url: str, tmp_path: Path) -> None:
    tool = promtool()
    settings = TracingSettings(database_url=f"sqlite+aiosqlite:///{tmp_path / 't.db'}", nats_url=nats_url,
                               data_dir=tmp_path)
    durable = "tracing-on-dispatch"
    async with running_service(create_tracing, settings, streams=("dispatch",)) as tracing:
        async def scrape() -> float | None:
            return pending((await tracing.client.get("/metrics")).text, durable)

        async def consumer_exists() -> bool:
            return await scrape() is not None

        await eventually(consumer_exists, what="the consumer to exist and be sampled")
        seen = [await scrape()]
        loops = tracing.client._transport.app.state.loops  # type: ignore[attr-defined]
        consumer = next(t for t in loops.tasks if t.get_name() == f"tracing:consumer:{durable}")
        consumer.cancel()
        for i in range(4):
            await tracing.publish(UnitUpserted(unit_id=f"ps-x{i}-{uuid.uuid4().hex[:4]}", kind="station",
                                               name=f"station {i}", parent_id=None))
            seen.append(await scrape())

        async def backlog_grown() -> bool:
            seen.append(await scrape())
            return (seen[-1] or 0) >= 3  # one event may have gone to the stopped consumer's last pull request

        await eventually(backlog_grown, what="the backlog to grow")
    assert seen[0] == 0 and seen == sorted(seen) and seen[-1] >= 3, seen

    # the scraped values one minute apart, the last one held: a consumer that stays stopped
    values = " ".join(str(int(v)) for v in seen) + f" {int(seen[-1])}x15"
    labels = f'consumer="{durable}", job="tracing", instance="t:8002"'
    test = {"rule_files": [str(MONITORING / "alerts.yml")], "evaluation_interval": "1m", "tests": [{
        "interval": "1m",
        "input_series": [{"series": f"consumer_pending{{{labels}}}", "values": values}],
        "alert_rule_test": [
            {"eval_time": "5m", "alertname": "JiaozhiConsumerFallingBehind", "exp_alerts": []},  # drained 5 min ago
            {"eval_time": f"{len(seen) + 11}m", "alertname": "JiaozhiConsumerFallingBehind", "exp_alerts": [{
                "exp_labels": {"severity": "page", "consumer": durable, "job": "tracing", "instance": "t:8002"},
                "exp_annotations": {
                    "summary": f"tracing: consumer {durable} is falling behind ({int(seen[-1])} events waiting)"},
            }]},
        ],
    }]}
    path = tmp_path / "alert-test.yml"
    path.write_text(yaml.safe_dump(test))
    result = subprocess.run([tool, "test", "rules", str(path)], capture_output=True, text=True,  # noqa: ASYNC221
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
