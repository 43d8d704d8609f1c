"""Demo activity records: a month of plausible work per station, uneven on purpose so colours and ranks spread."""
from __future__ import annotations

import calendar
import random
from typing import Any

import httpx

#: how hard each demo station works (1.0: on target); the demo district's six stations, others get 0.9
EFFORT = {"ps-chengxiang": 1.15, "ps-beigan": 0.75, "ps-xintang": 1.0, "ps-wenyan": 0.6, "ps-yiqiao": 0.95,
          "ps-heshang": 0.5}


def month_of_activities(stations: dict[str, int], month: str, *, seed: int = 6) -> list[dict[str, Any]]:
    """Records for every day of `month` (YYYY-MM) for stations `{id: population}`; external ids are stable."""
    rng = random.Random(f"{seed}-{month}")
    year, mon = (int(x) for x in month.split("-"))
    out: list[dict[str, Any]] = []
    for sid, population in sorted(stations.items()):
        e = EFFORT.get(sid, 0.9)
        per_day_education = population / 10_000 * 300 / 30 * e  # the target is 300 per 10k a month
        reds, yellows = rng.randint(8, 20), rng.randint(10, 25)
        for day in range(1, calendar.monthrange(year, mon)[1] + 1):
            at = f"{month}-{day:02d}T10:00:00+08:00"

            def add(kind: str, count: float, tag: str = "", _day: int = day, _at: str = at, _sid: str = sid,
                    **details: Any) -> None:
                out.append({"external_id": f"demo-{_sid}-{month}-{_day:02d}-{kind}{tag}", "kind": kind,
                            "station_id": _sid, "occurred_at": _at, "count": round(max(count, 0), 1),
                            "details": details})

            add("education", rng.gauss(per_day_education, per_day_education * 0.2))
            add("dissuasion", rng.gauss(40 * e, 5))
            checked = rng.randint(60, 120)
            add("helmet_check", checked, wearing=min(checked, round(checked * min(0.99, 0.72 + 0.2 * e))))
            add("violation", rng.randint(3, 12), "-helmet", type="helmet")
            add("violation", rng.randint(2, 8), "-other", type="other")
            add("violation", rng.randint(0, 2), "-drunk", type="drunk_driving")
            add("drunk_driving_check", rng.gauss(20 * e, 4))
            add("post_operation", min(12.0, rng.gauss(8 * e, 1)))
            found = rng.randint(1, 4)
            add("hazard_remediation", min(found, round(found * min(1.0, 0.6 + 0.3 * e))), found=found)
            if day in (1, 15) or day == calendar.monthrange(year, mon)[1]:
                add("map_colour", reds, "-red", colour="red")
                add("map_colour", yellows, "-yellow", colour="yellow")
                reds, yellows = max(0, reds - round(3 * e)), max(0, yellows - round(4 * e))
    return out


def load(gateway: str, token: str, stations: dict[str, int], month: str) -> dict[str, int]:
    """Post a month of records through `POST /api/v1/activities:batch` (idempotent); returns the totals."""
    records = month_of_activities(stations, month)
    totals = {"created": 0, "existing": 0, "rejected": 0}
    with httpx.Client(base_url=gateway, timeout=60, headers={"authorization": f"Bearer {token}"}) as http:
        for i in range(0, len(records), 1000):
            r = http.post("/api/v1/activities:batch", json=records[i:i + 1000])
            r.raise_for_status()
            for key in totals:
                totals[key] += r.json()[key]
    return totals
