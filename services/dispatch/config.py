"""Dispatch settings (JIAOZHI_*, and JIAOZHI_DISPATCH_DATABASE_URL for its own database)."""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field

from shared.settings import ServiceSettings

HERE = Path(__file__).parent


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
    batch_chunk: int = Field(200, ge=1, description="incidents of a batch stored per transaction")
