"""The merged OpenAPI document built in-process (every service's app, no server) and its committed copy,
docs/openapi.json (regenerate: `jiaozhi openapi --write`; tests/gateway/test_openapi_document.py compares)."""
from __future__ import annotations

import importlib
import json
from pathlib import Path

from gateway.app import create_app
from gateway.config import SERVICES, GatewaySettings
from gateway.openapi import merge

COMMITTED = Path(__file__).resolve().parents[1] / "docs" / "openapi.json"


def merged_document(data_dir: Path) -> dict:
    """What the gateway serves once every service answered (services' apps built, not started)."""
    docs = {}
    for name in SERVICES:
        module = importlib.import_module(f"services.{name}.app")
        settings = importlib.import_module(f"services.{name}.config")
        settings_cls = next(v for k, v in vars(settings).items() if k.endswith("Settings") and k != "ServiceSettings")
        docs[name] = module.create_app(settings_cls(data_dir=data_dir)).openapi()
    gateway = create_app(GatewaySettings(data_dir=data_dir))
    return merge(gateway.openapi(), docs)


def render(doc: dict) -> str:
    """As committed: indented, a final newline."""
    return json.dumps(doc, ensure_ascii=False, indent=2) + "\n"
