"""The tracing engine: one incident, its five resolved sources and the index in; fired models and why out.

Pure and synchronous (no database, no bus): the service resolves the registries first and stores the result.
Every model is evaluated on each candidate entity of its kind (each party, each vehicle, the road spot, each
open hazard nearby, each operator, each village); history and spatial counts come from the grid index.
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

from services.tracing.catalogue import Catalogue, TracingModel, evaluate
from services.tracing.index import Accident, Hazard, Index, Section
from shared.events import IncidentReported

log = logging.getLogger(__name__)

YEAR_DAYS = 365
SUMMARY_RADIUS_M, SUMMARY_DAYS = 200, 90


@dataclass
class Sources:
    """The registry records matched for an incident's parties (each dict has `registered`: known before)."""

    persons: dict[str, dict[str, Any]] = field(default_factory=dict)
    vehicles: dict[str, dict[str, Any]] = field(default_factory=dict)
    enterprises: dict[str, dict[str, Any]] = field(default_factory=dict)
    villages: dict[str, dict[str, Any]] = field(default_factory=dict)
    station: dict[str, Any] = field(default_factory=dict)


@dataclass
class Fired:
    """A model that fired on one entity of the incident."""

    model: TracingModel
    entity_ref: str
    reason: str


@dataclass
class Trace:
    """What was found for each source and which models fired."""

    sources: dict[str, list[dict[str, Any]]]
    fired: list[Fired]


@dataclass
class Candidate:
    """One entity a model may fire on, with the names its condition reads."""

    ref: str
    label: str
    names: dict[str, Any]


def plate_key(plate: str | None) -> str | None:
    """A plate as a registry key: upper case, no spaces or dashes."""
    if not plate:
        return None
    key = "".join(ch for ch in plate.upper() if ch.isalnum())
    return key or None


def accident_of(fact: IncidentReported, sources: Sources | None = None) -> Accident:
    """The index entry for an incident (operators and villages also as the registries know them)."""
    sources = sources or Sources()
    persons = tuple(p.person.id_hash for p in fact.parties if p.person.id_hash)
    operators = tuple(op for i in range(len(fact.parties)) if (op := _vehicle(fact, i, sources)["operator_id"]))
    villages = tuple(v for i in range(len(fact.parties)) if (v := _person(fact, i, sources)["village_id"]))
    return Accident(fact.incident_id, fact.occurred_at.timestamp(), fact.location.lat, fact.location.lon,
                    fact.junction, persons, operators, villages)


def incident_names(fact: IncidentReported) -> dict[str, Any]:
    """The incident as conditions see it; hours and days are local to the offset the reporter gave."""
    local = fact.occurred_at
    return {
        "id": fact.incident_id, "kind": fact.kind, "deaths": fact.severity.deaths, "injuries": fact.severity.injuries,
        "casualties": fact.severity.deaths + fact.severity.injuries, "hit_and_run": fact.hit_and_run,
        "lighting": fact.lighting, "junction": fact.junction, "school_zone": fact.school_zone,
        "local_hour": local.hour, "weekday": local.weekday(), "date": local.date().isoformat(),
        "station_id": fact.station_id, "parties": len(fact.parties),
    }


def _person(fact: IncidentReported, index: int, sources: Sources) -> dict[str, Any]:
    person = fact.parties[index].person
    record = sources.persons.get(person.id_hash or "", {})
    registry_violations = record.get("unprocessed_violations")
    violations = [v for v in (person.unprocessed_violations, registry_violations) if v is not None]
    return {
        "known": person.id_hash is not None, "registered": bool(record.get("registered")),
        "id_masked": person.id_masked or record.get("id_masked"),
        "age": person.age if person.age is not None else record.get("age"),
        "licence_status": person.licence_status or record.get("licence_status"),
        "drunk": person.drunk, "drugged": person.drugged, "helmet": person.helmet,
        "unprocessed_violations": max(violations) if violations else None,
        "village_id": person.village_id or record.get("village_id"),
    }


def _vehicle(fact: IncidentReported, index: int, sources: Sources) -> dict[str, Any]:
    vehicle = fact.parties[index].vehicle
    if vehicle is None:
        return {"present": False, "plate": None, "kind": None, "overloaded": False, "modified": False,
                "inspection_due": None, "scrapped": False, "operator_id": None, "unprocessed_violations": None,
                "registered": False}
    record = sources.vehicles.get(plate_key(vehicle.plate) or "", {})
    due = vehicle.inspection_due or record.get("inspection_due")
    violations = [v for v in (vehicle.unprocessed_violations, record.get("unprocessed_violations")) if v is not None]
    kind = vehicle.kind if vehicle.kind != "other" or not record.get("kind") else record["kind"]
    return {
        "present": True, "plate": vehicle.plate, "kind": kind, "overloaded": vehicle.overloaded,
        "modified": vehicle.modified or bool(record.get("modified")),
        "inspection_due": due.isoformat() if isinstance(due, dt.date) else due,
        "scrapped": vehicle.scrapped or bool(record.get("scrapped")),
        "operator_id": vehicle.operator_id or record.get("operator_id"),
        "unprocessed_violations": max(violations) if violations else None,
        "registered": bool(record.get("registered")),
    }


def person_ref(fact: IncidentReported, index: int) -> str:
    """The person a task is about: the identity hash when known, else the party's place in the incident."""
    id_hash = fact.parties[index].person.id_hash
    return f"person:{id_hash[:32]}" if id_hash else f"person:{fact.incident_id}#{index}"


def vehicle_ref(fact: IncidentReported, index: int) -> str:
    """The vehicle a task is about: its plate when known, else the party's place in the incident."""
    vehicle = fact.parties[index].vehicle
    key = plate_key(vehicle.plate if vehicle else None)
    return f"vehicle:{key}" if key else f"vehicle:{fact.incident_id}#{index}"


class _Context:
    """Everything the candidates of one incident share, computed once."""

    def __init__(self, fact: IncidentReported, sources: Sources, index: Index, catalogue: Catalogue) -> None:
        self.fact = fact
        self.sources = sources
        self.index = index
        self.at = fact.occurred_at.timestamp()
        self.incident = incident_names(fact)
        self.station = {"id": fact.station_id, "mode": None, "area_type": None} | sources.station
        self.persons = [_person(fact, i, sources) for i in range(len(fact.parties))]
        self.vehicles = [_vehicle(fact, i, sources) for i in range(len(fact.parties))]
        lat, lon = fact.location.lat, fact.location.lon
        near = index.nearest_section(lat, lon, catalogue.engine.section_match_m)
        self.section: Section | None = near[0] if near else None
        self.road = _road_names(near)
        self.hazards: list[tuple[Hazard, float]] = index.hazards_near(lat, lon, catalogue.engine.hazard_search_m)
        self.calls: list[str] = []

    def base(self) -> dict[str, Any]:
        return {"incident": self.incident, "station": self.station, "road": self.road, "party": {},
                "person": {}, "vehicle": {}, "hazard": {}, "enterprise": {}, "village": {}}

    def functions(self, *, person: str | None = None, operator: str | None = None,
                  village: str | None = None) -> dict[str, Any]:
        """The history and spatial helpers, bound to this incident and candidate; each call is recorded."""
        fact, index, at = self.fact, self.index, self.at

        def noted(name: str, value: int, *args: Any) -> int:
            self.calls.append(f"{name}({', '.join(repr(a) for a in args)}) = {value}")
            return value

        def accidents_near(radius_m: float, days: float, junction: str | None = None) -> int:
            return noted("accidents_near", index.accidents_near(fact.location.lat, fact.location.lon, at,
                                                                float(radius_m), float(days), junction),
                         radius_m, days, *([junction] if junction else []))

        def person_accidents(days: float) -> int:
            value = index.history("by_person", person, at, float(days)) if person else 1
            return noted("person_accidents", value, days)

        def operator_accidents(days: float) -> int:
            return noted("operator_accidents", index.history("by_operator", operator, at, float(days))
                         if operator else 0, days)

        def village_accidents(days: float) -> int:
            return noted("village_accidents", index.history("by_village", village, at, float(days))
                         if village else 0, days)

        return {"accidents_near": accidents_near, "person_accidents": person_accidents,
                "operator_accidents": operator_accidents, "village_accidents": village_accidents}


def _road_names(near: tuple[Section, float] | None) -> dict[str, Any]:
    if near is None:
        return {"on_section": False, "section_id": None, "name": None, "lit": None, "signalised": None,
                "school_zone": False, "distance_m": None}
    section, distance = near
    return {"on_section": True, "section_id": section.id, "name": section.name, "lit": section.lit,
            "signalised": section.signalised, "school_zone": section.school_zone, "distance_m": round(distance, 1)}


def candidates(kind: str, ctx: _Context) -> list[Candidate]:
    """The entities of one kind a model of that kind is evaluated on."""
    fact = ctx.fact
    found: list[Candidate] = []
    if kind in ("person", "vehicle"):
        for i, party in enumerate(fact.parties):
            if kind == "vehicle" and party.vehicle is None:
                continue
            person, vehicle = ctx.persons[i], ctx.vehicles[i]
            names = ctx.base() | {"party": {"index": i, "role": party.role}, "person": person, "vehicle": vehicle}
            ref = person_ref(fact, i) if kind == "person" else vehicle_ref(fact, i)
            names["_functions"] = ctx.functions(person=party.person.id_hash, operator=vehicle["operator_id"],
                                                village=person["village_id"])
            found.append(Candidate(ref, f"party {i + 1}, {party.role}", names))
    elif kind == "road":
        ref = f"road:{ctx.section.id}" if ctx.section else \
            f"road:@{fact.location.lat:.4f},{fact.location.lon:.4f}"
        found.append(Candidate(ref, "the road at the scene", ctx.base() | {"_functions": ctx.functions()}))
    elif kind == "hazard":
        for hazard, distance in ctx.hazards:
            names = ctx.base() | {"hazard": {"id": hazard.id, "kind": hazard.kind, "distance_m": round(distance, 1)}}
            names["_functions"] = ctx.functions()
            found.append(Candidate(f"hazard:{hazard.id}", f"hazard {hazard.id} at {distance:.0f} m", names))
    elif kind == "enterprise":
        for operator_id in dict.fromkeys(v["operator_id"] for v in ctx.vehicles if v["operator_id"]):
            record = {"id": operator_id, "registered": False, "name": None, "fleet_size": None,
                      "inspection_rate": None, "scrapping_rate": None, "violation_clearing_rate": None}
            record |= ctx.sources.enterprises.get(operator_id, {})
            names = ctx.base() | {"enterprise": record, "_functions": ctx.functions(operator=operator_id)}
            found.append(Candidate(f"enterprise:{operator_id}", f"operator {operator_id}", names))
    elif kind == "village":
        villages = [p["village_id"] for p in ctx.persons if p["village_id"]]
        for village_id in dict.fromkeys(villages):
            record = {"id": village_id, "registered": False, "name": None, "residents": None, "station_id": None}
            record |= ctx.sources.villages.get(village_id, {}) | {"residents_involved": villages.count(village_id)}
            names = ctx.base() | {"village": record, "_functions": ctx.functions(village=village_id)}
            found.append(Candidate(f"village:{village_id}", f"village {village_id}", names))
    elif kind == "incident":
        found.append(Candidate(f"incident:{fact.incident_id}", "the incident",
                               ctx.base() | {"_functions": ctx.functions()}))
    return found


def fires(model: TracingModel, candidate: Candidate, ctx: _Context, *, strict: bool = False) -> str | None:
    """The reason the model fires on the candidate, or None (a faulty condition is logged and fires nothing,
    unless `strict`, as when examples are checked)."""
    names = {k: v for k, v in candidate.names.items() if k != "_functions"} | {"params": model.parameters}
    ctx.calls = []
    try:
        hit = evaluate(model.condition, names=names, functions=candidate.names["_functions"])
    except Exception as exc:  # noqa: BLE001 - one faulty model must not block tracing the others
        if strict:
            raise
        log.error("model %s v%s failed on incident %s: %s", model.id, model.version, ctx.fact.incident_id, exc)
        return None
    if not hit:
        return None
    why = f"; {', '.join(ctx.calls)}" if ctx.calls else ""
    return f"{model.id}: {model.description['en']} ({candidate.label}{why})"  # stored with the order


def trace(fact: IncidentReported, *, sources: Sources, index: Index, catalogue: Catalogue,
          models: list[TracingModel] | None = None, strict: bool = False) -> Trace:
    """Add the incident to the index, then evaluate every enabled model on every candidate of its kind."""
    index.add_accident(accident_of(fact, sources))
    ctx = _Context(fact, sources, index, catalogue)
    by_kind: dict[str, list[Candidate]] = {}
    fired = []
    for model in models if models is not None else catalogue.models:
        if not model.enabled:
            continue
        kind = model.entity_kind
        if kind not in by_kind:
            by_kind[kind] = candidates(kind, ctx)
        for candidate in by_kind[kind]:
            reason = fires(model, candidate, ctx, strict=strict)
            if reason is not None:
                fired.append(Fired(model, candidate.ref, reason))
    return Trace(explain_sources(ctx), fired)


def explain_sources(ctx: _Context) -> dict[str, list[dict[str, Any]]]:
    """What was found for each of the five sources, for people reading the trace."""
    fact, index, at = ctx.fact, ctx.index, ctx.at
    persons = []
    for i, party in enumerate(fact.parties):
        person = ctx.persons[i]
        history = index.history("by_person", party.person.id_hash, at, YEAR_DAYS) if party.person.id_hash else None
        persons.append({"ref": person_ref(fact, i), "party": i + 1, "role": party.role,
                        **{k: person[k] for k in ("id_masked", "registered", "age", "licence_status", "drunk",
                                                  "drugged", "helmet", "unprocessed_violations", "village_id")},
                        "accidents_12_months": history})
    vehicles = [{"ref": vehicle_ref(fact, i), "party": i + 1, **{k: v for k, v in ctx.vehicles[i].items()
                                                                  if k != "present"}}
                for i, party in enumerate(fact.parties) if party.vehicle is not None]
    road = [{"section": ctx.road if ctx.road["on_section"] else None,
             "open_hazards": [{"id": h.id, "kind": h.kind, "distance_m": round(d, 1)} for h, d in ctx.hazards],
             f"accidents_within_{SUMMARY_RADIUS_M}m_{SUMMARY_DAYS}_days": index.accidents_near(
                 fact.location.lat, fact.location.lon, at, SUMMARY_RADIUS_M, SUMMARY_DAYS),
             "lighting": fact.lighting, "junction": fact.junction, "school_zone": fact.school_zone}]
    enterprises = [{"ref": c.ref, **{k: v for k, v in c.names["enterprise"].items()},
                    "accidents_90_days": index.history("by_operator", c.names["enterprise"]["id"], at, 90)}
                   for c in candidates("enterprise", ctx)]
    villages = [{"ref": c.ref, **c.names["village"],
                 "accidents_12_months": index.history("by_village", c.names["village"]["id"], at, YEAR_DAYS)}
                for c in candidates("village", ctx)]
    return {"person": persons, "vehicle": vehicles, "road": road, "enterprise": enterprises, "village": villages}
