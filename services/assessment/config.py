"""Assessment settings (JIAOZHI_*, and JIAOZHI_ASSESSMENT_DATABASE_URL for its own database)."""
from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from shared.settings import ServiceSettings


class AssessmentSettings(ServiceSettings):
    """Settings of the assessment service."""

    component: ClassVar[str] = "assessment"
    own_database_url: str | None = Field(None, validation_alias="JIAOZHI_ASSESSMENT_DATABASE_URL")
    score_debounce_s: float = Field(
        2.0, description="how often changed months are re-scored and `score.updated` announced (0: never by timer)")
    report_job_ttl_s: float = Field(86_400.0, description="report jobs (and their files) are deleted this long "
                                                          "after they were started")
    report_job_timeout_s: float = Field(
        600.0, description="a job still running this long after it started is reported failed (`interrupted`): "
                           "the replica building it stopped")
