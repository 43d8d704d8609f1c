"""Tracing settings (JIAOZHI_*, and JIAOZHI_TRACING_DATABASE_URL for its own database)."""
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
