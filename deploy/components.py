"""The components one codebase can run, and where each one's app and migrations live."""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

SERVICES = ("classification", "tracing", "dispatch", "assessment")
COMPONENTS = (*SERVICES, "gateway")


def app_factory(name: str) -> str:
    """The uvicorn factory path of a component."""
    if name == "gateway":
        return "gateway.app:create_app"
    if name in SERVICES:
        return f"services.{name}.app:create_app"
    raise ValueError(f"unknown component {name!r}; choose from {', '.join(COMPONENTS)}")


def service_settings(name: str, **overrides: Any) -> Any:
    """A service's settings object, read from the environment plus overrides."""
    module = importlib.import_module(f"services.{name}.config")
    cls = next(v for k, v in vars(module).items() if k.endswith("Settings") and getattr(v, "component", "") == name)
    return cls(**overrides)


def migrations_dir(name: str) -> Path:
    """The Alembic folder of a service."""
    return ROOT / "services" / name / "migrations"
