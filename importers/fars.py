"""US FARS (NHTSA Fatality Analysis Reporting System; Arizona 2012–2016 extract) → jiaozhi incidents and
villages (driver ZIP codes), via the public API. Vehicle and person rows are kept only for accident ids in
accident.csv (the extract's person/vehicle files cover more crashes).

Usage: python -m importers.fars DATA_DIR [--base-url http://127.0.0.1:8000] [--username admin]
Mapping choices and fields without an equivalent: docs/TRACING.md ("FARS").
"""
from __future__ import annotations

import csv
import datetime as dt
from collections import defaultdict
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from importers.client import Mapped, coordinates

PHOENIX = ZoneInfo("America/Phoenix")
LICENCE = {"0": "none", "1": "suspended", "2": "suspended", "3": "expired", "4": "none", "6": "valid", "7": "valid"}
LIGHTING = {"1": "daylight", "2": "unlit", "3": "lit"}
HELMET = {"5": True, "16": True, "19": True, "17": False}
SIGNALS = {str(code) for code in range(1, 10)}
NOT_SIGNALS = {"0", "20", "21", "23", "28", "40", "50", "65"}


def _int(value: str | None, unknown: tuple[int, ...] = ()) -> int | None:
    try:
        number = int(float(value or ""))
    except ValueError:
        return None
    return None if number in unknown else number


def vehicle_kind(row: dict[str, str]) -> str:
    """car / bus / goods_vehicle / yellow_plate_truck / engineering_truck / motorcycle / other from BODY_TYP, GVWR."""
    body = _int(row.get("BODY_TYP")) or 0
    if body <= 49 and body not in (39,):
        return "car"
    if 50 <= body <= 59:
        return "bus"
    if 60 <= body <= 79:
        return "yellow_plate_truck" if row.get("GVWR") == "3" or body in (63, 66) else "goods_vehicle"
    if 80 <= body <= 89:
        return "motorcycle"
    if body == 93:
        return "engineering_truck"
    return "other"


def occurred_at(row: dict[str, str]) -> tuple[dt.datetime, bool]:
    """Local Arizona time (no daylight saving); (time, time_known). An unknown hour is taken as 12:00."""
    hour, minute = _int(row["HOUR"], (99,)), _int(row["MINUTE"], (99,))
    known = hour is not None and hour < 24
    when = dt.datetime(int(row["YEAR"]), int(row["MONTH"]), int(row["DAY"]), hour if known else 12,
                       minute if known and minute is not None and minute < 60 else 0, tzinfo=PHOENIX)
    return when, known


def incident(row: dict[str, str], vehicles: list[dict[str, str]],
             persons: list[dict[str, str]]) -> tuple[dict[str, Any] | None, str | None]:
    """(incident body, None) or (None, rejection reason) for one crash."""
    if (point := coordinates(row, "LATITUDE", "LONGITUDE")) is None:
        return None, "no coordinates"
    lat, lon = point
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None, "coordinates not reported (FARS 77.7777/88.8888/99.9999 codes)"
    try:
        when, _ = occurred_at(row)
    except (KeyError, ValueError):
        return None, "no valid date"
    by_vehicle = {v["VEH_NO"]: v for v in vehicles}
    parties: list[dict[str, Any]] = []
    for p in sorted(persons, key=lambda p: (int(p["VEH_NO"]), int(p["PER_NO"]))):
        person: dict[str, Any] = {"age": _int(p.get("AGE"), (998, 999))}
        person["drunk"] = p.get("DRINKING") == "1"
        person["drugged"] = p.get("DRUGS") == "1"
        per_typ = p.get("PER_TYP")
        vehicle_row = by_vehicle.get(p["VEH_NO"])
        if per_typ == "1" and vehicle_row is not None:
            kind = vehicle_kind(vehicle_row)
            person["drunk"] = person["drunk"] or vehicle_row.get("DR_DRINK") == "1"
            if status := LICENCE.get(vehicle_row.get("L_STATUS", "")):
                person["licence_status"] = status
            zip_code = vehicle_row.get("DR_ZIP", "")
            if zip_code.isdigit() and zip_code not in ("99997", "99998", "99999", "00000"):
                person["village_id"] = f"zip-{zip_code}"
            if kind == "motorcycle":
                person["helmet"] = HELMET.get(p.get("REST_USE", ""))
            parties.append({"role": "rider" if kind == "motorcycle" else "driver", "person": person,
                            "vehicle": {"kind": kind}})
        elif per_typ == "2" or per_typ == "9":
            if vehicle_row is not None and vehicle_kind(vehicle_row) == "motorcycle":
                person["helmet"] = HELMET.get(p.get("REST_USE", ""))
            parties.append({"role": "passenger", "person": person})
        elif per_typ == "6":  # bicyclist: a rider of a vehicle FARS does not list as a motor vehicle
            parties.append({"role": "rider", "person": person, "vehicle": {"kind": "other"}})
        else:  # pedestrians and other non-motorists
            parties.append({"role": "pedestrian", "person": person})
    injured = sum(1 for p in persons if p.get("INJ_SEV") in ("1", "2", "3"))
    junction = None
    if row.get("TYP_INT") == "1":
        junction = "none"
    elif row.get("TYP_INT") in {"2", "3", "4", "5", "6", "7", "10"}:
        controls = {v.get("VTRAFCON", "") for v in vehicles}
        junction = "signalled" if controls & SIGNALS else "unsignalled" if controls and controls <= NOT_SIGNALS \
            else None
    return {
        "external_id": f"fars-{row['accident_id']}", "kind": "accident", "occurred_at": when.isoformat(),
        "location": {"lat": lat, "lon": lon},
        "severity": {"deaths": _int(row.get("FATALS")) or 0, "injuries": injured},
        "parties": parties[:50], "lighting": LIGHTING.get(row.get("LGT_COND", "")), "junction": junction,
        "hit_and_run": any(v.get("HIT_RUN") == "1" for v in vehicles),
        "school_zone": any(v.get("VTRAFCON") == "23" for v in vehicles),
    }, None


def read(data_dir: Path) -> tuple[list[tuple[str, dict[str, Any]]], list[str], dict[str, dict[str, Any]]]:
    """(incidents to send, rejection reasons, villages by id) from accident, vehicle and person CSVs."""
    with open(data_dir / "accident.csv", newline="", encoding="utf-8") as f:
        crashes = list(csv.DictReader(f))
    wanted = {c["accident_id"] for c in crashes}
    vehicles: dict[str, list[dict[str, str]]] = defaultdict(list)
    persons: dict[str, list[dict[str, str]]] = defaultdict(list)
    for name, table in (("vehicle.csv", vehicles), ("person.csv", persons)):
        with open(data_dir / name, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                if row["accident_id"] in wanted:
                    table[row["accident_id"]].append(row)
    mapped = Mapped()
    for crash in crashes:
        body, reason = incident(crash, vehicles.get(crash["accident_id"], []), persons.get(crash["accident_id"], []))
        mapped.add(body, reason, lambda village: f"ZIP {village.removeprefix('zip-')}")
    return mapped.result()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Import a FARS folder through the gateway and print the summary."""
    from importers.run import cli

    return cli("FARS", __doc__, read, argv)


if __name__ == "__main__":
    main()
