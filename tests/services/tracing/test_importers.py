"""The STATS19 and FARS importers map every record onto the public incident contract or reject it with a reason."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest
from pydantic import TypeAdapter

from importers import fars, stats19
from services.dispatch.schemas import IncidentIn
from services.tracing.schemas import VillageIn

DATA = Path(__file__).resolve().parents[2] / "data"
INCIDENTS = TypeAdapter(list[IncidentIn])


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize(("module", "folder", "table"), [(stats19, "stats19", "accidents.csv"),
                                                        (fars, "fars", "accident.csv")])
def test_every_record_is_mapped_to_a_valid_incident_or_rejected_with_a_reason(module, folder: str, table: str) -> None:
    items, rejected, villages = module.read(DATA / folder)
    assert len(items) + len(rejected) == len(_rows(DATA / folder / table))
    assert all(reason for reason in rejected)
    INCIDENTS.validate_python([body for _, body in items])
    assert len({key for key, _ in items}) == len(items)
    for village in villages.values():
        VillageIn.model_validate(village)


def test_stats19_maps_parties_light_junction_and_casualties() -> None:
    items, rejected, _ = stats19.read(DATA / "stats19")
    by_id = dict(items)
    collisions = {r["collision_index"]: r for r in _rows(DATA / "stats19" / "accidents.csv")}
    vehicles = _rows(DATA / "stats19" / "vehicles.csv")
    casualties = _rows(DATA / "stats19" / "casualties.csv")
    assert rejected == []
    for index, row in collisions.items():
        body = by_id[f"stats19-{index}"]
        own = [c for c in casualties if c["collision_index"] == index]
        assert body["severity"]["deaths"] == sum(c["casualty_severity"] == "1" for c in own)
        assert body["severity"]["deaths"] + body["severity"]["injuries"] == len(own)
        assert sum(p["role"] in ("driver", "rider") for p in body["parties"]) == \
            sum(v["collision_index"] == index for v in vehicles)
        if row["light_conditions"] == "6":
            assert body["lighting"] == "unlit"
        if row["junction_control"] == "2":
            assert body["junction"] == "signalled"
        assert body["occurred_at"].endswith(("+00:00", "+01:00"))


def test_stats19_time_is_uk_local_with_summer_time() -> None:
    assert stats19.occurred_at({"date": "21/05/2024", "time": "15:30"}).isoformat() == "2024-05-21T15:30:00+01:00"
    assert stats19.occurred_at({"date": "21/01/2024", "time": "15:30"}).isoformat() == "2024-01-21T15:30:00+00:00"


def test_fars_rejects_unreported_coordinates_and_keeps_an_unknown_hour_at_noon() -> None:
    items, rejected, _ = fars.read(DATA / "fars")
    crashes = _rows(DATA / "fars" / "accident.csv")
    assert len(rejected) == sum(float(c["LATITUDE"]) > 90 for c in crashes) == 2
    assert all("coordinates" in reason for reason in rejected)
    unknown_hour = next(c for c in crashes if c["HOUR"] == "99" and float(c["LATITUDE"]) <= 90)
    assert dict(items)[f"fars-{unknown_hour['accident_id']}"]["occurred_at"].endswith("T12:00:00-07:00")


def test_fars_maps_drink_licence_and_deaths() -> None:
    items, _, _ = fars.read(DATA / "fars")
    crashes = {c["accident_id"]: c for c in _rows(DATA / "fars" / "accident.csv")}
    vehicles = _rows(DATA / "fars" / "vehicle.csv")
    for key, body in items:
        crash = crashes[key.removeprefix("fars-")]
        assert body["severity"]["deaths"] == int(crash["FATALS"])
        drinkers = [v for v in vehicles if v["accident_id"] == crash["accident_id"] and v["DR_DRINK"] == "1"]
        drivers = [p for p in body["parties"] if p["role"] in ("driver", "rider") and "licence_status" in p["person"]
                   or p["person"].get("drunk")]
        if drinkers:
            assert any(p["person"].get("drunk") for p in drivers)
    first = dict(items)["fars-2012040001"]
    assert first["lighting"] == "unlit" and first["parties"][0]["person"]["licence_status"] == "valid"


@pytest.mark.parametrize(("body", "gvwr", "kind"), [("4", "0", "car"), ("80", "0", "motorcycle"), ("50", "0", "bus"),
                                                    ("66", "3", "yellow_plate_truck"), ("61", "2", "goods_vehicle"),
                                                    ("93", "0", "engineering_truck"), ("99", "0", "other")])
def test_fars_body_types_map_to_vehicle_kinds(body: str, gvwr: str, kind: str) -> None:
    assert fars.vehicle_kind({"BODY_TYP": body, "GVWR": gvwr}) == kind
