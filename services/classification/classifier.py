"""K-Means over station features, and the mapping of clusters to integration modes by centroid meaning."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score
from sklearn.preprocessing import RobustScaler, StandardScaler

from shared.errors import Invalid

CANONICAL_FEATURES = (
    "security_cases_per_10k", "accidents_per_10k", "deaths_per_100k", "congestion_alarms_per_10k",
    "violations_per_10k", "drunk_driving_per_10k", "disorder_complaints_per_10k", "hazards_per_km2",
    "hazard_remediation_rate", "education_contacts_per_10k",
)
BASIC_BY = "congestion_alarms_per_10k"  # highest centroid → basic
DEEP_BY = "deaths_per_100k"  # of the other two, higher centroid → deep; the last → full


@dataclass(frozen=True)
class Assignment:
    station_id: str
    mode: str
    cluster: int
    distance: float
    margin: float


@dataclass(frozen=True)
class Result:
    features: list[str]
    silhouette: float | None
    centroids: dict[str, dict[str, float]]
    sizes: dict[str, int]
    assignments: list[Assignment]


def classify(station_ids: list[str], rows: list[dict[str, float]], *, k: int = 3, scaling: str = "log",
             n_init: int = 10, seed: int = 0) -> Result:
    """Cluster the stations and map each cluster to basic/deep/full (CPU-bound: run off the event loop)."""
    if k != 3:
        raise Invalid("k must be 3: there are three integration modes")
    if len(station_ids) < k:
        raise Invalid(f"need at least {k} stations with features, got {len(station_ids)}")
    features = sorted({name for row in rows for name in row})
    for needed in (BASIC_BY, DEEP_BY):
        if needed not in features:
            raise Invalid(f"feature {needed} is required: it decides the mode of each cluster")
    missing = [(sid, name) for sid, row in zip(station_ids, rows, strict=True) for name in features if name not in row]
    if missing:
        sid, name = missing[0]
        raise Invalid(f"station {sid} lacks feature {name} ({len(missing)} values missing in all)")
    raw = np.array([[row[name] for name in features] for row in rows], dtype=float)
    if not np.isfinite(raw).all():
        raise Invalid("features must be finite numbers")
    if (raw < 0).any():
        raise Invalid("features are rates and counts: negative values are not allowed")
    varying = raw.std(axis=0) > 0
    if not varying.any():
        raise Invalid("every feature is constant across stations: nothing to cluster on")
    x = np.log1p(raw) if scaling == "log" else raw
    x = (RobustScaler() if scaling == "robust" else StandardScaler()).fit_transform(x[:, varying])
    km = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(x)
    labels = km.labels_
    distances = km.transform(x)
    centroids_raw = {c: raw[labels == c].mean(axis=0) for c in range(k)}
    basic_i, deep_i = features.index(BASIC_BY), features.index(DEEP_BY)
    basic = max(range(k), key=lambda c: centroids_raw[c][basic_i])
    rest = [c for c in range(k) if c != basic]
    deep = max(rest, key=lambda c: centroids_raw[c][deep_i])
    full = next(c for c in rest if c != deep)
    mode_of = {basic: "basic", deep: "deep", full: "full"}
    assignments = []
    for i, sid in enumerate(station_ids):
        own = distances[i, labels[i]]
        other = np.delete(distances[i], labels[i]).min()
        assignments.append(Assignment(sid, mode_of[labels[i]], int(labels[i]), float(own), float(other - own)))
    silhouette = float(silhouette_score(x, labels)) if len(set(labels)) > 1 and len(x) > k else None
    return Result(
        features=features, silhouette=silhouette,
        centroids={mode_of[c]: dict(zip(features, map(float, centroids_raw[c]), strict=True)) for c in range(k)},
        sizes={mode_of[c]: int((labels == c).sum()) for c in range(k)}, assignments=assignments,
    )
