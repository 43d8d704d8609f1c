"""UK STATS19 (DfT road-casualty open data, 2024 schema) → jiaozhi incidents and villages, via the public API.

Usage: python -m importers.stats19 DATA_DIR [--base-url http://127.0.0.1:8000] [--username admin]
Mapping choices and fields without an equivalent: docs/TRACING.md ("STATS19").
"""
from __future__ import annotations

import csv
import datetime as dt
from collections import defaultdict
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from importers.client import Mapped, coordinates

LONDON = ZoneInfo("Europe/London")
MOTORCYCLES = {"2", "3", "4", "5", "23", "97"}
KIND = {"8": "car", "9": "car", "10": "bus", "11": "bus", "19": "goods_vehicle", "20": "goods_vehicle",
        "21": "yellow_plate_truck", "98": "goods_vehicle"} | {code: "motorcycle" for code in MOTORCYCLES}
LIGHTING = {"1": "daylight", "4": "lit", "5": "unlit", "6": "unlit"}
SIGNALLED = {"2"}
UNSIGNALLED = {"1", "3", "4"}


def _int(value: str) -> int | None:
    try:
        number = int(float(value))
    except (TypeError, ValueError):
        return None
    return number if number >= 0 else None


def _lsoa(value: str) -> str | None:
    return f"lsoa-{value}" if value and value not in ("-1", "NULL") else None


def occurred_at(row: dict[str, str]) -> dt.datetime:
    """Date (dd/mm/yyyy) and time (HH:MM) as local UK time with its offset."""
    day = dt.datetime.strptime(f"{row['date']} {row['time']}", "%d/%m/%Y %H:%M")
    return day.replace(tzinfo=LONDON)


def junction(row: dict[str, str]) -> str | None:
    """none / signalled / unsignalled from junction_detail and junction_control."""
    detail, control = row.get("junction_detail", "-1"), row.get("junction_control", "-1")
    if detail == "0":
        return "none"
    if detail in ("-1", "99", "18"):  # unknown, or a private drive (not a road junction)
        return None
    return "signalled" if control in SIGNALLED else "unsignalled" if control in UNSIGNALLED else None


def vehicle_party(vehicle: dict[str, str], driver_casualty: dict[str, str] | None) -> dict[str, Any]:
    """A vehicle and its driver or rider as one party."""
    vtype = vehicle.get("vehicle_type", "-1")
    escooter = vehicle.get("escooter_flag") == "1"
    kind = "other" if escooter else KIND.get(vtype, "other")
    role = "rider" if vtype in MOTORCYCLES or vtype in ("1", "16", "22") or escooter else "driver"
    person: dict[str, Any] = {"age": _int(vehicle.get("age_of_driver", ""))}
    village = _lsoa(vehicle.get("lsoa_of_driver", ""))
    if village is None and driver_casualty is not None:
        village = _lsoa(driver_casualty.get("lsoa_of_casualty", ""))
    if village:
        person["village_id"] = village
    return {"role": role, "person": person, "vehicle": {"kind": kind}}


def incident(row: dict[str, str], vehicles: list[dict[str, str]],
             casualties: list[dict[str, str]]) -> tuple[dict[str, Any] | None, str | None]:
    """(incident body, None) or (None, rejection reason) for one collision."""
    if (point := coordinates(row, "latitude", "longitude")) is None:
        return None, "no coordinates"
    lat, lon = point
    try:
        when = occurred_at(row)
    except (KeyError, ValueError):
        return None, "no valid date and time"
    drivers = {c["vehicle_reference"]: c for c in casualties if c.get("casualty_class") == "1"}
    parties = [vehicle_party(v, drivers.get(v["vehicle_reference"])) for v in vehicles]
    for casualty in casualties:
        if casualty.get("casualty_class") in ("2", "3"):
            person: dict[str, Any] = {"age": _int(casualty.get("age_of_casualty", ""))}
            if village := _lsoa(casualty.get("lsoa_of_casualty", "")):
                person["village_id"] = village
            parties.append({"role": "passenger" if casualty["casualty_class"] == "2" else "pedestrian",
                            "person": person})
    deaths = sum(1 for c in casualties if c.get("casualty_severity") == "1")
    return {
        "external_id": f"stats19-{row['collision_index']}", "kind": "accident", "occurred_at": when.isoformat(),
        "location": {"lat": lat, "lon": lon}, "severity": {"deaths": deaths, "injuries": len(casualties) - deaths},
        "parties": parties[:50], "lighting": LIGHTING.get(row.get("light_conditions", "")),
        "junction": junction(row), "hit_and_run": False, "school_zone": False,
    }, None


def read(data_dir: Path) -> tuple[list[tuple[str, dict[str, Any]]], list[str], dict[str, dict[str, Any]]]:
    """(incidents to send, rejection reasons, villages by id) from the three CSV files."""
    vehicles: dict[str, list[dict[str, str]]] = defaultdict(list)
    casualties: dict[str, list[dict[str, str]]] = defaultdict(list)
    with open(data_dir / "vehicles.csv", newline="", encoding="utf-8") as f:
        for v in csv.DictReader(f):
            vehicles[v["collision_index"]].append(v)
    with open(data_dir / "casualties.csv", newline="", encoding="utf-8") as f:
        for c in csv.DictReader(f):
            casualties[c["collision_index"]].append(c)
    mapped = Mapped()
    with open(data_dir / "accidents.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            body, reason = incident(row, vehicles.get(row["collision_index"], []),
                                    casualties.get(row["collision_index"], []))
            mapped.add(body, reason, lambda village: village.removeprefix("lsoa-"))
    return mapped.result()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Import a STATS19 folder through the gateway and print the summary."""
    from importers.run import cli

    return cli("STATS19", __doc__, read, argv)


if __name__ == "__main__":
    main()
