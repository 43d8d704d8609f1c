"""What classification's tests share: the demo district's stations and features, and putting them."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from shared.events import Fact, UnitUpserted
from tests.helpers import Service

DEMO = json.loads((Path(__file__).resolve().parents[3] / "deploy" / "demo_district.json").read_text())
STATIONS = [u for u in DEMO["units"] if u["kind"] == "station"]
EXPECTED_MODES = {"ps-chengxiang": "basic", "ps-beigan": "basic", "ps-yiqiao": "deep", "ps-heshang": "deep",
                  "ps-xintang": "full", "ps-wenyan": "full"}


def unit_facts(units: list[dict[str, Any]]) -> list[Fact]:
    """UnitUpserted facts for units shaped like `POST /api/v1/units` bodies (as dispatch announces them)."""
    return [UnitUpserted(unit_id=u["id"], name=u["name"], kind=u["kind"], parent_id=u.get("parent_id"),
                         area_type=u.get("area_type"), population=u.get("population"), area_km2=u.get("area_km2"))
            for u in units]


async def put_demo_features(c: Service) -> None:
    for station_id, features in DEMO["features"].items():
        response = await c.client.put(f"/api/v1/stations/{station_id}/features",
                                      json={"period": DEMO["period"], "features": features}, headers=c.as_("admin"))
        assert response.status_code == 204, response.text
