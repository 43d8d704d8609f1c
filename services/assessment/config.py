"""Assessment settings (JIAOZHI_*, and JIAOZHI_ASSESSMENT_DATABASE_URL for its own database)."""
from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from shared.settings import ServiceSettings


class AssessmentSettings(ServiceSettings):
    """Settings of the assessment service."""

    component: ClassVar[str] = "assessment"
    own_database_url: str | None = Field(None, validation_alias="JIAOZHI_ASSESSMENT_DATABASE_URL")
