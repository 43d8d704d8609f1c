"""Real data: classify the 39 English police forces per year (2010–2016) and measure year-to-year stability.

Source: github.com/mpjashby/traffic-police-and-collisions (DfT, Home Office, HMIC figures under the Open
Government Licence v3.0). Run: `jiaozhi classify-forces [--year 2011]` or
`python -m services.classification.uk_forces [YEAR]`. Mapping of the UK figures to features: docs/CLASSIFICATION.md.
"""
from __future__ import annotations

import csv
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sklearn.metrics import adjusted_rand_score

from services.classification.classifier import MappingRule, Result, classify

DEFAULT_DIRS = (Path(__file__).resolve().parents[2] / "tests" / "data" / "uk_police_forces",
                Path(__file__).resolve().parents[3] / "shared" / "data" / "uk_police_forces")
YEARS = tuple(range(2010, 2017))
ALIASES = {"Metropolitan Police": "Metropolitan", "London, City of": "City of London",
           "Devon & Cornwall": "Devon and Cornwall"}
# urban forces have dense, slow traffic: many collisions per vehicle-km stands in for congestion
UK_RULE = MappingRule(basic_by="collisions_per_100m_vehicle_km", deep_by="deaths_per_100k")
SMOOTHING_YEARS = 3  # features are the mean of this many years up to the one classified (the trailing window)
STICKINESS = 0.15  # a force keeps last year's mode while that centroid is within 15 % of its nearest


@dataclass(frozen=True)
class ForceYear:
    """One force's raw figures in one year."""

    force: str
    year: int
    collisions: float
    fatal: float
    fpn: float
    breath_tests: float
    officers: float
    million_km: float
    population: float


def _name(raw: str) -> str:
    name = raw.strip()
    return ALIASES.get(name, name)


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def data_dir(explicit: Path | None = None) -> Path:
    """The folder with the CSV files: the given one, the test copy, or ../shared/data."""
    for candidate in ([explicit] if explicit else list(DEFAULT_DIRS)):
        if candidate and (candidate / "data_collisions.csv").exists():
            return candidate
    raise FileNotFoundError("UK police forces data not found; pass --data-dir")


def load(folder: Path) -> dict[tuple[str, int], ForceYear]:
    """Join the per-year files on (force, year); only the 39 English forces (population from 2011)."""
    population = {_name(r["force"]): float(r["population_thousands"]) * 1000
                  for r in _read(folder / "DERIVED_uk_police_force_features_2011.csv")}

    def table(name: str, column: str) -> dict[tuple[str, int], float]:
        return {(_name(r["force"]), int(r["year"])): float(r[column]) for r in _read(folder / name)}

    collisions = table("data_collisions.csv", "acc_all")
    fatal = table("DERIVED_uk_collisions_by_severity_by_force_2010_2016.csv", "Fatal")
    fpn = table("data_fpn.csv", "fpn_all")
    breath = table("data_breath_tests.csv", "breath_tests")
    officers = table("data_officer_counts.csv", "officers")
    traffic = table("data_traffic.csv", "million_km")
    out = {}
    for force, pop in population.items():
        for year in YEARS:
            key = (force, year)
            if all(key in t for t in (collisions, fatal, fpn, breath, officers, traffic)):
                out[key] = ForceYear(force, year, collisions[key], fatal[key], fpn[key], breath[key], officers[key],
                                     traffic[key], pop)
    return out


def features(fy: ForceYear) -> dict[str, float]:
    """A force-year's features: canonical names where the meaning matches, documented proxies otherwise."""
    per_10k, per_100k = 1e4 / fy.population, 1e5 / fy.population
    return {
        "accidents_per_10k": fy.collisions * per_10k,
        "deaths_per_100k": fy.fatal * per_100k,  # fatal collisions (deaths are not in the files)
        "drunk_driving_per_10k": fy.breath_tests * per_10k,  # breath tests (enforcement effort)
        "collisions_per_100m_vehicle_km": fy.collisions / fy.million_km * 100,
    }  # fixed-penalty notices and officers are left out: they follow policy changes, not the area's problems


def smoothed(data: dict[tuple[str, int], ForceYear], year: int, years: int = SMOOTHING_YEARS) -> dict[str, dict]:
    """Per force, the mean features over the `years` years up to `year` (those available)."""
    out = {}
    for force in sorted({f for f, _ in data}):
        rows = [features(data[(force, y)]) for y in range(year - years + 1, year + 1) if (force, y) in data]
        if rows and (force, year) in data:
            out[force] = {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}
    return out


def classify_years(data: dict[tuple[str, int], ForceYear], *, years: int = SMOOTHING_YEARS,
                   stickiness: float = STICKINESS, scaling: str = "log") -> dict[int, Result]:
    """K-Means on the forces year after year, each run warm-started from the year before as the service does
    (City of London is found as an outlier and set aside)."""
    results: dict[int, Result] = {}
    previous: dict[str, str] | None = None
    centroids = None
    for year in YEARS:
        table = smoothed(data, year, years)
        ids = sorted(table)
        result = classify(ids, [table[i] for i in ids], scaling=scaling, rule=UK_RULE, seed=0, n_init=10,
                          previous=previous, previous_centroids=centroids, stickiness=stickiness)
        results[year] = result
        previous, centroids = {a.station_id: a.mode for a in result.assignments}, result.centroids
    return results


def stability(results: dict[int, Result]) -> dict[str, float]:
    """Adjusted Rand index of the mode assignment between consecutive years (forces in both)."""
    out = {}
    years = sorted(results)
    for a, b in zip(years, years[1:], strict=False):
        ma = {x.station_id: x.mode for x in results[a].assignments}
        mb = {x.station_id: x.mode for x in results[b].assignments}
        common = sorted(set(ma) & set(mb))
        out[f"{a}-{b}"] = round(float(adjusted_rand_score([ma[f] for f in common], [mb[f] for f in common])), 3)
    return out


def main(*, year: int | None = None, data_dir: Path | None = None, console: object | None = None,
         years: int = SMOOTHING_YEARS) -> dict[int, Result]:
    """Print the groups per year, outliers and the ARI between consecutive years."""
    say: Callable[[str], object] = getattr(console, "print", print)
    data = load(globals()["data_dir"](data_dir))
    wanted = [year] if year else list(YEARS)
    results = classify_years(data, years=years)
    for y in wanted:
        r = results[y]
        say(f"{y} (features averaged over {years} year(s) up to {y}; silhouette {r.silhouette:.3f})")
        for mode in ("basic", "deep", "full"):
            forces = [a.station_id + ("*" if a.outlier else "") for a in r.assignments if a.mode == mode]
            say(f"  {mode:5} ({len(forces):2}): {', '.join(forces)}")
        for o in r.outliers:
            say(f"  outlier: {o.station_id}: {o.reason} → {o.assigned_mode}")
    if not year:
        say(f"adjusted Rand index between consecutive years: {stability(results)}")
    return results


if __name__ == "__main__":
    main(year=int(sys.argv[1]) if len(sys.argv) > 1 else None)
