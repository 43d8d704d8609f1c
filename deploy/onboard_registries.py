"""The optional registries of an onboarding folder: road sections, hazard points and enterprises (villages come
with their station in `units.geojson`). Checked with tracing's own input shapes before anything is sent, then
sent to `POST /api/v1/{registry}:batch` where new or different from what the system holds.

- `road-sections.geojson`: a FeatureCollection of LineStrings (or MultiLineStrings); `properties`: `id`, `name`,
  `lit`, `signalised`, `school_zone`, `speed_limit`.
- `hazards.csv`: `id,kind,description,lat,lon,status,road_section_id,found_at,remediated_at` (status open or
  remediated; times ISO 8601 with an offset; empty cells are absent).
- `enterprises.csv`: `id,name,inspection_rate,scrapping_rate,violation_clearing_rate,fleet` (rates 0–1; fleet:
  plates separated by `;`).
"""
from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from shapely.geometry import shape

FILES = {"road-sections": "road-sections.geojson", "hazards": "hazards.csv", "enterprises": "enterprises.csv"}
CSV_COLUMNS = {"hazards": ("id", "lat", "lon"), "enterprises": ("id",)}


def _models() -> dict[str, type[BaseModel]]:
    from services.tracing.schemas import EnterpriseIn, HazardIn, RoadSectionIn  # tracing's own input shapes

    return {"road-sections": RoadSectionIn, "hazards": HazardIn, "enterprises": EnterpriseIn}


def _raw(registry: str, path: Path, problems: list, rows_of: Any, problem: Any) -> list[tuple[int, dict]]:
    """(row, record as the API takes it) of one file, before the shape check."""
    if registry == "road-sections":
        try:
            collection = json.loads(path.read_text(encoding="utf-8"))
            features = collection["features"]
            assert collection.get("type") == "FeatureCollection" and isinstance(features, list)
        except (ValueError, KeyError, TypeError, AssertionError, UnicodeDecodeError):
            problems.append(problem(path.name, None, "expected a GeoJSON FeatureCollection of road sections"))
            return []
        return [(n, {**(f.get("properties") or {}), "geometry": f.get("geometry")} if isinstance(f, dict) else {})
                for n, f in enumerate(features, start=1)]
    out = []
    for line, row in rows_of(path, CSV_COLUMNS[registry], problems):
        record: dict[str, Any] = {k: v for k, v in row.items() if v != "" and k}
        if registry == "hazards":
            try:
                record["location"] = {"lat": float(record.pop("lat")), "lon": float(record.pop("lon"))}
            except (KeyError, ValueError):
                problems.append(problem(path.name, line, "lat and lon must be numbers"))
                continue
        elif "fleet" in record:
            record["fleet"] = [p.strip() for p in record["fleet"].split(";") if p.strip()]
        out.append((line, record))
    return out


def read_registries(folder: Path, problems: list, rows_of: Any, problem: Any) -> dict[str, list[dict]]:
    """registry → records (as the API takes them) of the files present; problems appended (file, row, reason)."""
    present = {r: folder / f for r, f in FILES.items() if (folder / f).is_file()}
    if not present:
        return {}
    models, out = _models(), {}
    for registry, path in present.items():
        records, rows = [], {}
        for row, record in _raw(registry, path, problems, rows_of, problem):
            try:
                body = models[registry].model_validate(record).model_dump(mode="json", exclude_none=True)
            except ValidationError as exc:
                problems += [problem(path.name, row, f"{'.'.join(map(str, e['loc'])) or 'record'}: {e['msg']}")
                             for e in exc.errors()]
                continue
            if body["id"] in rows:
                problems.append(problem(path.name, row, f"{body['id']} is also row {rows[body['id']]}"))
                continue
            rows[body["id"]] = row
            records.append(body)
        out[registry] = records
    return out


def _same(a: Any, b: Any, name: str) -> bool:
    if name == "geometry":
        return a is not None and b is not None and shape(a).equals_exact(shape(b), 1e-9)
    if name == "location":
        return isinstance(b, dict) and all(math.isclose(a[k], b.get(k, math.nan), abs_tol=1e-9) for k in ("lat", "lon"))
    if name in ("found_at", "remediated_at"):
        return b is not None and dt.datetime.fromisoformat(a) == dt.datetime.fromisoformat(b)
    if name == "fleet":
        return sorted(a) == sorted(b or [])
    if isinstance(a, float) and isinstance(b, int | float):
        return math.isclose(a, b, abs_tol=1e-12)
    return a == b


def changes(wanted: dict, held: dict | None) -> list[str] | None:
    """None for a new record, else what differs ([] when nothing)."""
    if held is None:
        return None
    return [f"{k} changed" if k == "geometry" else f"{k}: {held.get(k)} → {v}" for k, v in wanted.items()
            if k != "id" and not _same(v, held.get(k), k)]
