"""The Kubernetes manifests agree with the code: every component deployed, probed and configured by real names."""
from __future__ import annotations

import pytest

from deploy.components import COMPONENTS, app_factory, service_settings
from gateway.config import GatewaySettings
from shared.settings import Settings
from tests.deploy.render import K8S, docs, render

#: set in the Deployments' `env`, read by Settings.settings_customise_sources rather than by a field
SOURCE_VARIABLES = {"JIAOZHI_SECRETS_DIR"}


def _docs(name: str) -> list[dict]:
    return docs(K8S / name)


def _all_docs() -> list[dict]:
    return render()


def _env_names() -> set[str]:
    """Every JIAOZHI_* variable some component's settings read."""
    classes = {type(service_settings(n)) for n in COMPONENTS if n != "gateway"} | {GatewaySettings, Settings}
    names: set[str] = set()
    for cls in classes:
        for field_name, field in cls.model_fields.items():
            alias = field.validation_alias
            names.add(alias if isinstance(alias, str) else f"JIAOZHI_{field_name.upper()}")
    return names


def test_kustomization_lists_every_manifest_but_the_optional_ones() -> None:
    listed = set(_docs("kustomization.yaml")[0]["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert on_disk - listed == {"migrate-job.yaml", "nats-values.yaml"}
    assert listed <= on_disk


@pytest.mark.parametrize("component", COMPONENTS)
def test_each_component_has_deployment_service_autoscaler_and_budget(component: str) -> None:
    docs = {(d["kind"], d["metadata"]["name"]): d for d in _all_docs()}
    for kind in ("Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"):
        assert (kind, component) in docs, f"{kind} {component} missing"
    container = docs[("Deployment", component)]["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["up", "--target", component]
    app_factory(container["args"][2])  # a component the CLI knows
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert docs[("HorizontalPodAutoscaler", component)]["spec"]["scaleTargetRef"]["name"] == component
    assert {"configMapRef": {"name": "jiaozhi-config"}} in container["envFrom"]


def test_config_map_only_sets_variables_the_code_reads() -> None:
    config = next(d for d in _all_docs() if d["kind"] == "ConfigMap")
    unknown = set(config["data"]) - _env_names()
    assert not unknown, f"variables no settings class reads: {sorted(unknown)}"
    assert config["data"]["JIAOZHI_ENVIRONMENT"] == "production"  # demo secrets are refused


def test_only_the_gateway_is_public() -> None:
    ingress = next(d for d in _all_docs() if d["kind"] == "Ingress")
    backends = {p["backend"]["service"]["name"] for r in ingress["spec"]["rules"] for p in r["http"]["paths"]}
    assert backends == {"gateway"}


@pytest.mark.parametrize("component", COMPONENTS)
def test_containers_set_only_variables_the_code_reads_and_no_secret(component: str) -> None:
    deployment = next(d for d in _all_docs() if d["kind"] == "Deployment" and d["metadata"]["name"] == component)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    names = {e["name"] for e in container.get("env", [])}
    assert names <= _env_names() | SOURCE_VARIABLES
    assert all("value" in e for e in container.get("env", [])), "secrets are mounted files, not variables"
    assert all("secretRef" not in source for source in container["envFrom"])
    assert ("JIAOZHI_NATS_USER" in names) == (component != "gateway"), "the gateway has no bus connection"
