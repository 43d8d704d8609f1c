"""The grid index answers like a scan, and the engine explains what it found and why models fired."""
from __future__ import annotations

import random

from services.tracing.catalogue import Catalogue
from services.tracing.engine import Sources, trace
from services.tracing.examples import world
from services.tracing.index import Accident, Hazard, Index, Section, metres
from tests.services.tracing.test_catalogue import CATALOGUE


def test_accidents_near_counts_exactly_what_a_full_scan_counts() -> None:
    rng = random.Random(7)
    index, all_accidents = Index(), []
    for n in range(3000):
        acc = Accident(f"a{n}", rng.uniform(0, 400 * 86400), 30.1 + rng.uniform(-0.02, 0.02),
                       120.45 + rng.uniform(-0.02, 0.02), rng.choice([None, "unsignalled", "signalled"]))
        index.add_accident(acc)
        all_accidents.append(acc)
    for _ in range(200):
        lat, lon = 30.1 + rng.uniform(-0.02, 0.02), 120.45 + rng.uniform(-0.02, 0.02)
        at, radius, days = rng.uniform(0, 400 * 86400), rng.choice([50, 200, 700]), rng.choice([30, 90, 365])
        junction = rng.choice([None, "unsignalled"])
        scan = sum(1 for a in all_accidents if at - days * 86400 <= a.at <= at
                   and (junction is None or a.junction == junction) and metres(lat, lon, a.lat, a.lon) <= radius)
        assert index.accidents_near(lat, lon, at, radius, days, junction) == scan


def test_adding_the_same_accident_again_replaces_it() -> None:
    index = Index()
    index.add_accident(Accident("a", 100.0, 30.1, 120.45, persons=("p",)))
    index.add_accident(Accident("a", 100.0, 30.2, 120.45, persons=("p",)))
    assert index.accidents_near(30.1, 120.45, 100.0, 50, 1) == 0
    assert index.history("by_person", "p", 100.0, 1) == 1


def test_hazards_and_sections_are_found_by_distance_and_dropped_when_closed() -> None:
    index = Index()
    index.put_hazard(Hazard("h1", 30.1009, 120.45), hazard_id="h1")  # ~100 m north
    index.put_section(Section("rs", [[(30.0, 120.4505), (30.2, 120.4505)]], lit=False), section_id="rs")  # ~48 m east
    assert [(h.id, round(d)) for h, d in index.hazards_near(30.1, 120.45, 150)] == [("h1", 100)]
    assert index.hazards_near(30.1, 120.45, 90) == []
    section, distance = index.nearest_section(30.1, 120.45, 60) or (None, 0)
    assert section is not None and section.id == "rs" and 45 < distance < 51
    assert index.nearest_section(30.1, 120.45, 40) is None
    index.put_hazard(None, hazard_id="h1")
    assert index.hazards_near(30.1, 120.45, 150) == []


def _catalogue() -> Catalogue:
    return CATALOGUE


def test_trace_explains_every_source_and_why_models_fired() -> None:
    fact, sources, index = world({
        "incident": {"severity": {"deaths": 1}, "junction": "unsignalled", "parties": [
            {"role": "driver", "person": {"id_hash": "ab" * 32, "drunk": True, "village_id": "vil-1"},
             "vehicle": {"kind": "yellow_plate_truck", "plate": "ZJ-A1", "operator_id": "ent-1"}}]},
        "earlier": [{"days_before": 20, "north_m": 10, "junction": "unsignalled",
                     "parties": [{"role": "driver", "person": {"id_hash": "ab" * 32}}]}],
        "hazards": [{"id": "hz-9", "north_m": 40}],
    })
    result = trace(fact, sources=sources, index=index, catalogue=_catalogue())
    fired = {(f.model.id, f.entity_ref) for f in result.fired}
    person = "person:" + "ab" * 16
    assert {("P01", person), ("P04", person), ("V01", "vehicle:ZJA1"), ("R01", "hazard:hz-9"),
            ("R04", f"road:@{fact.location.lat:.4f},{fact.location.lon:.4f}"), ("E02", "enterprise:ent-1"),
            ("C01", "village:vil-1")} <= fired
    assert ("P02", person) not in fired
    reasons = {f.model.id: f.reason for f in result.fired}
    assert "person_accidents(365) = 2" in reasons["P04"]
    assert "hazard hz-9 at 40 m" in reasons["R01"]
    assert result.sources["person"][0]["accidents_12_months"] == 2
    assert result.sources["road"][0]["open_hazards"][0]["id"] == "hz-9"
    assert result.sources["enterprise"][0]["ref"] == "enterprise:ent-1"
    assert result.sources["village"][0]["ref"] == "village:vil-1"


def test_a_disabled_model_does_not_fire() -> None:
    fact, sources, index = world({"incident": {"parties": [{"role": "driver", "person": {"drunk": True}}]}})
    p01 = CATALOGUE.get("P01")
    assert p01 is not None
    off = CATALOGUE.replaced(p01.model_copy(update={"enabled": False}))
    assert not [f for f in trace(fact, sources=sources, index=index, catalogue=off).fired if f.model.id == "P01"]


def test_a_faulty_condition_fires_nothing_and_spares_the_other_models() -> None:
    fact, _, index = world({"incident": {"parties": [{"role": "driver", "person": {"drunk": True}}]}})
    p01, p02 = CATALOGUE.get("P01"), CATALOGUE.get("P02")
    assert p01 is not None and p02 is not None
    broken = p02.model_copy(update={"condition": "person['age'] > 3"})  # age is None: TypeError at run time
    result = trace(fact, sources=Sources(), index=index, catalogue=CATALOGUE, models=[broken, p01])
    assert [f.model.id for f in result.fired] == ["P01"]
