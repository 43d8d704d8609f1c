"""Run a model's must-fire and must-not-fire examples through the real engine and index.

An example is a small world: the incident (fields of IncidentReported, all optional), earlier incidents
placed relative to it (`days_before`, `north_m`, `east_m`), open hazards and road sections likewise, and
registry records (`persons` by identity hash, `vehicles` by plate, `enterprises`, `villages`, `station`).
"""
from __future__ import annotations

import datetime as dt
import math
from typing import Any

from services.tracing.catalogue import EngineParams, TracingModel
from services.tracing.engine import Fired, Sources, plate_key, trace
from services.tracing.index import M_PER_DEG, Hazard, Index, Section
from shared.events import IncidentReported

BASE = {"incident_id": "inc-example", "external_id": "ext-example", "kind": "accident",
        "occurred_at": "2024-05-01T08:30:00+08:00", "location": {"lat": 30.1, "lon": 120.45},
        "station_id": "ps-example"}
PLACEMENT = ("days_before", "north_m", "east_m")


def _shift(lat: float, lon: float, spec: dict[str, Any]) -> tuple[float, float]:
    north, east = float(spec.get("north_m", 0)), float(spec.get("east_m", 0))
    return lat + north / M_PER_DEG, lon + east / (M_PER_DEG * math.cos(math.radians(lat)))


def _incident(spec: dict[str, Any], base: IncidentReported | None, n: int) -> IncidentReported:
    data = {k: v for k, v in spec.items() if k not in PLACEMENT}
    if base is None:
        return IncidentReported.model_validate(BASE | data)
    lat, lon = _shift(base.location.lat, base.location.lon, spec)
    when = base.occurred_at - dt.timedelta(days=float(spec.get("days_before", 0)))
    defaults = {"incident_id": f"inc-earlier-{n}", "external_id": f"ext-earlier-{n}", "kind": "accident",
                "occurred_at": when, "location": {"lat": lat, "lon": lon}}
    return IncidentReported.model_validate(defaults | data)


def world(example: dict[str, Any]) -> tuple[IncidentReported, Sources, Index]:
    """The incident, its resolved sources and an index holding the example's earlier facts."""
    fact = _incident(example.get("incident", {}), None, 0)
    index = Index()
    for n, spec in enumerate(example.get("earlier", [])):
        earlier = _incident(spec, fact, n)
        trace(earlier, sources=Sources(), index=index, catalogue=_NO_MODELS, models=[])
    for n, spec in enumerate(example.get("hazards", [])):
        lat, lon = _shift(fact.location.lat, fact.location.lon, spec)
        hazard_id = spec.get("id", f"hz-{n}")
        index.put_hazard(Hazard(hazard_id, lat, lon, spec.get("kind", "")), hazard_id=hazard_id)
    for n, spec in enumerate(example.get("sections", [])):
        points = [_shift(fact.location.lat, fact.location.lon, p) for p in spec.get("points", [])]
        section_id = spec.get("id", f"rs-{n}")
        index.put_section(Section(section_id, [points], spec.get("lit"), spec.get("signalised"),
                                  bool(spec.get("school_zone", False))), section_id=section_id)

    def registered(records: dict[str, Any]) -> dict[str, Any]:
        return {key: {"registered": True} | value for key, value in records.items()}

    sources = Sources(
        persons=registered(example.get("persons", {})),
        vehicles={plate_key(k) or k: v for k, v in registered(example.get("vehicles", {})).items()},
        enterprises=registered(example.get("enterprises", {})), villages=registered(example.get("villages", {})),
        station=example.get("station", {}),
    )
    return fact, sources, index


class _NoModels:
    engine = EngineParams()
    models: list[TracingModel] = []


_NO_MODELS: Any = _NoModels()


def run_example(model: TracingModel, example: dict[str, Any], engine: EngineParams | None = None) -> list[Fired]:
    """What the model fires on the example's incident."""
    fact, sources, index = world(example)
    holder: Any = _NoModels()
    holder.engine = engine or EngineParams()
    return trace(fact, sources=sources, index=index, catalogue=holder, models=[model.model_copy(
        update={"enabled": True})], strict=True).fired


def check_examples(model: TracingModel, engine: EngineParams | None = None) -> None:
    """Raise ValueError naming every example that does not behave as documented."""
    wrong = []
    for kind, expected in (("fire", True), ("no_fire", False)):
        for n, example in enumerate(getattr(model.examples, kind)):
            try:
                fired = bool(run_example(model, example, engine))
            except Exception as exc:  # noqa: BLE001 - a malformed example is reported, not raised through
                wrong.append(f"{kind}[{n}] is malformed: {exc}")
                continue
            if fired != expected:
                wrong.append(f"{kind}[{n}] {'did not fire' if expected else 'fired'}")
    if wrong:
        raise ValueError(f"{model.id} v{model.version}: " + "; ".join(wrong))
