"""`kubectl kustomize deploy/k8s`, offline: the kustomization's resources with its namespace and image set.

Only the transformations the kustomization uses (namespace, images) are applied; a kustomization that
uses anything else fails here instead of being rendered wrongly.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
SUPPORTED = {"apiVersion", "kind", "namespace", "resources", "images"}
CLUSTER_SCOPED = {"Namespace"}


def docs(path: Path) -> list[dict[str, Any]]:
    """The YAML documents of one file."""
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def _pods(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc.get("spec", {})
    if doc["kind"] in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
        return [spec["template"]["spec"]]
    if doc["kind"] == "CronJob":
        return [spec["jobTemplate"]["spec"]["template"]["spec"]]
    return []


def pod_specs(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The pod specs a workload creates (empty for other kinds)."""
    return _pods(doc)


def _set_image(container: dict[str, Any], images: list[dict[str, str]]) -> None:
    name, _, tag = container["image"].partition(":")
    for image in images:
        if image["name"] == name.split("@")[0]:
            ref = image.get("newName", name.split("@")[0])
            if "digest" in image:
                container["image"] = f"{ref}@{image['digest']}"
            else:
                container["image"] = f"{ref}:{image.get('newTag', tag)}"


def render(extra: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The rendered manifests; `extra` adds files that are not in the kustomization (the optional Job)."""
    kustomization = docs(K8S / "kustomization.yaml")[0]
    unsupported = set(kustomization) - SUPPORTED
    assert not unsupported, f"the offline renderer does not know {sorted(unsupported)}"
    out = []
    for name in (*kustomization["resources"], *extra):
        for doc in docs(K8S / name):
            if doc["kind"] not in CLUSTER_SCOPED and "namespace" in kustomization:
                doc["metadata"]["namespace"] = kustomization["namespace"]
            for pod in _pods(doc):
                for container in pod.get("initContainers", []) + pod["containers"]:
                    _set_image(container, kustomization.get("images", []))
            out.append(doc)
    return out


def write(path: Path, manifests: list[dict[str, Any]]) -> Path:
    """Write manifests as one multi-document YAML file."""
    path.write_text(yaml.safe_dump_all(manifests, sort_keys=False), encoding="utf-8")
    return path
