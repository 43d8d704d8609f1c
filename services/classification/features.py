"""From records to features: monthly tallies per station, the trailing 12-month window, per-capita rates.

The same functions serve the service (tallies kept from events) and the demo generator (tallies from
the records it generates), so features computed either way agree.
"""
from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from zoneinfo import ZoneInfo

from shared.errors import Invalid

WINDOW_MONTHS = 12
INCIDENT_TALLIES = {  # incident kind → tally name
    "accident": "accidents", "congestion_alarm": "congestion_alarms", "disorder_complaint": "disorder_complaints",
    "security_case": "security_cases",
}
DRUNK_TYPES = ("drunk_driving", "drugged_driving")
PERIOD = re.compile(r"^\d{4}(-(0[1-9]|1[0-2]))?$")


def incident_tallies(kind: str, *, deaths: int = 0, injuries: int = 0) -> dict[str, float]:
    """What one reported incident adds to its station's month."""
    out: dict[str, float] = {}
    if kind in INCIDENT_TALLIES:
        out[INCIDENT_TALLIES[kind]] = 1.0
    if deaths:
        out["deaths"] = float(deaths)
    if injuries:
        out["injuries"] = float(injuries)
    return out


def activity_tallies(kind: str, *, count: float = 1.0, details: Mapping[str, object] | None = None) -> dict[str, float]:
    """What one activity record adds: violations (drunk/drugged via details.type), education (count = people),
    hazard remediation (count remediated, details.found found)."""
    details = details or {}
    if kind == "violation":
        out = {"violations": float(count)}
        if details.get("type") in DRUNK_TYPES:
            out["drunk_driving"] = float(count)
        return out
    if kind == "education":
        return {"education_people": float(count)}
    if kind == "hazard_remediation":
        found = details.get("found")
        found_n = float(found) if isinstance(found, int | float) and not isinstance(found, bool) else float(count)
        return {"hazards_found": max(found_n, 0.0), "hazards_remediated": float(count)}
    return {}


def month_of(moment: dt.datetime, timezone: str) -> str:
    """The local calendar month (YYYY-MM) of a timestamp."""
    return moment.astimezone(ZoneInfo(timezone)).strftime("%Y-%m")


def window_months(period: str) -> list[str]:
    """The months a period covers: `YYYY` the calendar year, `YYYY-MM` the 12 months ending with that month."""
    if not PERIOD.match(period):
        raise Invalid(f"period {period!r} is neither YYYY nor YYYY-MM")
    if len(period) == 4:
        return [f"{period}-{m:02d}" for m in range(1, 13)]
    year, month = int(period[:4]), int(period[5:])
    months = []
    for back in range(WINDOW_MONTHS - 1, -1, -1):
        y, m = divmod(year * 12 + month - 1 - back, 12)
        months.append(f"{y:04d}-{m + 1:02d}")
    return months


def add_tallies(total: dict[str, float], more: Mapping[str, float]) -> None:
    """Add tallies into `total` in place."""
    for name, value in more.items():
        total[name] = total.get(name, 0.0) + value


def sum_tallies(parts: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """The sum of several tallies."""
    total: dict[str, float] = {}
    for part in parts:
        add_tallies(total, part)
    return total


def features_from_tallies(tallies: Mapping[str, float], *, population: int | None,
                          area_km2: float | None) -> dict[str, float]:
    """The ten canonical features (DOMAIN.md §3) from a station's tallies over the window."""
    if not population or population <= 0:
        raise Invalid("the station has no population: per-capita features cannot be computed")
    if not area_km2 or area_km2 <= 0:
        raise Invalid("the station has no area: per-km² features cannot be computed")
    t = {name: float(tallies.get(name, 0.0)) for name in (
        "security_cases", "accidents", "deaths", "congestion_alarms", "violations", "drunk_driving",
        "disorder_complaints", "hazards_found", "hazards_remediated", "education_people")}
    per_10k, per_100k = 1e4 / population, 1e5 / population
    found = t["hazards_found"]
    return {
        "security_cases_per_10k": t["security_cases"] * per_10k,
        "accidents_per_10k": t["accidents"] * per_10k,
        "deaths_per_100k": t["deaths"] * per_100k,
        "congestion_alarms_per_10k": t["congestion_alarms"] * per_10k,
        "violations_per_10k": t["violations"] * per_10k,
        "drunk_driving_per_10k": t["drunk_driving"] * per_10k,
        "disorder_complaints_per_10k": t["disorder_complaints"] * per_10k,
        "hazards_per_km2": found / area_km2,
        # nothing found means nothing left open: counted as fully remediated
        "hazard_remediation_rate": min(t["hazards_remediated"] / found, 1.0) if found > 0 else 1.0,
        "education_contacts_per_10k": t["education_people"] * per_10k,
    }
