"""Request examples for the merged OpenAPI document, one per request body that has none of its own.

Kept beside the merge so the services' routes need no change; tests/gateway/test_openapi_document.py checks
that every request body has an example and that each one here validates against its body's schema.
"""
from __future__ import annotations

import json
from typing import Any

_INCIDENT = {"external_id": "hz-2024-000123", "kind": "collision", "occurred_at": "2024-05-01T08:30:00+08:00",
             "location": {"lat": 30.1, "lon": 120.45}, "severity": {"deaths": 0, "injuries": 1},
             "parties": [{"role": "rider", "person": {"id_number": "330106199001011234", "age": 34, "helmet": False},
                          "vehicle": {"plate": "浙A12345", "kind": "e_bike"}}],
             "lighting": "daylight", "junction": "unsignalled"}
_ACTIVITY = {"external_id": "edu-2024-05-01-017", "kind": "education", "station_id": "ps-yiqiao",
             "occurred_at": "2024-05-01T10:00:00+08:00", "count": 35}
_HISTORY = {"station_id": "ps-yiqiao", "month": "2023-12", "measures": {"accidents": 4, "educated": 1200}}
_UNIT = {"id": "ps-yiqiao", "name": "Yiqiao station", "kind": "station", "parent_id": "sq-rural",
         "area_type": "rural", "population": 62000, "area_km2": 38.5}

#: one record of each tracing registry (POST one, and the one item of its :batch examples)
_REGISTRIES: dict[str, dict[str, Any]] = {
    "persons": {
        "id_number": "330106199001011234", "name": "Zhang San", "age": 34, "licence_status": "valid"},
    "vehicles": {
        "plate": "浙A12345", "kind": "yellow_plate_truck", "inspection_due": "2024-09-30", "operator_id": "ent-0042"},
    "enterprises": {
        "id": "ent-0042", "name": "Qiantang Logistics", "inspection_rate": 0.92, "scrapping_rate": 1.0},
    "villages": {
        "id": "vil-dongshan", "name": "Dongshan", "kind": "village", "residents": 2300, "station_id": "ps-yiqiao"},
    "road-sections": {
        "id": "rs-g104-12", "name": "G104 km 12", "geometry": {"type": "LineString",
                                                             "coordinates": [[120.44, 30.1], [120.46, 30.11]]},
        "lit": False, "speed_limit": 60},
    "hazards": {
        "id": "hz-0007", "kind": "blind_bend", "description": "blind bend without mirror",
        "location": {"lat": 30.1, "lon": 120.45}, "status": "open", "road_section_id": "rs-g104-12"},
}

#: (method, path, media type) → example
EXAMPLES: dict[tuple[str, str, str], Any] = {
    ("post", "/api/v1/auth/logout", "application/x-www-form-urlencoded"): {"refresh_token": "rt-6f1c…"},
    ("post", "/api/v1/auth/token", "application/x-www-form-urlencoded"): {
        "grant_type": "client_credentials", "client_id": "county-platform", "client_secret": "s3cret-from-admin"},
    ("post", "/api/v1/activities", "application/json"): _ACTIVITY,
    ("post", "/api/v1/activities:batch", "application/json"): [_ACTIVITY],
    ("post", "/api/v1/activities:batch", "application/x-ndjson"): json.dumps(_ACTIVITY, ensure_ascii=False) + "\n",
    ("put", "/api/v1/indicators", "application/json"): {
        "mode": "basic", "indicators": {"education": {"weight": 10}}, "note": "education weighs more from June"},
    ("put", "/api/v1/assessment/history", "application/json"): [_HISTORY],
    ("put", "/api/v1/assessment/history", "application/x-ndjson"): json.dumps(_HISTORY) + "\n",
    ("put", "/api/v1/stations/{station_id}/features", "application/json"): {
        "period": "2024-05", "features": {"accidents_per_10k": 3.2, "congestion_alarms_per_10k": 1.1}},
    ("post", "/api/v1/classification/features", "text/csv"):
        "station_id,period,accidents_per_10k,congestion_alarms_per_10k\nps-yiqiao,2024-05,3.2,1.1\n",
    ("post", "/api/v1/classification/runs", "application/json"): {"period": "2024-05", "k": 3, "dry_run": True},
    ("put", "/api/v1/stations/{station_id}/mode-override", "application/json"): {
        "mode": "deep", "reason": "new industrial park opened in the station's area"},
    ("post", "/api/v1/units", "application/json"): [_UNIT],
    ("post", "/api/v1/units:import", "application/geo+json"): {"type": "FeatureCollection", "features": [{
        "type": "Feature", "properties": {"id": "ps-yiqiao", "name": "Yiqiao station", "kind": "station"},
        "geometry": {"type": "Polygon", "coordinates": [[[120.4, 30.05], [120.5, 30.05], [120.5, 30.15],
                                                          [120.4, 30.15], [120.4, 30.05]]]}}]},
    ("post", "/api/v1/units:import", "application/json"): {"type": "FeatureCollection", "features": []},
    ("post", "/api/v1/incidents", "application/json"): _INCIDENT,
    ("post", "/api/v1/incidents:batch", "application/json"): [_INCIDENT],
    ("post", "/api/v1/incidents:batch", "application/x-ndjson"): json.dumps(_INCIDENT, ensure_ascii=False) + "\n",
    ("post", "/api/v1/incidents/{incident_id}/arrival", "application/json"): {
        "arrived_at": "2024-05-01T08:34:10+08:00"},
    ("post", "/api/v1/tasks/{task_id}/transitions", "application/json"): {
        "action": "complete_milestone", "milestone": "visit", "note": "rider educated at home",
        "evidence": ["photo:2024/05/02/0001.jpg"]},
    ("post", "/api/v1/tasks:bulk", "application/json"): {
        "action": "extend", "task_ids": ["task-7f3a"], "extend_by": "P2D", "note": "holiday week"},
    ("put", "/api/v1/tracing/models/{model_id}", "application/json"): {"enabled": True, "deadline_h": 72},
    **{key: example for name, record in _REGISTRIES.items() for key, example in (
        (("post", f"/api/v1/{name}", "application/json"), record),
        (("post", f"/api/v1/{name}:batch", "application/json"), [record]),
        (("post", f"/api/v1/{name}:batch", "application/x-ndjson"), json.dumps(record, ensure_ascii=False) + "\n"))},
}


def add_examples(doc: dict[str, Any]) -> None:
    """Give every request body without an example the one listed here (in place)."""
    schemas = doc.get("components", {}).get("schemas", {})
    for path, item in doc.get("paths", {}).items():
        for method, op in item.items():
            for media_type, media in (op.get("requestBody") or {}).get("content", {}).items():
                ref = media.get("schema", {}).get("$ref", "")
                own = schemas.get(ref.rsplit("/", 1)[-1], {}) if ref else {}
                if "example" in media or "examples" in media or own.get("examples"):
                    continue
                example = EXAMPLES.get((method, path, media_type))
                if example is not None:
                    media["example"] = example
