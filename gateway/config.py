"""Gateway settings: upstream services, limits, demo accounts."""
from __future__ import annotations

from typing import ClassVar

from pydantic import Field, SecretStr

from shared.settings import Settings


class GatewaySettings(Settings):
    """Settings of the gateway (JIAOZHI_*)."""

    component: ClassVar[str] = "gateway"
    classification_url: str = "http://127.0.0.1:8001"
    tracing_url: str = "http://127.0.0.1:8002"
    dispatch_url: str = "http://127.0.0.1:8003"
    assessment_url: str = "http://127.0.0.1:8004"
    extra_routes: list[tuple[str, str]] = Field(
        [], description="extra (path regex, upstream base URL) pairs checked first, e.g. for benchmarks")
    upstream_timeout_s: float = 10.0
    max_body_bytes: int = 1_048_576
    demo_password: SecretStr = SecretStr("demo")
    demo_accounts: bool = Field(True, description="admin, command, platform and one user per station (demo only)")
