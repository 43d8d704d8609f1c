"""Tracing settings (JIAOZHI_*, and JIAOZHI_TRACING_* for what only tracing reads)."""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field

from shared.settings import ServiceSettings

HERE = Path(__file__).parent


class TracingSettings(ServiceSettings):
    """Settings of the tracing service."""

    component: ClassVar[str] = "tracing"
    own_database_url: str | None = Field(None, validation_alias="JIAOZHI_TRACING_DATABASE_URL")
    catalogue: Path = Field(HERE / "catalogue.json", validation_alias="JIAOZHI_TRACING_CATALOGUE")
    historical_after_h: float | None = Field(
        720, gt=0, validation_alias="JIAOZHI_TRACING_HISTORICAL_AFTER_H",
        description="an accident that occurred longer ago than this when traced is a back-fill: its models are "
                    "recorded for the trace, but no task order is sent (unset: every accident issues tasks)")
    refresh_s: float = Field(
        1.0, gt=0, validation_alias="JIAOZHI_TRACING_REFRESH_S",
        description="how often a replica reads what other replicas committed (it also does before every incident "
                    "and model read or edit)")
