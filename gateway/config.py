"""Gateway settings: upstream services, limits, the accounts database, demo accounts."""
from __future__ import annotations

from typing import ClassVar

from pydantic import Field, SecretStr, model_validator

from shared.auth import SigningKey
from shared.pagination import MAX_LIMIT
from shared.settings import DEMO_ENVIRONMENTS, ServiceSettings

__all__ = ["DEMO_ENVIRONMENTS", "SERVICES", "GatewaySettings"]
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
    max_upload_bytes: int = Field(
        10_485_760, description="bodies of photo uploads (POST /tasks/{id}/photos) may be this big; dispatch checks "
                                "its own limit (JIAOZHI_PHOTO_MAX_BYTES) too")
    max_page_size: int = Field(MAX_LIMIT, description="`limit` above this is a 422 at the gateway")
    rate_per_s: float = Field(200.0, description="sustained requests per second per caller (0: no limit)")
    rate_burst: int = Field(400, description="requests a caller may send at once before being slowed")
    login_rate_per_min: float = Field(
        120.0, description="token requests per minute per client address (0: no limit); per replica. A station's "
                           "whole shift may share one address (NAT): wrong passwords are slowed per account "
                           "and address instead (login_backoff_*)")
    login_burst: int = Field(60, description="token requests an address may send at once")
    unit_tree_ttl_s: float = Field(30.0, description="how long the gateway trusts its copy of the unit tree")
    openapi_retry_s: float = Field(5.0, description="refetch a service's document this soon if it was away")
    audit_flush_s: float = 0.2
    retention_audit_days: float = Field(
        400.0, ge=0, description="audit entries are pruned after this many days (0: never); kept longest of all, "
                                 "above the six months China's Cybersecurity Law (art. 21) asks for network logs")
    jwt_private_key: SecretStr | None = Field(
        None, description="the gateway's Ed25519 private key as a JWK with its kid (JSON): it alone signs tokens; "
                          "the launcher makes one per data dir, `jiaozhi token-keys` makes one for a cluster")
    trusted_proxies: list[str] = Field(
        [], description="addresses or CIDRs of proxies (the Ingress) whose X-Forwarded-For names the client; "
                        "from any other peer the header is ignored")
    login_backoff_after: int = Field(5, ge=1, description="failed logins of one account from one address "
                                                          "before each further one doubles the wait")
    login_backoff_base_s: float = Field(1.0, gt=0, description="the wait after the last free failure")
    login_backoff_max_s: float = Field(900.0, gt=0, description="the longest wait (15 minutes)")
    refresh_grace_s: float = Field(30.0, ge=0, description="a refresh token already traded may be traded again "
                                                           "this long (a retry on a poor network)")
    demo_password: SecretStr = SecretStr("demo")
    demo_accounts: bool = Field(True, description="admin, command, platform and one user per unit (demo only)")

    @model_validator(mode="after")
    def _a_real_signing_key(self) -> GatewaySettings:
        if self.jwt_private_key is not None:
            SigningKey.from_jwk(self.jwt_private_key.get_secret_value())  # a ValueError says what is wrong
        elif self.environment not in DEMO_ENVIRONMENTS:
            raise ValueError(f"JIAOZHI_JWT_PRIVATE_KEY must be set when JIAOZHI_ENVIRONMENT={self.environment} "
                             "(`jiaozhi token-keys` makes a pair)")
        return self

    @property
    def demo_accounts_enabled(self) -> bool:
        """Demo accounts exist only in the demo (and in automated tests), never elsewhere."""
        return self.demo_accounts and self.environment in DEMO_ENVIRONMENTS

    def upstreams(self) -> dict[str, str]:
        """Service name → base URL."""
        return {name: getattr(self, f"{name}_url").rstrip("/") for name in SERVICES}
