"""The rendered manifests are valid Kubernetes (the JSON schemas kubernetes-validate ships) and pass checkov,
every pod meets Pod Security "restricted", the Ingress has TLS and NATS takes clients only from the services."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from kubernetes_validate import utils as k8s_schemas

from deploy.components import COMPONENTS, SERVICES
from tests.deploy.render import ROOT, pod_specs, render, write

KUBERNETES = "1.33"  # the oldest release we deploy to whose schemas kubernetes-validate ships
CHECKOV = Path(os.environ.get("JIAOZHI_CHECKOV", ROOT / ".venv" / "checkov" / "bin" / "checkov"))
#: checks skipped, each with its reason; every other check must pass
SKIPS = {
    # The manifests name the image by tag because no image is built in this repository; a release pins the
    # digest it pushed with `kustomize edit set image jiaozhi=REGISTRY/jiaozhi@sha256:…` (README.md).
    "CKV_K8S_43": "image pinned by digest at release time",
}


@pytest.fixture(scope="module")
def manifests() -> list[dict[str, Any]]:
    return render(("migrate-job.yaml",))  # the optional Job is held to the same rules


def test_manifests_match_the_kubernetes_schemas(manifests: list[dict[str, Any]]) -> None:
    assert k8s_schemas.major_minor(KUBERNETES) in {
        k8s_schemas.major_minor(v) for v in k8s_schemas.all_versions()}
    for doc in manifests:  # strict: an unknown or misspelt field is an error too
        k8s_schemas.validate(doc, KUBERNETES, strict=True)


def test_checkov_finds_nothing_but_the_justified_skips(manifests: list[dict[str, Any]], tmp_path: Path) -> None:
    if not CHECKOV.exists():
        pytest.fail(f"checkov is not installed at {CHECKOV}: run `make checkov` (`make test` does)")
    write(tmp_path / "rendered.yaml", manifests)
    run = subprocess.run(
        [str(CHECKOV), "--directory", str(tmp_path), "--framework", "kubernetes", "--skip-download",
         "--output", "json", "--skip-check", ",".join(SKIPS)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )
    report = json.loads(run.stdout)
    results = report["results"]
    failed = [(r["check_id"], r["resource"]) for r in results["failed_checks"]]
    assert failed == [], f"checkov: {failed}"
    assert report["summary"]["passed"] > 400, "checkov checked next to nothing"
    checked = {r["resource"] for r in results["passed_checks"]}
    workloads = {f"{d['kind']}.jiaozhi.{d['metadata']['name']}" for d in manifests if pod_specs(d)}
    assert workloads <= checked, "every workload was checked"


def test_the_namespace_enforces_pod_security_restricted(manifests: list[dict[str, Any]]) -> None:
    namespace = next(d for d in manifests if d["kind"] == "Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def _restricted_violations(pod: dict[str, Any]) -> list[str]:
    """The Pod Security Standard "restricted" (and baseline) rules as they apply to these pods."""
    problems = []
    pod_sc = pod.get("securityContext", {})
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            problems.append(key)
    for volume in pod.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= {"emptyDir", "secret", "configMap", "projected", "persistentVolumeClaim",
                         "downwardAPI", "ephemeral", "csi"}:
            problems.append(f"volume {volume['name']}: {kinds}")
    for container in pod.get("initContainers", []) + pod["containers"]:
        sc = container.get("securityContext", {})
        name = container["name"]
        if sc.get("privileged"):
            problems.append(f"{name}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation must be false")
        if not (sc.get("runAsNonRoot") or pod_sc.get("runAsNonRoot")):
            problems.append(f"{name}: runAsNonRoot")
        if sc.get("runAsUser", pod_sc.get("runAsUser")) == 0:
            problems.append(f"{name}: runs as root")
        seccomp = sc.get("seccompProfile", pod_sc.get("seccompProfile", {})).get("type")
        if seccomp not in {"RuntimeDefault", "Localhost"}:
            problems.append(f"{name}: seccompProfile")
        capabilities = sc.get("capabilities", {})
        if capabilities.get("drop") != ["ALL"] or set(capabilities.get("add", [])) - {"NET_BIND_SERVICE"}:
            problems.append(f"{name}: capabilities")
        if container.get("ports") and any(p.get("hostPort") for p in container["ports"]):
            problems.append(f"{name}: hostPort")
        # beyond the standard: what this project requires of every container
        if not sc.get("readOnlyRootFilesystem"):
            problems.append(f"{name}: readOnlyRootFilesystem")
        if not {"cpu", "memory"} <= set(container.get("resources", {}).get("limits", {})):
            problems.append(f"{name}: limits")
        if not {"cpu", "memory"} <= set(container.get("resources", {}).get("requests", {})):
            problems.append(f"{name}: requests")
    if pod.get("automountServiceAccountToken") is not False:
        problems.append("service-account token mounted")
    return problems


def test_every_pod_meets_pod_security_restricted(manifests: list[dict[str, Any]]) -> None:
    workloads = [d for d in manifests if pod_specs(d)]
    assert {d["metadata"]["name"] for d in workloads} == {*COMPONENTS, "jiaozhi-migrate"}
    for doc in workloads:
        for pod in pod_specs(doc):
            assert _restricted_violations(pod) == [], doc["metadata"]["name"]
            mounts = {m["mountPath"] for m in pod["containers"][0]["volumeMounts"] if not m.get("readOnly")}
            assert mounts == {"/tmp"}, "the only writable path is an emptyDir on /tmp"


def test_the_restricted_check_can_fail() -> None:
    pod = {"containers": [{"name": "c", "securityContext": {"allowPrivilegeEscalation": False}}]}
    assert len(_restricted_violations(pod)) >= 5


def test_the_ingress_serves_tls_from_a_secret(manifests: list[dict[str, Any]]) -> None:
    ingress = next(d for d in manifests if d["kind"] == "Ingress")
    hosts = {r["host"] for r in ingress["spec"]["rules"]}
    tls_hosts = {h for entry in ingress["spec"]["tls"] for h in entry["hosts"]}
    assert hosts <= tls_hosts
    assert all(entry["secretName"] for entry in ingress["spec"]["tls"])


def _policies(manifests: list[dict[str, Any]], selected: dict[str, str]) -> list[dict[str, Any]]:
    """The NetworkPolicies that select a pod with these labels."""
    chosen = []
    for doc in (d for d in manifests if d["kind"] == "NetworkPolicy"):
        selector = doc["spec"]["podSelector"]
        if all(selected.get(k) == v for k, v in selector.get("matchLabels", {}).items()) and all(
                selected.get(e["key"]) in e["values"] for e in selector.get("matchExpressions", [])):
            chosen.append(doc)
    return chosen


def _peer_names(rule: dict[str, Any]) -> set[str]:
    names: set[str] = set()
    for peer in rule.get("from", rule.get("to", [])):
        selector = peer.get("podSelector", {})
        names |= {selector.get("matchLabels", {}).get("app.kubernetes.io/name")} - {None}
        for expression in selector.get("matchExpressions", []):
            names |= set(expression["values"])
    return names


def test_nats_takes_clients_only_from_the_services(manifests: list[dict[str, Any]]) -> None:
    policies = _policies(manifests, {"app.kubernetes.io/name": "nats"})
    assert policies, "NATS has an ingress policy"
    client_rules = [r for p in policies for r in p["spec"].get("ingress", [])
                    if any(port["port"] == 4222 for port in r.get("ports", []))]
    assert client_rules and all(r.get("from") for r in client_rules), "no rule open to every pod"
    assert set().union(*(_peer_names(r) for r in client_rules)) == {*SERVICES, "nats"}


def test_every_jiaozhi_pod_is_denied_by_default_and_reaches_nats_only_as_a_service(
        manifests: list[dict[str, Any]]) -> None:
    for component in COMPONENTS:
        labels = {"app.kubernetes.io/name": component, "app.kubernetes.io/part-of": "jiaozhi"}
        policies = _policies(manifests, labels)
        assert any(set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"} and not p["spec"].get("ingress")
                   and not p["spec"].get("egress") for p in policies), f"{component}: default deny"
        egress_to_nats = any("nats" in _peer_names(r) for p in policies for r in p["spec"].get("egress", []))
        assert egress_to_nats == (component in SERVICES)
