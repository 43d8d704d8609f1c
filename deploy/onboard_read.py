"""Reading an onboarding folder and checking all of it before anything is sent (`jiaozhi onboard DIR`).

The folder (docs/ONBOARDING.md; `jiaozhi onboard --template DIR` writes an example):

- `units.geojson`: a FeatureCollection, one feature per unit. `properties`: `id`, `name`, `kind` (station by
  default; squadron, case_squadron, order_squadron, foundation_squadron, brigade), `parent_id`, and for
  stations `area_type` (urban, fringe, rural), `population`, `area_km2` and optionally `villages` (a list of
  `{id, name, kind: village|community, residents}`). A station's geometry is its area (Polygon or
  MultiPolygon, lon/lat); other units have none (`null`).
- `accounts.csv`: `username,role,unit` — officers (admin, command, squadron, station) and platform clients
  (role `platform`); a station or squadron account names its unit.
- `features.csv` (optional): `station_id,period,<feature>…`, as `POST /api/v1/classification/features` takes it.
- `history.csv` (optional): `station_id,month,measure,value` — monthly figures from before the system (a year of
  them gives the year-on-year indicators a base), as `PUT /api/v1/assessment/history` takes them.
- `road-sections.geojson`, `hazards.csv`, `enterprises.csv` (optional): registries (deploy/onboard_registries.py).

Every problem is collected as (file, row, reason) — the row is the CSV line or the feature's number — so one
run reports them all.
"""
from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shapely.geometry import shape
from shapely.validation import explain_validity

from deploy.onboard_registries import read_registries

UNITS_FILE, ACCOUNTS_FILE, FEATURES_FILE, HISTORY_FILE = "units.geojson", "accounts.csv", "features.csv", "history.csv"
UNIT_KINDS = ("station", "squadron", "case_squadron", "order_squadron", "foundation_squadron", "brigade")
SQUADRON_KINDS = UNIT_KINDS[1:5]
AREA_TYPES = ("urban", "fringe", "rural")
ROLES = ("admin", "command", "squadron", "station", "platform")
FEATURES = ("security_cases_per_10k", "accidents_per_10k", "deaths_per_100k", "congestion_alarms_per_10k",
            "violations_per_10k", "drunk_driving_per_10k", "disorder_complaints_per_10k", "hazards_per_km2",
            "hazard_remediation_rate", "education_contacts_per_10k")
KEY = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
PERIOD = re.compile(r"^\d{4}(-(0[1-9]|1[0-2]))?$")
MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
MAX_MEASURE = 1e9
UNIT_FIELDS = ("name", "kind", "parent_id", "area_type", "population", "area_km2")


@dataclass(frozen=True)
class Problem:
    """Something in the folder that stops the onboarding."""

    file: str
    row: int | None  # CSV line (the header is line 1) or feature number (from 1); None: the whole file
    reason: str


@dataclass
class District:
    """What the folder asks for, once it is known to be valid."""

    units: list[dict[str, Any]] = field(default_factory=list)  # parents before children; `area` for stations
    villages: list[dict[str, Any]] = field(default_factory=list)
    accounts: list[dict[str, str | None]] = field(default_factory=list)  # username, kind, role, unit_id
    features: dict[tuple[str, str], dict[str, float]] = field(default_factory=dict)  # (station, period) → values
    history: dict[tuple[str, str, str], float] = field(default_factory=dict)  # (station, month, measure) → value
    registries: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # road-sections, hazards, enterprises
    account_lines: dict[str, int] = field(default_factory=dict)  # username → its line in accounts.csv

    @property
    def stations(self) -> list[str]:
        return [u["id"] for u in self.units if u["kind"] == "station"]


def read_folder(folder: Path, known_units: dict[str, str] | None = None) -> tuple[District, list[Problem]]:
    """The district a folder describes and every problem found in it (`known_units`: id → kind of the units the
    system already has, which parents and accounts may name too)."""
    district, problems = District(), []
    known = dict(known_units or {})
    if not (folder / UNITS_FILE).is_file():
        problems.append(Problem(UNITS_FILE, None, "missing: the district's units are required"))
    else:
        district.units, district.villages = _units(folder / UNITS_FILE, known, problems)
        known |= _named(folder / UNITS_FILE)  # a unit with a problem of its own is not "unknown" elsewhere too
    if (folder / ACCOUNTS_FILE).is_file():
        district.accounts = _accounts(folder / ACCOUNTS_FILE, known, problems, district.account_lines)
    else:
        problems.append(Problem(ACCOUNTS_FILE, None, "missing: at least the station accounts are needed"))
    if (folder / FEATURES_FILE).is_file():
        district.features = _features(folder / FEATURES_FILE, known, problems)
    if (folder / HISTORY_FILE).is_file():
        district.history = _history(folder / HISTORY_FILE, known, problems)
    district.registries = read_registries(folder, problems, _rows, Problem)
    return district, problems


def _named(path: Path) -> dict[str, str]:
    """id → kind of every feature that names itself, valid or not."""
    try:
        features = json.loads(path.read_text(encoding="utf-8")).get("features") or []
        return {f["properties"]["id"]: f["properties"].get("kind", "station") for f in features
                if isinstance(f.get("properties", {}).get("id"), str)}
    except (ValueError, AttributeError, TypeError):
        return {}


def _units(path: Path, known: dict[str, str], problems: list[Problem]) -> tuple[list[dict], list[dict]]:
    name = path.name
    try:
        collection = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        problems.append(Problem(name, None, f"not valid JSON: {exc}"))
        return [], []
    features = collection.get("features") if isinstance(collection, dict) else None
    if not isinstance(collection, dict) or collection.get("type") != "FeatureCollection" \
            or not isinstance(features, list) or not features:
        problems.append(Problem(name, None, "expected a GeoJSON FeatureCollection with at least one feature"))
        return [], []
    units: dict[str, dict] = {}
    rows: dict[str, int] = {}
    villages: list[dict] = []
    village_rows: dict[str, int] = {}
    for number, feature in enumerate(features, start=1):
        unit = _unit(feature, number, name, problems)
        if unit is None:
            continue
        if unit["id"] in units:
            problems.append(Problem(name, number, f"unit {unit['id']} is already feature {rows[unit['id']]}"))
            continue
        units[unit["id"]], rows[unit["id"]] = unit, number
        for village in unit.pop("villages"):
            if village["id"] in village_rows:
                problems.append(Problem(name, number, f"village {village['id']} is also in feature "
                                                      f"{village_rows[village['id']]}"))
                continue
            village_rows[village["id"]] = number
            villages.append(village)
    kinds = {**known, **{i: u["kind"] for i, u in units.items()}}
    for unit_id, unit in units.items():
        parent = unit["parent_id"]
        if parent is None:
            continue
        if parent not in kinds:
            problems.append(Problem(name, rows[unit_id], f"unit {unit_id}: unknown parent {parent} (neither in this "
                                                         "file nor in the system)"))
        elif unit["kind"] == "station" and kinds[parent] not in SQUADRON_KINDS:
            problems.append(Problem(name, rows[unit_id], f"station {unit_id}: its parent {parent} is a "
                                                         f"{kinds[parent]}, not a squadron"))
        elif kinds[parent] == "station":
            problems.append(Problem(name, rows[unit_id], f"unit {unit_id}: a station ({parent}) cannot be a parent"))
    if cycle := _cycle(units):
        problems.append(Problem(name, rows[cycle[0]], f"parent links form a loop: {' → '.join(cycle)}"))
    return _parents_first(units), villages


def _unit(feature: Any, number: int, name: str, problems: list[Problem]) -> dict | None:
    """One feature as a unit (with its villages), or None after recording why not."""
    props = feature.get("properties") if isinstance(feature, dict) else None
    if not isinstance(props, dict):
        problems.append(Problem(name, number, "a feature needs properties"))
        return None
    found: list[str] = []
    unit_id = props.get("id")
    if not isinstance(unit_id, str) or not KEY.match(unit_id):
        found.append("id must be 1–64 letters, digits, '_', '.', '-'")
    label = f"unit {unit_id}: " if isinstance(unit_id, str) else ""
    kind = props.get("kind", "station")
    if kind not in UNIT_KINDS:
        found.append(f"kind must be one of {', '.join(UNIT_KINDS)}")
    if not isinstance(props.get("name"), str) or not 1 <= len(props["name"]) <= 200:
        found.append("name must be 1–200 characters")
    parent = props.get("parent_id")
    if parent is not None and not isinstance(parent, str):
        found.append("parent_id must be a unit id")
    area_type, population, area_km2 = props.get("area_type"), props.get("population"), props.get("area_km2")
    if area_type is not None and area_type not in AREA_TYPES:
        found.append(f"area_type must be one of {', '.join(AREA_TYPES)}")
    if population is not None and (not isinstance(population, int) or isinstance(population, bool)
                                   or population < 0):
        found.append("population must be a whole number ≥ 0")
    if area_km2 is not None and (not isinstance(area_km2, int | float) or isinstance(area_km2, bool)
                                 or not math.isfinite(area_km2) or area_km2 <= 0):
        found.append("area_km2 must be a number > 0")
    geometry = feature.get("geometry")
    if kind == "station":
        found += _area_problems(geometry)
    elif geometry is not None:
        found.append(f"only stations have an area; a {kind} has geometry null")
    villages = _villages(props.get("villages"), unit_id, kind, found)
    unknown = set(props) - {"id", "kind", "villages", *UNIT_FIELDS}
    if unknown:
        found.append(f"unknown properties: {', '.join(sorted(unknown))}")
    for reason in found:
        problems.append(Problem(name, number, label + reason))
    if found:
        return None
    unit = {"id": unit_id, "name": props["name"], "kind": kind, "parent_id": parent, "area_type": area_type,
            "population": population, "area_km2": float(area_km2) if area_km2 is not None else None,
            "villages": villages}
    if kind == "station":
        unit["area"] = geometry
    return unit


def _area_problems(geometry: Any) -> list[str]:
    if not isinstance(geometry, dict) or geometry.get("type") not in ("Polygon", "MultiPolygon"):
        return ["a station's geometry must be a Polygon or MultiPolygon (its area)"]
    try:
        polygons = geometry["coordinates"] if geometry["type"] == "MultiPolygon" else [geometry["coordinates"]]
        for rings in polygons:
            for ring in rings:
                if len(ring) < 4 or list(ring[0]) != list(ring[-1]):
                    return ["broken polygon: a ring must be closed (first point = last) with at least 4 points"]
        polygon = shape(geometry)
    except Exception as exc:  # noqa: BLE001 - shapely raises many kinds on malformed coordinates
        return [f"broken polygon: {type(exc).__name__}: {exc}"[:200]]
    if polygon.is_empty:
        return ["broken polygon: empty"]
    if not polygon.is_valid:
        return [f"broken polygon: {explain_validity(polygon)}"]
    minx, miny, maxx, maxy = polygon.bounds
    if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        return ["polygon outside lon/lat range (coordinates are longitude, latitude)"]
    return []


def _villages(value: Any, unit_id: Any, kind: str, found: list[str]) -> list[dict]:
    if value is None:
        return []
    if kind != "station" or not isinstance(value, list):
        found.append("villages must be a list, on a station")
        return []
    villages = []
    for i, village in enumerate(value, start=1):
        ok = isinstance(village, dict) and isinstance(village.get("id"), str) and KEY.match(village["id"]) \
            and village.get("kind", "village") in ("village", "community") \
            and set(village) <= {"id", "name", "kind", "residents"} \
            and (village.get("residents") is None or (isinstance(village["residents"], int)
                                                      and village["residents"] >= 0))
        if not ok:
            found.append(f"village {i}: needs an id (letters, digits, '_', '.', '-'), optionally name, "
                         "kind (village or community) and residents ≥ 0")
            continue
        villages.append({"id": village["id"], "name": village.get("name"), "kind": village.get("kind", "village"),
                         "residents": village.get("residents"), "station_id": unit_id})
    return villages


def _cycle(units: dict[str, dict]) -> list[str] | None:
    for start in units:
        seen, node = [start], units[start]["parent_id"]
        while node in units:
            if node in seen:
                return [*seen[seen.index(node):], node]
            seen.append(node)
            node = units[node]["parent_id"]
    return None


def _parents_first(units: dict[str, dict]) -> list[dict]:
    ordered: list[dict] = []
    placed: set[str] = set()

    def place(unit_id: str, depth: int = 0) -> None:
        if unit_id in placed or unit_id not in units or depth > len(units):
            return
        if (parent := units[unit_id]["parent_id"]) is not None:
            place(parent, depth + 1)
        placed.add(unit_id)
        ordered.append(units[unit_id])

    for unit_id in units:
        place(unit_id)
    return ordered


def _rows(path: Path, required: tuple[str, ...], problems: list[Problem]) -> list[tuple[int, dict[str, str]]]:
    """A CSV's rows with their line numbers; a missing column is one problem for the file."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        problems.append(Problem(path.name, None, "not UTF-8"))
        return []
    reader = csv.DictReader(text.splitlines())
    columns = [c.strip() for c in reader.fieldnames or []]
    if missing := [c for c in required if c not in columns]:
        problems.append(Problem(path.name, 1, f"missing column(s): {', '.join(missing)}"))
        return []
    rows = []
    for row in reader:  # cells beyond the header (key None) are dropped; a missing cell reads as empty
        cells = {k.strip(): (v or "").strip() for k, v in row.items() if k is not None and not isinstance(v, list)}
        if any(cells.values()):
            rows.append((reader.line_num, cells))
    return rows


def _accounts(path: Path, units: dict[str, str], problems: list[Problem],
              lines: dict[str, int]) -> list[dict[str, str | None]]:
    accounts = []
    for line, row in _rows(path, ("username", "role", "unit"), problems):
        username, role, unit = row["username"], row["role"], row["unit"] or None
        reasons = []
        if not USERNAME.match(username):
            reasons.append("username must be 1–64 letters, digits, '_', '.', '@', '-'")
        elif username in lines:
            reasons.append(f"duplicate username {username} (also line {lines[username]})")
        if role not in ROLES:
            reasons.append(f"role must be one of {', '.join(ROLES)}")
        elif role in ("station", "squadron"):
            if unit is None:
                reasons.append(f"a {role} account needs its unit")
            elif unit not in units:
                reasons.append(f"unknown unit {unit}")
            elif (role == "station") != (units[unit] == "station") or (role == "squadron"
                                                                       and units[unit] not in SQUADRON_KINDS):
                reasons.append(f"unit {unit} is a {units[unit]}, not a {role}")
        elif unit is not None:
            reasons.append(f"{role} accounts have no unit (leave the column empty)")
        problems += [Problem(path.name, line, r) for r in reasons]
        lines.setdefault(username, line)
        if not reasons:
            accounts.append({"username": username, "kind": "client" if role == "platform" else "user", "role": role,
                             "unit_id": unit})
    return accounts


def _features(path: Path, units: dict[str, str], problems: list[Problem]) -> dict[tuple[str, str], dict[str, float]]:
    out: dict[tuple[str, str], dict[str, float]] = {}
    for line, row in _rows(path, ("station_id", "period", *FEATURES), problems):
        station, period = row["station_id"], row["period"]
        reasons = []
        if units.get(station) != "station":
            reasons.append(f"unknown station {station}")
        if not PERIOD.match(period):
            reasons.append("period must be YYYY or YYYY-MM")
        values = {}
        for name in FEATURES:
            try:
                values[name] = float(row[name])
                if not math.isfinite(values[name]) or values[name] < 0:
                    raise ValueError
            except ValueError:
                reasons.append(f"{name} must be a number ≥ 0")
        if (station, period) in out:
            reasons.append(f"{station} {period} appears twice")
        problems += [Problem(path.name, line, r) for r in reasons]
        if not reasons:
            out[(station, period)] = values
    return out


def _history(path: Path, units: dict[str, str], problems: list[Problem]) -> dict[tuple[str, str, str], float]:
    from services.assessment.history import ALIASES, known_measures  # the names the service takes

    names = known_measures()
    out: dict[tuple[str, str, str], float] = {}
    lines: dict[tuple[str, str, str], int] = {}
    for line, row in _rows(path, ("station_id", "month", "measure", "value"), problems):
        station, month, measure = row["station_id"], row["month"], ALIASES.get(row["measure"], row["measure"])
        reasons = []
        if units.get(station) != "station":
            reasons.append(f"unknown station {station}")
        if not MONTH.match(month):
            reasons.append("month must be YYYY-MM")
        if row["measure"] not in names:
            reasons.append(f"unknown measure {row['measure']} (e.g. accidents, deaths, injuries, education)")
        try:
            value = float(row["value"])
            if not math.isfinite(value) or not 0 <= value <= MAX_MEASURE:
                raise ValueError
        except ValueError:
            reasons.append(f"value must be a number from 0 to {MAX_MEASURE:.0e}")
        key = (station, month, measure)
        if key in lines:
            reasons.append(f"{station} {month} {measure} is also on line {lines[key]}")
        problems += [Problem(path.name, line, r) for r in reasons]
        lines.setdefault(key, line)
        if not reasons:
            out[key] = value
    return out
