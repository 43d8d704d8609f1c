"""Stream settings come from configuration, and the cluster's values and the services' configuration agree."""
from __future__ import annotations

from pathlib import Path

import yaml

from deploy.components import service_settings
from shared.bus import StreamLimits
from shared.events import stream_name
from shared.settings import Settings
from tests.deploy.render import K8S, docs

VALUES = Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "nats-values.yaml"
SERVICES = ("classification", "tracing", "dispatch", "assessment")
UNITS = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40}


def _bytes(size: str) -> int:
    return int(size[:-2]) * UNITS[size[-2:]] if size[-2:] in UNITS else int(size)


def _cluster_settings(monkeypatch) -> Settings:  # noqa: ANN001 - pytest's monkeypatch
    config = next(d for d in docs(K8S / "config.yaml") if d["kind"] == "ConfigMap")["data"]
    for name, value in config.items():
        monkeypatch.setenv(name, str(value))
    monkeypatch.setenv("JIAOZHI_ENVIRONMENT", "test")  # the secrets production asks for are beside the point here
    return service_settings("dispatch")


def test_the_cluster_streams_have_a_replica_per_nats_node_and_fit_the_jetstream_volume(monkeypatch) -> None:  # noqa: ANN001
    values = yaml.safe_load(VALUES.read_text())["config"]
    nodes = values["cluster"]["replicas"] if values["cluster"]["enabled"] else 1
    volume = _bytes(values["jetstream"]["fileStore"]["pvc"]["size"])
    limits = StreamLimits.of(_cluster_settings(monkeypatch))
    assert nodes == 3
    assert limits.replicas == nodes, "JIAOZHI_STREAM_REPLICAS in config.yaml must equal the NATS cluster's nodes"
    assert limits.max_bytes * len(SERVICES) <= volume, "every stream at its limit must fit the JetStream volume"
    config = limits.config("dispatch")
    assert (config.name, config.num_replicas, config.max_bytes) == (stream_name("dispatch"), 3, limits.max_bytes)
    assert config.max_age == 30 * 86400 and config.duplicate_window == 600
    assert config.duplicate_window < config.max_age


def test_embedded_streams_have_one_replica_and_limits_from_the_environment(monkeypatch) -> None:  # noqa: ANN001
    assert StreamLimits.of(Settings()).replicas == 1
    monkeypatch.setenv("JIAOZHI_STREAM_MAX_AGE_DAYS", "2")
    monkeypatch.setenv("JIAOZHI_STREAM_MAX_BYTES", "5000000")
    monkeypatch.setenv("JIAOZHI_STREAM_DUPLICATE_WINDOW_S", "120")
    config = StreamLimits.of(Settings()).config("tracing")
    assert (config.max_age, config.max_bytes, config.duplicate_window) == (2 * 86400, 5_000_000, 120)
    assert config.as_dict()["num_replicas"] == 1
