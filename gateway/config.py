"""Gateway settings: upstream services, limits, the accounts database, demo accounts."""
from __future__ import annotations

from typing import ClassVar

from pydantic import Field, SecretStr, model_validator

from shared.pagination import MAX_LIMIT
from shared.settings import DEMO_SECRET, ServiceSettings

#: environments where demo accounts and the demo secret are allowed (automated tests count as demo)
DEMO_ENVIRONMENTS = ("demo", "test")
#: the services behind the gateway, in the order readiness and the merged document list them
SERVICES = ("classification", "tracing", "dispatch", "assessment")


class GatewaySettings(ServiceSettings):
    """Settings of the gateway (JIAOZHI_*). Its own small database holds accounts and the audit log."""

    component: ClassVar[str] = "gateway"
    own_database_url: str | None = Field(None, validation_alias="JIAOZHI_GATEWAY_DATABASE_URL")
    classification_url: str = "http://127.0.0.1:8001"
    tracing_url: str = "http://127.0.0.1:8002"
    dispatch_url: str = "http://127.0.0.1:8003"
    assessment_url: str = "http://127.0.0.1:8004"
    extra_routes: list[tuple[str, str]] = Field(
        [], description="extra (path regex, upstream base URL) pairs checked first, e.g. for benchmarks")
    upstream_timeout_s: float = Field(10.0, description="whole upstream call, reading the answer included")
    upstream_connect_timeout_s: float = 2.0
    probe_interval_s: float = Field(0.4, gt=0, description="each upstream's /healthz is asked this often (breaker)")
    probe_timeout_s: float = Field(
        0.6, gt=0, description="a /healthz slower than this opens the upstream's breaker (and cuts its waiting calls)")
    breaker_failures: int = Field(3, ge=1, description="calls in a row failing to connect or timing out open it too")
    idempotency_ttl_h: float = Field(24.0, gt=0, description="an Idempotency-Key's answer is replayed this long")
    max_body_bytes: int = 1_048_576
    max_page_size: int = Field(MAX_LIMIT, description="`limit` above this is a 422 at the gateway")
    rate_per_s: float = Field(200.0, description="sustained requests per second per caller (0: no limit)")
    rate_burst: int = Field(400, description="requests a caller may send at once before being slowed")
    login_rate_per_min: float = Field(60.0, description="token requests per minute per client address (0: no limit)")
    login_burst: int = Field(20, description="token requests an address may send at once")
    unit_tree_ttl_s: float = Field(30.0, description="how long the gateway trusts its copy of the unit tree")
    openapi_retry_s: float = Field(5.0, description="refetch a service's document this soon if it was away")
    audit_flush_s: float = 0.2
    retention_audit_days: float = Field(
        400.0, ge=0, description="audit entries are pruned after this many days (0: never); kept longest of all, "
                                 "above the six months China's Cybersecurity Law (art. 21) asks for network logs")
    demo_password: SecretStr = SecretStr("demo")
    demo_accounts: bool = Field(True, description="admin, command, platform and one user per unit (demo only)")

    @model_validator(mode="after")
    def _refuse_placeholders_outside_the_demo(self) -> GatewaySettings:
        if self.environment not in DEMO_ENVIRONMENTS:
            secret = self.jwt_secret.get_secret_value()
            if secret == DEMO_SECRET:
                raise ValueError(f"JIAOZHI_JWT_SECRET must be set when JIAOZHI_ENVIRONMENT={self.environment}")
            if len(secret.encode()) < 32:
                raise ValueError("JIAOZHI_JWT_SECRET must be at least 32 bytes (HS256 key)")
        return self

    @property
    def demo_accounts_enabled(self) -> bool:
        """Demo accounts exist only in the demo (and in automated tests), never elsewhere."""
        return self.demo_accounts and self.environment in DEMO_ENVIRONMENTS

    def upstreams(self) -> dict[str, str]:
        """Service name → base URL."""
        return {name: getattr(self, f"{name}_url").rstrip("/") for name in SERVICES}
