"""Classification settings (JIAOZHI_*, and JIAOZHI_CLASSIFICATION_DATABASE_URL for its own database)."""
from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from shared.settings import ServiceSettings


class ClassificationSettings(ServiceSettings):
    """Settings of the classification service."""

    component: ClassVar[str] = "classification"
    own_database_url: str | None = Field(None, validation_alias="JIAOZHI_CLASSIFICATION_DATABASE_URL")
    scaling: Literal["log", "robust", "standard"] = Field(
        "log", validation_alias="JIAOZHI_CLASSIFICATION_SCALING",
        description="log: log1p then standardise (resists skewed counts); robust: median/IQR; standard: z-scores")
    n_init: int = Field(10, validation_alias="JIAOZHI_CLASSIFICATION_N_INIT")
    seed: int = Field(0, validation_alias="JIAOZHI_CLASSIFICATION_SEED")
