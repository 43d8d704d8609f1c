"""K-Means over station features, outlier handling, and the mapping of clusters to modes by centroid meaning."""
from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score

from shared.errors import Invalid

CANONICAL_FEATURES = (
    "security_cases_per_10k", "accidents_per_10k", "deaths_per_100k", "congestion_alarms_per_10k",
    "violations_per_10k", "drunk_driving_per_10k", "disorder_complaints_per_10k", "hazards_per_km2",
    "hazard_remediation_rate", "education_contacts_per_10k",
)
SCALINGS = ("log", "robust", "standard", "log_robust")
SILHOUETTE_SAMPLE = 2000  # silhouette is O(n²): above this many stations it is estimated on a fixed sample


@dataclass(frozen=True)
class MappingRule:
    """DOMAIN.md §3: highest `basic_by` centroid → basic; of the rest, higher `deep_by` → deep; the last → full."""

    basic_by: str = "congestion_alarms_per_10k"
    deep_by: str = "deaths_per_100k"


DEFAULT_RULE = MappingRule()


@dataclass(frozen=True)
class Distinction:
    """A feature that sets a station (or a cluster) apart: its value against the median of all stations."""

    feature: str
    value: float
    median: float
    z: float


@dataclass(frozen=True, slots=True)
class Assignment:
    """One station's result."""

    station_id: str
    mode: str
    cluster: int
    distance: float
    margin: float
    outlier: bool = False
    distinctive: list[dict[str, Any]] = field(default_factory=list)  # Distinction's fields, as plain dicts


@dataclass(frozen=True)
class Outlier:
    """A station kept out of fitting because it would have taken a cluster for itself."""

    station_id: str
    reason: str
    assigned_mode: str


@dataclass(frozen=True)
class Result:
    """What a run found."""

    features: list[str]
    silhouette: float | None
    centroids: dict[str, dict[str, float]]
    sizes: dict[str, int]
    assignments: list[Assignment]
    outliers: list[Outlier]
    distinctive: dict[str, list[Distinction]]
    scaling: str


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Hold the cyclic garbage collector while building tens of thousands of small dicts and lists.

    Those allocations would trigger full collections that find nothing (they hold no cycles) and cost
    a third of the time; reference counting still frees everything as usual.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _validated_matrix(station_ids: list[str], rows: list[dict[str, float]], k: int,
                      rule: MappingRule) -> tuple[list[str], np.ndarray]:
    if k != 3:
        raise Invalid("k must be 3: there are three integration modes")
    if len(station_ids) != len(set(station_ids)):
        raise Invalid("a station appears twice in the input")
    if len(station_ids) < k:
        raise Invalid(f"need at least {k} stations with features, got {len(station_ids)}")
    features = sorted(set().union(*rows))
    for needed in (rule.basic_by, rule.deep_by):
        if needed not in features:
            raise Invalid(f"feature {needed} is required: it decides the mode of each cluster")
    pick = itemgetter(*features) if len(features) > 1 else (lambda row: (row[features[0]],))
    try:
        values = list(map(pick, rows))
    except KeyError:
        missing = [(sid, name) for sid, row in zip(station_ids, rows, strict=True) for name in features
                   if name not in row]
        sid, name = missing[0]
        raise Invalid(f"station {sid} lacks feature {name} ({len(missing)} values missing in all)") from None
    try:
        raw = np.array(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise Invalid(f"features must be numbers: {exc}") from exc
    if not np.isfinite(raw).all():
        raise Invalid("features must be finite numbers")
    if (raw < 0).any():
        raise Invalid("features are rates and counts: negative values are not allowed")
    return features, raw


def scale(raw: np.ndarray, scaling: str) -> np.ndarray:
    """Scale columns: `log` log1p then z-scores (default, for skewed counts); `robust` median/IQR;
    `standard` z-scores; `log_robust` log1p then median/IQR. Constant columns become 0."""
    return scale_fitted(raw, scaling)[0]


def scale_fitted(raw: np.ndarray, scaling: str) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """`scale`, and the same transformation for other rows (e.g. a former run's centroids)."""
    if scaling not in SCALINGS:
        raise Invalid(f"unknown scaling {scaling!r}; one of {', '.join(SCALINGS)}")
    logged = scaling in ("log", "log_robust")
    x = np.log1p(raw) if logged else raw.astype(float)
    if scaling in ("robust", "log_robust"):
        centre = np.median(x, axis=0)
        spread = np.subtract(*np.percentile(x, [75, 25], axis=0))
        fallback = x.std(axis=0)  # a column with IQR 0 but some spread still counts
        spread = np.where(spread > 0, spread, fallback)
    else:
        centre, spread = x.mean(axis=0), x.std(axis=0)

    def transform(rows: np.ndarray) -> np.ndarray:
        y = np.log1p(rows) if logged else rows.astype(float)
        return np.divide(y - centre, spread, out=np.zeros_like(y), where=spread > 0)

    return transform(raw), transform


def _warm_start(previous: Mapping[str, Mapping[str, float]] | None, features: list[str], varying: np.ndarray,
                transform: Callable[[np.ndarray], np.ndarray]) -> np.ndarray | None:
    """A former run's centroids in this run's scaled space, if they cover the same features."""
    if not previous or set(previous) != {"basic", "deep", "full"}:
        return None
    if any(set(c) != set(features) for c in previous.values()):
        return None
    used = [f for f, v in zip(features, varying, strict=True) if v]
    centres = np.array([[max(float(previous[m][f]), 0.0) for f in used] for m in ("basic", "deep", "full")])
    return transform(centres)


def _fit(x: np.ndarray, k: int, n_init: int, seed: int) -> KMeans:
    return KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(x)


def _fit_resisting_outliers(x: np.ndarray, k: int, n_init: int, seed: int,
                            min_cluster_size: int) -> tuple[KMeans, np.ndarray]:
    """Fit; while a cluster is smaller than `min_cluster_size`, drop its members from fitting and refit.

    At most a tenth of the stations may be set aside; returns the model and a mask of the stations fitted on.
    """
    fitted = np.ones(len(x), dtype=bool)
    budget = max(1, len(x) // 10)
    while True:
        km = _fit(x[fitted], k, n_init, seed)
        sizes = np.bincount(km.labels_, minlength=k)
        tiny = np.flatnonzero(sizes < min_cluster_size)
        if len(tiny) == 0 or fitted.sum() <= k * min_cluster_size:
            return km, fitted
        members = np.flatnonzero(fitted)[np.isin(km.labels_, tiny)]
        if (~fitted).sum() + len(members) > budget:
            return km, fitted
        fitted[members] = False


def _distinctions(row: np.ndarray, zrow: np.ndarray, medians: np.ndarray, features: list[str],
                  top: int) -> list[Distinction]:
    order = np.argsort(-np.abs(zrow))[:top]
    return [Distinction(features[j], float(row[j]), float(medians[j]), round(float(zrow[j]), 3)) for j in order]


def classify(station_ids: list[str], rows: list[dict[str, float]], *, k: int = 3, scaling: str = "log",
             n_init: int = 10, seed: int = 0, rule: MappingRule = DEFAULT_RULE, min_cluster_size: int = 2,
             top_features: int = 3, previous: Mapping[str, str] | None = None,
             previous_centroids: Mapping[str, Mapping[str, float]] | None = None,
             stickiness: float = 0.0) -> Result:
    """Cluster the stations and map each cluster to basic/deep/full (CPU-bound: run it off the event loop).

    Stations that would form a cluster smaller than `min_cluster_size` on their own are outliers: they are
    left out of fitting, then given the mode of their nearest centroid and reported.
    Against noise: `previous_centroids` (a former run's, in original units) also seed K-Means, and a
    station keeps its `previous` mode while that mode's centroid is within (1 + `stickiness`) of its nearest.
    """
    with paused_gc():
        return _classify(station_ids, rows, k=k, scaling=scaling, n_init=n_init, seed=seed, rule=rule,
                         min_cluster_size=min_cluster_size, top_features=top_features, previous=previous,
                         previous_centroids=previous_centroids, stickiness=stickiness)


def _classify(station_ids: list[str], rows: list[dict[str, float]], *, k: int, scaling: str, n_init: int, seed: int,
              rule: MappingRule, min_cluster_size: int, top_features: int, previous: Mapping[str, str] | None,
              previous_centroids: Mapping[str, Mapping[str, float]] | None, stickiness: float) -> Result:
    features, raw = _validated_matrix(station_ids, rows, k, rule)
    varying = raw.std(axis=0) > 0
    if not varying.any():
        raise Invalid("every feature is constant across stations: nothing to cluster on")
    x, transform = scale_fitted(raw[:, varying], scaling)
    if len(np.unique(x[:1000], axis=0)) < k and len(np.unique(x, axis=0)) < k:  # a head check spares the sort
        raise Invalid(f"fewer than {k} distinct feature vectors: stations cannot form {k} clusters")
    detect = len(x) > k * max(min_cluster_size, 2) * 2
    km, fitted = (_fit_resisting_outliers(x, k, n_init, seed, min_cluster_size) if detect
                  else (_fit(x, k, n_init, seed), np.ones(len(x), dtype=bool)))
    warm = _warm_start(previous_centroids, features, varying, transform)
    if warm is not None:
        candidate = KMeans(n_clusters=k, init=warm, n_init=1, random_state=seed).fit(x[fitted])
        if candidate.inertia_ <= km.inertia_ * 1.05:  # keep the former clusters unless clearly worse
            km = candidate
    distances = km.transform(x)
    labels = distances.argmin(axis=1)
    labels[fitted] = km.labels_
    centroids_raw = np.array([raw[(labels == c) & fitted].mean(axis=0) for c in range(k)])
    basic_i, deep_i = features.index(rule.basic_by), features.index(rule.deep_by)
    basic = int(np.argmax(centroids_raw[:, basic_i]))
    rest = [c for c in range(k) if c != basic]
    deep = max(rest, key=lambda c: centroids_raw[c][deep_i])
    full = next(c for c in rest if c != deep)
    mode_of = {basic: "basic", deep: "deep", full: "full"}
    if previous and stickiness > 0:
        cluster_of = {m: c for c, m in mode_of.items()}
        nearest = distances[np.arange(len(x)), labels]
        for i, sid in enumerate(station_ids):
            before = cluster_of.get(previous.get(sid, ""))
            if before is not None and before != labels[i] and distances[i, before] <= (1 + stickiness) * nearest[i]:
                labels[i] = before

    own = distances[np.arange(len(x)), labels]
    masked = distances.copy()
    masked[np.arange(len(x)), labels] = np.inf
    margins = masked.min(axis=1) - own
    medians = np.median(raw, axis=0)
    z_all = np.zeros_like(raw)
    z_all[:, varying] = scale(raw[:, varying], "robust" if scaling in ("robust", "log_robust") else "standard")
    top = np.argsort(-np.abs(z_all), axis=1)[:, :top_features]
    rows_i = np.arange(len(x))[:, None]
    top_values, top_z = raw[rows_i, top].tolist(), np.round(z_all[rows_i, top], 3).tolist()
    top_list, median_list = top.tolist(), medians.tolist()
    label_list, own_list, margin_list, fitted_list = labels.tolist(), own.tolist(), margins.tolist(), fitted.tolist()
    assignments = []
    for i, sid in enumerate(station_ids):
        distinct = [{"feature": features[j], "value": v, "median": median_list[j], "z": z}
                    for j, v, z in zip(top_list[i], top_values[i], top_z[i], strict=True)]
        assignments.append(Assignment(sid, mode_of[label_list[i]], label_list[i], own_list[i], margin_list[i],
                                      not fitted_list[i], distinct))
    outliers = [Outlier(a.station_id, "would have formed a cluster of its own; set aside while fitting, then "
                                      "given its nearest centroid's mode", a.mode) for a in assignments if a.outlier]
    z_centroids = np.zeros((k, raw.shape[1]))
    z_centroids[:, varying] = np.array([z_all[(labels == c) & fitted][:, varying].mean(axis=0) for c in range(k)])
    return Result(
        features=features, silhouette=_silhouette(x, labels, k, seed),
        centroids={mode_of[c]: dict(zip(features, map(float, centroids_raw[c]), strict=True)) for c in range(k)},
        sizes={mode_of[c]: int((labels == c).sum()) for c in range(k)}, assignments=assignments,
        outliers=outliers, scaling=scaling,
        distinctive={mode_of[c]: _distinctions(centroids_raw[c], z_centroids[c], medians, features, top_features)
                     for c in range(k)},
    )


def _silhouette(x: np.ndarray, labels: np.ndarray, k: int, seed: int) -> float | None:
    if len(set(labels.tolist())) < 2 or len(x) <= k:
        return None
    sample = SILHOUETTE_SAMPLE if len(x) > SILHOUETTE_SAMPLE else None
    return float(silhouette_score(x, labels, sample_size=sample, random_state=seed))
