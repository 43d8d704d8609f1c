"""Dispatch settings (JIAOZHI_*, and JIAOZHI_DISPATCH_DATABASE_URL for its own database)."""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field, SecretStr, model_validator

from shared.settings import ServiceSettings

HERE = Path(__file__).parent
DEMO_WEBHOOK_KEY = "demo-only-webhook-secret-key"  # clearly-marked demo default


class DispatchSettings(ServiceSettings):
    """Settings of the dispatch service."""

    component: ClassVar[str] = "dispatch"
    own_database_url: str | None = Field(None, validation_alias="JIAOZHI_DISPATCH_DATABASE_URL")
    routing_table: Path = Field(HERE / "routing.json", validation_alias="JIAOZHI_DISPATCH_ROUTING_TABLE")
    area_cache_s: float = Field(
        5.0, description="how long a replica trusts its cached routing table (units follow the directory revision)")
    scheduler_interval_s: float = Field(5.0, description="how often each replica checks deadlines")
    escalation_grace_s: float = Field(
        3600.0, description="how long an order stays overdue before it is escalated to the unit's supervisor")
    sse_heartbeat_s: float = Field(15.0, description="a comment line on a quiet task stream this often")
    sse_resume_window: int = Field(
        10_000, ge=0, description="a task stream resumed with Last-Event-ID replays at most this many stream "
                                  "messages (and only those the stream still holds); further back: `stream.reset`")
    photo_max_bytes: int = Field(
        10 * 1024 * 1024, ge=1, description="an uploaded photo is at most this big (413 above; the gateway's "
                                            "JIAOZHI_MAX_UPLOAD_BYTES must allow it too)")
    photo_max_side: int = Field(2560, ge=320, description="a stored photo is scaled to at most this many pixels a side")
    photo_unattached_days: float = Field(
        2.0, ge=0, description="a photo uploaded but never attached to a milestone or submission is pruned after "
                               "this many days (0: never); attached photos stay as long as their order")
    batch_chunk: int = Field(200, ge=1, description="incidents of a batch stored per transaction")
    webhook_secret_key: SecretStr = Field(
        SecretStr(DEMO_WEBHOOK_KEY), description="encrypts webhook signing secrets at rest (Fernet); set it, as a "
                                                 "variable or a secret file, outside the demo")
    webhook_allow: list[str] = Field(
        [], description="networks (CIDR) webhook receivers may be in although loopback, private or link-local, "
                        'e.g. ["10.20.0.0/16"]; everything else must be a public address')
    webhook_backoff_s: list[float] = Field(
        [10, 60, 300, 1800, 7200], description="waits before the 2nd, 3rd… delivery attempt; after the last, the "
                                               "delivery is marked failed")
    webhook_timeout_s: float = Field(5.0, gt=0, description="one delivery attempt's whole time (connect to body)")
    webhook_max_response_bytes: int = Field(65536, ge=0, description="a receiver's answer is read up to this")
    webhook_poll_s: float = Field(1.0, gt=0, description="how often the delivery loop looks for due deliveries")
    webhook_batch: int = Field(20, ge=1, description="deliveries attempted at once by one replica")
    webhook_log_days: float = Field(30.0, ge=0, description="delivered and failed deliveries (the delivery log) "
                                                            "are pruned after this many days (0: never)")

    @property
    def webhook_require_https(self) -> bool:
        """https only, except in the demo and tests."""
        return self.environment not in ("demo", "test")

    @model_validator(mode="after")
    def _refuse_demo_webhook_key_in_production(self) -> DispatchSettings:
        if self.environment == "production" and self.webhook_secret_key.get_secret_value() == DEMO_WEBHOOK_KEY:
            raise ValueError("JIAOZHI_WEBHOOK_SECRET_KEY must be set outside the demo")
        return self
