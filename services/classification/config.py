"""Classification settings (JIAOZHI_*, and JIAOZHI_CLASSIFICATION_DATABASE_URL for its own database)."""
from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from shared.settings import ServiceSettings


class ClassificationSettings(ServiceSettings):
    """Settings of the classification service."""

    component: ClassVar[str] = "classification"
    own_database_url: str | None = Field(None, validation_alias="JIAOZHI_CLASSIFICATION_DATABASE_URL")
    scaling: Literal["log", "robust", "standard", "log_robust"] = Field(
        "log", validation_alias="JIAOZHI_CLASSIFICATION_SCALING",
        description="log: log1p then z-scores (resists skewed counts); robust: median/IQR; standard: z-scores; "
                    "log_robust: log1p then median/IQR")
    n_init: int = Field(10, ge=1, validation_alias="JIAOZHI_CLASSIFICATION_N_INIT")
    seed: int = Field(0, validation_alias="JIAOZHI_CLASSIFICATION_SEED")
    basic_by: str = Field("congestion_alarms_per_10k", validation_alias="JIAOZHI_CLASSIFICATION_BASIC_BY",
                          description="the cluster with the highest centroid of this feature is `basic`")
    deep_by: str = Field("deaths_per_100k", validation_alias="JIAOZHI_CLASSIFICATION_DEEP_BY",
                         description="of the other two, the higher centroid of this feature is `deep`")
    min_cluster_size: int = Field(
        2, ge=1, validation_alias="JIAOZHI_CLASSIFICATION_MIN_CLUSTER_SIZE",
        description="stations that would form a smaller cluster on their own are outliers, set aside while fitting")
    stickiness: float = Field(
        0.1, ge=0, validation_alias="JIAOZHI_CLASSIFICATION_STICKINESS",
        description="a station keeps the previous run's mode while that centroid is within (1 + this) of its "
                    "nearest; runs also start K-Means from the previous run's centroids")
    max_csv_rows: int = Field(200_000, validation_alias="JIAOZHI_CLASSIFICATION_MAX_CSV_ROWS")
