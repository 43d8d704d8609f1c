"""The score engine: indicator values from period aggregates, points, parts, colours and ranks (vectorised).

Pure functions over numpy arrays (one row per station); NaN means "no data" and stays visible as None.
`score_naive` is the same rule written as plain loops: the benchmark's baseline and the tests' cross-check.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from services.assessment.catalogue import Indicator, IndicatorSet


@dataclass
class PeriodData:
    """What the engine needs about a set of stations over one period."""

    station_ids: list[str]
    days: int
    months: float
    sums: dict[str, np.ndarray] = field(default_factory=dict)  # measure → per-station sum, NaN: no rows
    active: np.ndarray | None = None  # station reported anything in the period
    population: np.ndarray | None = None  # NaN: unknown
    last_year: dict[str, np.ndarray] = field(default_factory=dict)
    last_year_active: np.ndarray | None = None
    first_last: dict[tuple[str, ...], tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)
    # measures → (first census day total, last census day total, census days)

    def __post_init__(self) -> None:
        n = len(self.station_ids)
        if self.active is None:
            self.active = np.zeros(n, bool)
        if self.population is None:
            self.population = np.full(n, np.nan)
        if self.last_year_active is None:
            self.last_year_active = np.zeros(n, bool)

    def _nan(self) -> np.ndarray:
        return np.full(len(self.station_ids), np.nan)

    def total(self, names: Sequence[str], source: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """Sum of several measures per station; NaN where none of them has a row."""
        source = self.sums if source is None else source
        arrays = [source[n] for n in names if n in source]
        if not arrays:
            return self._nan()
        stacked = np.vstack(arrays)
        present = ~np.isnan(stacked).all(axis=0)
        with np.errstate(over="ignore"):  # an overflowing sum is inf, then no data (see score)
            return np.where(present, np.nansum(stacked, axis=0), np.nan)


@dataclass
class Scores:
    """The engine's output for one set of stations: arrays aligned with `station_ids`."""

    station_ids: list[str]
    indicator_ids: list[str]
    values: np.ndarray  # stations × indicators
    points: np.ndarray  # stations × indicators
    outcome: np.ndarray
    process: np.ndarray
    total: np.ndarray
    complete: np.ndarray


def _absent_as_zero(values: np.ndarray, active: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(values) & active, 0.0, values)


def indicator_value(ind: Indicator, data: PeriodData) -> np.ndarray:
    """The indicator's measured value per station (NaN: missing), by its formula."""
    m = ind.measurement
    num = data.total(m.numerator)
    if m.absent == "zero":
        num = _absent_as_zero(num, data.active)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # overflow → inf → no data (see score)
        if m.formula == "per_10k":
            pop = np.where(data.population > 0, data.population, np.nan)
            return num / pop * 10_000 / data.months
        if m.formula == "ratio":
            den = data.total(m.denominator)
            num = np.where(np.isnan(num) & (den > 0), 0.0, num)
            return np.where(den > 0, num / den * m.scale, np.nan)
        if m.formula == "per_planned_hours":
            return num / (m.planned_hours_per_day * data.days) * 100
        if m.formula == "change_vs_last_year":
            last = _absent_as_zero(data.total(m.numerator, data.last_year), data.last_year_active)
            ok = data.active & data.last_year_active
            return np.where(ok, (num - last) / np.maximum(last, 1.0) * 100, np.nan)
        if m.formula == "first_last_reduction":
            first, last, census_days = data.first_last.get(tuple(m.numerator), (data._nan(), data._nan(),
                                                                                 np.zeros(len(data.station_ids))))
            ok = (census_days >= 2) & (first > 0)
            return np.where(ok, (first - last) / first * 100, np.nan)
    raise ValueError(f"unknown formula {m.formula}")  # unreachable: validated at load


def points(values: np.ndarray, floors: np.ndarray, targets: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Linear between floor (0 points) and target (full weight), capped; works for either direction."""
    with np.errstate(invalid="ignore"):
        return weights * np.clip((values - floors) / (targets - floors), 0.0, 1.0)


def score(iset: IndicatorSet, data: PeriodData) -> Scores:
    """Score every station in `data` under one indicator set."""
    inds = iset.indicators
    values = np.column_stack([indicator_value(i, data) for i in inds]) if inds else np.zeros((0, 0))
    values = np.where(np.isfinite(values), values, np.nan)  # an overflowing value is no data, never ±inf in a score
    pts = points(values, np.array([i.floor for i in inds]), np.array([i.target for i in inds]),
                 np.array([i.weight for i in inds]))
    weights = np.array([i.weight for i in inds])
    have = ~np.isnan(pts)
    parts = {}
    for part, part_points in iset.parts.items():
        cols = np.array([i.part == part for i in inds])
        got = np.where(have[:, cols], pts[:, cols], 0.0).sum(axis=1)
        avail = (have[:, cols] * weights[cols]).sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            parts[part] = np.where(avail > 0, got / avail * part_points, np.nan)
    return Scores(list(data.station_ids), [i.id for i in inds], values, pts, parts["outcome"], parts["process"],
                  parts["outcome"] + parts["process"], have.all(axis=1))


def colour(total: float | None, thresholds: dict[str, float]) -> str | None:
    """blue at or above the blue threshold, yellow at or above the yellow one, else red; None without a total."""
    if total is None or math.isnan(total):
        return None
    return "blue" if total >= thresholds["blue"] else "yellow" if total >= thresholds["yellow"] else "red"


def ranks_within(groups: Sequence[str | None], totals: Sequence[float | None]) -> list[int | None]:
    """Competition ranks (1, 2, 2, 4) by total, highest first, within each group; None without a total."""
    out: list[int | None] = []
    for g, t in zip(groups, totals, strict=True):
        if t is None or math.isnan(t):
            out.append(None)
            continue
        out.append(1 + sum(1 for g2, t2 in zip(groups, totals, strict=True)
                           if g2 == g and t2 is not None and not math.isnan(t2) and round(t2, 6) > round(t, 6)))
    return out


def ranks_within_fast(groups: np.ndarray, totals: np.ndarray) -> np.ndarray:
    """`ranks_within` for large arrays (0 where there is no total)."""
    ranks = np.zeros(len(totals), int)
    rounded = np.round(totals, 6)
    for g in np.unique(groups):
        idx = np.flatnonzero((groups == g) & ~np.isnan(totals))
        vals = rounded[idx]
        order = np.sort(vals)[::-1]
        # competition rank: 1 + how many are strictly higher
        ranks[idx] = 1 + np.searchsorted(-order, -vals, side="left")
    return ranks


def score_naive(iset: IndicatorSet, rows: list[dict[str, float]], *, days: int, months: float) -> list[float | None]:
    """Totals by plain loops over per-station dicts (sums, `population`, `active`; change and census keys):
    the reference the vectorised engine is measured against."""
    totals: list[float | None] = []
    for row in rows:
        got = {"outcome": 0.0, "process": 0.0}
        avail = {"outcome": 0.0, "process": 0.0}
        for ind in iset.indicators:
            v = _naive_value(ind, row, days=days, months=months)
            if v is None:
                continue
            frac = min(1.0, max(0.0, (v - ind.floor) / (ind.target - ind.floor)))
            got[ind.part] += ind.weight * frac
            avail[ind.part] += ind.weight
        if avail["outcome"] > 0 and avail["process"] > 0:
            totals.append(sum(got[p] / avail[p] * iset.parts[p] for p in got))
        else:
            totals.append(None)
    return totals


def _naive_value(ind: Indicator, row: dict[str, float], *, days: int, months: float) -> float | None:
    m = ind.measurement
    if m.formula == "first_last_reduction":
        first, last, n = row.get("first", 0.0), row.get("last", 0.0), row.get("census_days", 0)
        return (first - last) / first * 100 if n >= 2 and first > 0 else None
    present = [row[n] for n in m.numerator if n in row]
    num = sum(present) if present else (0.0 if m.absent == "zero" and row.get("active") else None)
    if m.formula == "ratio":
        dens = [row[n] for n in m.denominator if n in row]
        den = sum(dens) if dens else 0.0
        return None if den <= 0 else (num or 0.0) / den * m.scale
    if num is None:
        return None
    if m.formula == "per_10k":
        pop = row.get("population") or 0
        return None if pop <= 0 else num / pop * 10_000 / months
    if m.formula == "per_planned_hours":
        return num / (m.planned_hours_per_day * days) * 100
    if m.formula == "change_vs_last_year":
        if not row.get("last_year_active"):
            return None
        last = sum(row.get("ly:" + n, 0.0) for n in m.numerator)
        return (num - last) / max(last, 1.0) * 100
    raise ValueError(f"unknown formula {m.formula}")
