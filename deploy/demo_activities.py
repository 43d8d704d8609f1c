"""Demo activity records: a month of plausible work per station, uneven on purpose so colours and ranks spread."""
from __future__ import annotations

import calendar
import datetime as dt
import random
from typing import Any

import httpx

#: how hard each demo station works (1.0: on target); the demo district's six stations, others get 0.9
EFFORT = {"ps-chengxiang": 1.15, "ps-beigan": 0.75, "ps-xintang": 1.0, "ps-wenyan": 0.6, "ps-yiqiao": 0.95,
          "ps-heshang": 0.5}


def month_of_activities(stations: dict[str, int], month: str, *, seed: int = 6,
                        effort: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """Records for every day of `month` (YYYY-MM) for stations `{id: population}`; external ids are stable.
    `effort` (1.0: on target) overrides the built-in `EFFORT` per station."""
    rng = random.Random(f"{seed}-{month}")
    year, mon = (int(x) for x in month.split("-"))
    out: list[dict[str, Any]] = []
    for sid, population in sorted(stations.items()):
        e = (effort or EFFORT).get(sid, 0.9)
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
    with httpx.Client(base_url=gateway, timeout=60, headers={"authorization": f"Bearer {token}"}) as http:
        return send_batches(http, "POST", "/api/v1/activities:batch", records)


# --- historical monthly measures (for year-on-year indicators before the system held records) ----------

#: how a station's accidents a year ago compare with its rate now (> 1: it has improved since); others 1.0
TREND = {"ps-chengxiang": 1.3, "ps-beigan": 0.8, "ps-xintang": 1.1, "ps-wenyan": 0.9, "ps-yiqiao": 1.25,
         "ps-heshang": 0.7}


#: kinds of daily work the calibrated district's generator does not produce (it makes the classification
#: records: violations, education, hazard remediation); the demo adds these for the assessment board
WORK_KINDS = frozenset({"dissuasion", "helmet_check", "drunk_driving_check", "post_operation", "map_colour"})


def daily_work(district: Any, recent_days: int) -> list[dict[str, Any]]:
    """The `WORK_KINDS` records of the last `recent_days` up to the district's anchor, with an uneven effort per
    station drawn from the district's seed (so colours and ranks spread)."""
    anchor = district.anchor
    since = anchor - dt.timedelta(days=recent_days)
    stations = {u["id"]: u["population"] for u in district.units if u["kind"] == "station"}
    rng = random.Random(f"{district.seed}-effort")
    effort = {sid: round(rng.uniform(0.5, 1.2), 2) for sid in sorted(stations)}
    out = []
    for month in sorted({f"{since:%Y-%m}", f"{anchor:%Y-%m}"}):
        for record in month_of_activities(stations, month, seed=district.seed, effort=effort):
            at = dt.datetime.fromisoformat(record["occurred_at"])
            if record["kind"] in WORK_KINDS and since <= at <= anchor:
                out.append(record | {"external_id": f"{record['external_id']}-s{district.seed}"})
    return out


def _month_before(month: str, k: int) -> str:
    year, mon = (int(x) for x in month.split("-"))
    index = year * 12 + (mon - 1) - k
    return f"{index // 12}-{index % 12 + 1:02d}"


def history(district: Any, anchor: dt.date | dt.datetime | str, *, months: int = 12, seed: int = 6
            ) -> list[dict[str, Any]]:
    """Precomputed monthly measures for the `months` months before `anchor`'s month, per station of `district`
    (an object with `units` and `incidents`, like deploy.demo_district.District), for
    `PUT /api/v1/assessment/history`.

    Each station's monthly accidents a year ago follow its accident rate in the district's records (per month
    the records span), scaled by a stable per-station factor (`TREND`, else drawn in 0.7–1.4) and monthly noise, so
    the demo month's year-on-year indicator spreads. Deaths and injuries follow the district's ratios.
    """
    label = anchor if isinstance(anchor, str) else f"{anchor:%Y-%m}"
    stations = sorted(u["id"] for u in district.units if u["kind"] == "station")
    accidents = [r for r in district.incidents if r["kind"] == "accident"]
    days = sorted(dt.date.fromisoformat(str(r["occurred_at"])[:10]) for r in district.incidents)
    record_months = max(1.0, ((days[-1] - days[0]).days + 1) / 30.4) if days else 1.0
    per_station = {s: 0 for s in stations}
    for r in accidents:
        if r["station_id"] in per_station:
            per_station[r["station_id"]] += 1
    deaths = sum(r["severity"]["deaths"] for r in accidents) / max(1, len(accidents))
    injuries = sum(r["severity"]["injuries"] for r in accidents) / max(1, len(accidents))
    rng = random.Random(f"{seed}-history-{label}")
    out = []
    for sid in stations:
        factor = TREND.get(sid, rng.uniform(0.7, 1.4))
        rate = max(0.5, per_station[sid] / record_months) * factor
        for k in range(months, 0, -1):
            n = max(0, round(rng.gauss(rate, rate ** 0.5 * 0.5)))
            out.append({"station_id": sid, "month": _month_before(label, k), "measures": {
                "accidents": n, "deaths": round(n * deaths), "injuries": round(n * injuries)}})
    return out


def load_history(http: httpx.Client, district: Any, anchor: dt.date | dt.datetime | str) -> dict[str, int]:
    """Import `history(district, anchor)` with `PUT /api/v1/assessment/history` (idempotent) through a logged-in
    client (admin or platform); returns the totals."""
    return send_batches(http, "PUT", "/api/v1/assessment/history", history(district, anchor))


def send_batches(http: httpx.Client, method: str, path: str, items: list[Any], size: int = 1000) -> dict[str, int]:
    """Send items in batches of `size`; the summed created / existing / rejected counts."""
    totals = {"created": 0, "existing": 0, "rejected": 0}
    for i in range(0, len(items), size):
        r = http.request(method, path, json=items[i:i + size])
        r.raise_for_status()
        for key in totals:
            totals[key] += r.json()[key]
    return totals
