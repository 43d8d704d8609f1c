"""The calibrated demo district: a year of records for 26 stations matching the article's 2021 figures.

`generate(seed)` is deterministic. Counts the article gives are allocated exactly per area type
(3,497 congestion alarms, 61.4 % urban; 3,955 disorder complaints, 60.2 % fringe; 96 deaths, 74.0 % rural)
and spread over stations with noisy weights; the rest (accidents, cases, violations, hazards, education)
come from per-capita rates that overlap between area types. Features are computed from the records with
the classification service's own aggregation (`services.classification.features`).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import math
import random
import zlib
from collections.abc import Callable
from zoneinfo import ZoneInfo

from shapely.geometry import Point

from deploy.demo_layout import StationArea, organisation_units, station_areas, station_unit, village_name
from services.classification.classifier import classify
from services.classification.features import (
    activity_tallies,
    add_tallies,
    features_from_tallies,
    incident_tallies,
    month_of,
    window_months,
)

TIMEZONE = "Asia/Shanghai"
CALIBRATION = {  # DOMAIN.md §7: (total, area type, count in that area type)
    "congestion_alarm": (3497, "urban", 2146),
    "disorder_complaint": (3955, "fringe", 2380),
    "deaths": (96, "rural", 71),
}
DENSITY = {"urban": 4200, "fringe": 1900, "rural": 950}  # residents per km² (typical)
RATES = {  # per year: incidents and violations per 10k residents, hazards per km², education people per 10k
    "accident": {"urban": 48, "fringe": 58, "rural": 52},
    "security_case": {"urban": 85, "fringe": 95, "rural": 45},
    "violation": {"urban": 380, "fringe": 300, "rural": 230},
    "drunk_share": {"urban": 0.018, "fringe": 0.03, "rural": 0.04},
    "hazards_per_km2": {"urban": 2.6, "fringe": 1.6, "rural": 0.9},
    "education": {"urban": 8000, "fringe": 9500, "rural": 12000},
}
ARRIVAL_RATE = {"district": 0.564, "ps-heshang": 0.8182, "ps-jingjiang": 0.8037}
VIOLATION_TYPES = ("helmet", "speeding", "overload", "other")


@dataclasses.dataclass
class District:
    """Everything the loader needs, and the calibration it achieved."""

    seed: int
    anchor: dt.datetime
    period: str
    units: list[dict]
    villages: list[dict]
    incidents: list[dict]
    activities: list[dict]
    features: dict[str, dict[str, float]]
    arrival_rates: dict[str, float]
    draws: int

    def calibration(self) -> dict[str, dict[str, float]]:
        """Totals and shares of the calibrated figures, from the records."""
        types = {u["id"]: u.get("area_type") for u in self.units}
        out = {}
        for key, (_, area_type, _) in CALIBRATION.items():
            if key == "deaths":
                counts = [(types[r["station_id"]], r["severity"]["deaths"]) for r in self.incidents]
            else:
                counts = [(types[r["station_id"]], 1) for r in self.incidents if r["kind"] == key]
            total = sum(n for _, n in counts)
            inside = sum(n for t, n in counts if t == area_type)
            out[key] = {"total": total, area_type: inside, "share": round(inside / total, 4) if total else 0.0}
        return out

    def recent(self, days: int) -> tuple[list[dict], list[dict]]:
        """Incidents (with a location in their station's area) and activities of the last `days` days."""
        since = self.anchor - dt.timedelta(days=days)
        areas = {a.id: a for a in station_areas()}
        incidents = []
        for r in self.incidents:
            if r["occurred_at"] >= since:
                rng = random.Random(zlib.crc32(r["external_id"].encode()))  # the same point on every load
                incidents.append(r | {"location": _point_in(areas[r["station_id"]], rng)})
        return incidents, [a for a in self.activities if a["occurred_at"] >= since]


def _split(total: int, weights: list[float], rng: random.Random) -> list[int]:
    """`total` items over slots in proportion to weights (largest remainder after a random draw)."""
    if not weights:
        return []
    mean = sum(weights) / len(weights) or 1.0
    draws = [rng.gammavariate(max(w / mean, 1e-3) * 10, 1.0) for w in weights]  # noisy shares (CV about 30 %)
    s = sum(draws)
    raw = [total * d / s for d in draws]
    counts = [int(r) for r in raw]
    for i in sorted(range(len(raw)), key=lambda i: raw[i] - counts[i], reverse=True)[:total - sum(counts)]:
        counts[i] += 1
    return counts


def _poisson(lam: float, rng: random.Random) -> int:
    if lam > 50:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


class _Clock:
    """Random moments in the window [start of the 12-month window, anchor), local time."""

    def __init__(self, anchor: dt.datetime, rng: random.Random) -> None:
        first = window_months(month_of(anchor, TIMEZONE))[0]
        self.start = dt.datetime(int(first[:4]), int(first[5:]), 1, tzinfo=ZoneInfo(TIMEZONE))
        self.span = (anchor - self.start).total_seconds()
        self.rng = rng

    def moment(self) -> dt.datetime:
        return self.start + dt.timedelta(seconds=int(self.rng.random() * self.span))


def _point_in(area: StationArea, rng: random.Random) -> dict[str, float]:
    minx, miny, maxx, maxy = area.polygon.bounds
    while True:
        lon, lat = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
        if area.polygon.contains(Point(lon, lat)):
            return {"lat": round(lat, 6), "lon": round(lon, 6)}


def _parties(rng: random.Random, area_type: str, deaths: int, injuries: int) -> list[dict]:
    kind = rng.choices(["car", "e_bike", "motorcycle", "yellow_plate_truck", "engineering_truck", "goods_vehicle"],
                       weights=[50, 25 if area_type != "urban" else 18, 8, 6, 5, 6])[0]
    person: dict = {"age": rng.randint(18, 78), "licence_status": "valid" if rng.random() > 0.05 else "none"}
    if rng.random() < (0.05 if area_type == "rural" else 0.03):
        person["drunk"] = True
    if kind in ("e_bike", "motorcycle"):
        person["helmet"] = rng.random() > 0.3
    parties = [{"role": "rider" if kind in ("e_bike", "motorcycle") else "driver", "person": person,
                "vehicle": {"kind": kind}}]
    if deaths or injuries or rng.random() < 0.6:
        parties.append({"role": rng.choice(["driver", "pedestrian", "rider"]), "person": {"age": rng.randint(8, 85)}})
    return parties


def _draw(seed: int, anchor: dt.datetime, areas: list[StationArea],
          tick: Callable[[], None]) -> tuple[list[dict], list[dict], list[dict], list[dict], dict[str, float]]:
    rng = random.Random(seed)
    clock = _Clock(anchor, rng)
    tag = f"{seed}-{anchor:%Y%m%d}"  # the same seed and day give the same ids: reloading does not duplicate
    population = {a.id: int(a.area_km2 * DENSITY[a.area_type] * rng.lognormvariate(0, 0.25)) for a in areas}
    units = organisation_units() + [station_unit(a, population[a.id]) for a in areas]
    by_type = {t: [a for a in areas if a.area_type == t] for t in ("urban", "fringe", "rural")}
    counts: dict[str, dict[str, int]] = {a.id: {} for a in areas}
    for key, (total, area_type, inside) in CALIBRATION.items():
        others = [a for a in areas if a.area_type != area_type]
        for group, n in ((by_type[area_type], inside), (others, total - inside)):
            for a, c in zip(group, _split(n, [population[a.id] for a in group], rng), strict=True):
                counts[a.id][key] = c
    incidents, activities, villages = [], [], []
    arrival = {}
    for a in areas:
        pop, t, c = population[a.id], a.area_type, counts[a.id]
        noise = {k: rng.lognormvariate(0, 0.3) for k in RATES}
        for kind in ("accident", "security_case"):
            c[kind] = _poisson(RATES[kind][t] * pop / 1e4 * noise[kind], rng)
        fatal = _fatal_accidents(c["deaths"], rng)
        c["accident"] = max(c["accident"], len(fatal))
        for i in range(c["accident"] + c["security_case"] + c["congestion_alarm"] + c["disorder_complaint"]):
            if i < c["accident"]:
                kind, deaths = "accident", fatal[i] if i < len(fatal) else 0
                injuries = _poisson(0.7, rng) if deaths == 0 else _poisson(1.0, rng)
            else:
                kind, deaths, injuries = ("security_case" if i < c["accident"] + c["security_case"] else
                                          "congestion_alarm" if i < c["accident"] + c["security_case"] +
                                          c["congestion_alarm"] else "disorder_complaint"), 0, 0
            occurred = clock.moment()
            incident = {"external_id": f"demo-{tag}-{a.id}-{i}", "kind": kind, "station_id": a.id,
                        "occurred_at": occurred,
                        "severity": {"deaths": deaths, "injuries": injuries}}
            if kind == "accident":
                incident["parties"] = _parties(rng, t, deaths, injuries)
            incidents.append(incident)
        activities += _activities(a, pop, noise, rng, clock, tag)
        villages += [{"id": f"{a.id}-v{n:02d}", "name": village_name(a.id[3:], n), "station_id": a.id,
                      "residents": int(pop / 20 * rng.lognormvariate(0, 0.4))} for n in range(1, rng.randint(12, 28))]
        arrival[a.id] = ARRIVAL_RATE.get(a.id, min(0.75, max(0.35, rng.gauss(0.55, 0.08))))
        tick()
    return units, villages, incidents, activities, _calibrated_arrivals(arrival, incidents)


def _fatal_accidents(deaths: int, rng: random.Random) -> list[int]:
    """Deaths per fatal accident (mostly one, sometimes two)."""
    out = []
    while deaths > 0:
        n = 2 if deaths > 1 and rng.random() < 0.08 else 1
        out.append(n)
        deaths -= n
    return out


def _activities(a: StationArea, pop: int, noise: dict[str, float], rng: random.Random, clock: _Clock,
                tag: str) -> list[dict]:
    """Daily returns: violations by type, education sessions, weekly hazard remediation."""
    t, out = a.area_type, []
    violations = _poisson(RATES["violation"][t] * pop / 1e4 * noise["violation"], rng)
    drunk = _poisson(violations * RATES["drunk_share"][t] * noise["drunk_share"], rng)
    people = _poisson(RATES["education"][t] * pop / 1e4 * noise["education"], rng)
    found = _poisson(RATES["hazards_per_km2"][t] * a.area_km2 * noise["hazards_per_km2"], rng)
    rate = min(1.0, max(0.5, rng.gauss(0.86, 0.07)))
    parts = [("violation", violations - drunk, 150, None), ("violation", drunk, 30, "drunk_driving"),
             ("education", people, 120, None), ("hazard_remediation", found, 52, None)]
    for kind, total, slots, vtype in parts:
        for n, count in enumerate(_split(max(total, 0), [1.0] * slots, rng)):
            if count == 0:
                continue
            record = {"external_id": f"demo-{tag}-{a.id}-{kind}-{vtype or 'all'}-{n}", "kind": kind, "station_id": a.id,
                      "occurred_at": clock.moment(), "count": count, "details": {}}
            if kind == "violation":
                record["details"] = {"type": vtype or rng.choice(VIOLATION_TYPES)}
            if kind == "hazard_remediation":
                record["details"] = {"found": count}
                record["count"] = round(count * rate) if n % 5 else count  # some weeks everything is fixed
            out.append(record)
    return out


def _calibrated_arrivals(arrival: dict[str, float], incidents: list[dict]) -> dict[str, float]:
    """Scale ordinary stations so the incident-weighted district rate is the article's 56.4 %."""
    n = {s: 0 for s in arrival}
    for r in incidents:
        n[r["station_id"]] += 1
    fixed = {s for s in ARRIVAL_RATE if s in arrival}
    fixed_hits = sum(arrival[s] * n[s] for s in fixed)
    free = sum(arrival[s] * n[s] for s in arrival if s not in fixed)
    target = ARRIVAL_RATE["district"] * sum(n.values()) - fixed_hits
    factor = target / free if free else 1.0
    return {s: (r if s in fixed else round(min(0.79, r * factor), 4)) for s, r in arrival.items()}


def features_of(district_units: list[dict], incidents: list[dict], activities: list[dict],
                period: str) -> dict[str, dict[str, float]]:
    """Each station's features over the period's window, with the service's own aggregation."""
    months = set(window_months(period))
    tallies: dict[str, dict[str, float]] = {u["id"]: {} for u in district_units if u["kind"] == "station"}
    for r in incidents:
        if month_of(r["occurred_at"], TIMEZONE) in months:
            add_tallies(tallies[r["station_id"]], incident_tallies(r["kind"], deaths=r["severity"]["deaths"],
                                                                   injuries=r["severity"]["injuries"]))
    for r in activities:
        if month_of(r["occurred_at"], TIMEZONE) in months:
            add_tallies(tallies[r["station_id"]], activity_tallies(r["kind"], count=r["count"], details=r["details"]))
    stations = {u["id"]: u for u in district_units if u["kind"] == "station"}
    return {sid: features_from_tallies(t, population=stations[sid]["population"], area_km2=stations[sid]["area_km2"])
            for sid, t in tallies.items()}


def _classifies_as_the_article(units: list[dict], features: dict[str, dict[str, float]]) -> bool:
    expected = {"urban": "basic", "rural": "deep", "fringe": "full"}
    ids = sorted(features)
    result = classify(ids, [features[i] for i in ids])
    types = {u["id"]: u.get("area_type") for u in units}
    return all(a.mode == expected[types[a.station_id]] for a in result.assignments)


def generate(seed: int = 2021, *, anchor: dt.datetime | None = None,
             tick: Callable[[], None] = lambda: None, max_draws: int = 20) -> District:
    """The district for a seed, its records anchored at `anchor` (default: now): the 12 months up to it.

    A draw whose stations would not classify as the article reports (6 urban basic, 15 rural deep,
    5 fringe full) is rejected and the next derived seed drawn; `District.draws` says how many it took.
    """
    anchor = (anchor or dt.datetime.now(ZoneInfo(TIMEZONE))).astimezone(ZoneInfo(TIMEZONE))
    period = month_of(anchor, TIMEZONE)
    areas = station_areas()
    for draw in range(max_draws):
        units, villages, incidents, activities, arrival = _draw(seed * 1000 + draw, anchor, areas, tick)
        features = features_of(units, incidents, activities, period)
        if _classifies_as_the_article(units, features):
            incidents.sort(key=lambda r: r["occurred_at"])
            activities.sort(key=lambda r: r["occurred_at"])
            return District(seed, anchor, period, units, villages, incidents, activities, features, arrival, draw + 1)
    raise RuntimeError(f"no draw in {max_draws} for seed {seed} classified as the article reports")
