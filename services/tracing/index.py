"""The in-memory spatial and temporal index the engine asks: earlier accidents, open hazards, road sections.

A uniform grid of `CELL_DEG` degrees (≈ 220 m north–south) keys every point and every road segment, so
"within r metres" looks at the few cells around a point instead of scanning everything. Accidents are also
kept per person, operator and village for the history models. Adding is idempotent on the incident id.
"""
from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

CELL_DEG = 0.002
EARTH_M = 6_371_008.8
M_PER_DEG = math.pi * EARTH_M / 180


@dataclass(slots=True)
class Accident:
    """What the index needs to know about one traced accident."""

    incident_id: str
    at: float
    lat: float
    lon: float
    junction: str | None = None
    persons: tuple[str, ...] = ()
    operators: tuple[str, ...] = ()
    villages: tuple[str, ...] = ()
    seq: int | None = None  # its row's change stamp once known to be committed; None while only in memory

    def same_facts(self, other: Accident) -> bool:
        """Whether two entries describe the accident alike (the change stamp aside)."""
        return (self.at, self.lat, self.lon, self.junction, self.persons, self.operators, self.villages) == \
            (other.at, other.lat, other.lon, other.junction, other.persons, other.operators, other.villages)


@dataclass(slots=True)
class Hazard:
    """An open hazard point."""

    id: str
    lat: float
    lon: float
    kind: str = ""


@dataclass(slots=True)
class Section:
    """A road section: one or more polylines of (lat, lon), with its attributes."""

    id: str
    lines: list[list[tuple[float, float]]]
    lit: bool | None = None
    signalised: bool | None = None
    school_zone: bool = False
    name: str = ""


def metres(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Distance in metres (equirectangular: exact enough within a few kilometres)."""
    dy = (lat2 - lat1) * M_PER_DEG
    dx = (lon2 - lon1) * M_PER_DEG * math.cos(math.radians((lat1 + lat2) / 2))
    return math.hypot(dx, dy)


def _segment_metres(lat: float, lon: float, a: tuple[float, float], b: tuple[float, float]) -> float:
    """Distance from a point to the segment a–b, in a local metric frame centred on the point."""
    kx = M_PER_DEG * math.cos(math.radians(lat))
    ax, ay = (a[1] - lon) * kx, (a[0] - lat) * M_PER_DEG
    bx, by = (b[1] - lon) * kx, (b[0] - lat) * M_PER_DEG
    dx, dy = bx - ax, by - ay
    length2 = dx * dx + dy * dy
    t = 0.0 if length2 == 0 else max(0.0, min(1.0, -(ax * dx + ay * dy) / length2))
    return math.hypot(ax + t * dx, ay + t * dy)


def cell(lat: float, lon: float) -> tuple[int, int]:
    """The grid cell of a point."""
    return math.floor(lat / CELL_DEG), math.floor(lon / CELL_DEG)


def cells_around(lat: float, lon: float, radius_m: float) -> Iterator[tuple[int, int]]:
    """Every cell a circle of radius_m around the point touches."""
    dlat = radius_m / M_PER_DEG
    dlon = radius_m / (M_PER_DEG * max(math.cos(math.radians(lat)), 1e-6))
    r0, c0 = cell(lat - dlat, lon - dlon)
    r1, c1 = cell(lat + dlat, lon + dlon)
    for r in range(r0, r1 + 1):
        for c in range(c0, c1 + 1):
            yield r, c


@dataclass
class Index:
    """Accidents, hazards and road sections, gridded; accidents also by person, operator and village."""

    accidents: dict[str, Accident] = field(default_factory=dict)
    grid: dict[tuple[int, int], list[Accident]] = field(default_factory=lambda: defaultdict(list))
    by_person: dict[str, list[Accident]] = field(default_factory=lambda: defaultdict(list))
    by_operator: dict[str, list[Accident]] = field(default_factory=lambda: defaultdict(list))
    by_village: dict[str, list[Accident]] = field(default_factory=lambda: defaultdict(list))
    hazards: dict[str, Hazard] = field(default_factory=dict)
    hazard_grid: dict[tuple[int, int], dict[str, Hazard]] = field(default_factory=lambda: defaultdict(dict))
    sections: dict[str, Section] = field(default_factory=dict)
    section_grid: dict[tuple[int, int], set[str]] = field(default_factory=lambda: defaultdict(set))

    # --- accidents ---------------------------------------------------------------------------------

    def add_accident(self, accident: Accident) -> None:
        """Add (or replace) a traced accident."""
        if accident.incident_id in self.accidents:
            self._remove_accident(self.accidents[accident.incident_id])
        self.accidents[accident.incident_id] = accident
        self.grid[cell(accident.lat, accident.lon)].append(accident)
        for key, table in ((accident.persons, self.by_person), (accident.operators, self.by_operator),
                           (accident.villages, self.by_village)):
            for ref in set(key):
                table[ref].append(accident)

    def drop_accident(self, incident_id: str) -> None:
        """Forget an accident (its tracing was rolled back)."""
        old = self.accidents.pop(incident_id, None)
        if old is not None:
            self._remove_accident(old)

    def _remove_accident(self, old: Accident) -> None:
        self.grid[cell(old.lat, old.lon)].remove(old)
        for key, table in ((old.persons, self.by_person), (old.operators, self.by_operator),
                           (old.villages, self.by_village)):
            for ref in set(key):
                table[ref].remove(old)

    def accidents_near(self, lat: float, lon: float, at: float, radius_m: float, days: float,
                       junction: str | None = None) -> int:
        """Accidents within radius_m of the point in the `days` up to `at` (inclusive), optionally by junction."""
        since = at - days * 86_400
        count = 0
        for key in cells_around(lat, lon, radius_m):
            for acc in self.grid.get(key, ()):
                if since <= acc.at <= at and (junction is None or acc.junction == junction) \
                        and metres(lat, lon, acc.lat, acc.lon) <= radius_m:
                    count += 1
        return count

    def history(self, table: str, ref: str, at: float, days: float) -> int:
        """Accidents of a person, operator or village (`table`: by_person…) in the `days` up to `at`."""
        since = at - days * 86_400
        return sum(1 for acc in getattr(self, table).get(ref, ()) if since <= acc.at <= at)

    # --- hazards and road sections -----------------------------------------------------------------

    def put_hazard(self, hazard: Hazard | None, *, hazard_id: str) -> None:
        """Add, move or (None: remediated or deleted) drop an open hazard."""
        old = self.hazards.pop(hazard_id, None)
        if old is not None:
            self.hazard_grid[cell(old.lat, old.lon)].pop(hazard_id, None)
        if hazard is not None:
            self.hazards[hazard_id] = hazard
            self.hazard_grid[cell(hazard.lat, hazard.lon)][hazard_id] = hazard

    def hazards_near(self, lat: float, lon: float, radius_m: float) -> list[tuple[Hazard, float]]:
        """Open hazards within radius_m, nearest first, with their distance."""
        found = []
        for key in cells_around(lat, lon, radius_m):
            for hazard in self.hazard_grid.get(key, {}).values():
                d = metres(lat, lon, hazard.lat, hazard.lon)
                if d <= radius_m:
                    found.append((hazard, d))
        return sorted(found, key=lambda pair: (pair[1], pair[0].id))

    def put_section(self, section: Section | None, *, section_id: str) -> None:
        """Add, replace or (None) drop a road section."""
        old = self.sections.pop(section_id, None)
        if old is not None:
            for key in _segment_cells(old.lines):
                self.section_grid[key].discard(section_id)
        if section is not None:
            self.sections[section_id] = section
            for key in _segment_cells(section.lines):
                self.section_grid[key].add(section_id)

    def nearest_section(self, lat: float, lon: float, radius_m: float) -> tuple[Section, float] | None:
        """The nearest road section within radius_m, with its distance."""
        best: tuple[Section, float] | None = None
        seen: set[str] = set()
        for key in cells_around(lat, lon, radius_m):
            for section_id in self.section_grid.get(key, ()):
                if section_id in seen:
                    continue
                seen.add(section_id)
                section = self.sections[section_id]
                d = min((_segment_metres(lat, lon, a, b) for line in section.lines for a, b in _pairs(line)),
                        default=math.inf)
                if d <= radius_m and (best is None or (d, section.id) < (best[1], best[0].id)):
                    best = (section, d)
        return best


def _pairs(points: list[tuple[float, float]]) -> Iterable[tuple[tuple[float, float], tuple[float, float]]]:
    if len(points) == 1:
        return [(points[0], points[0])]
    return zip(points, points[1:], strict=False)


def _segment_cells(lines: list[list[tuple[float, float]]]) -> set[tuple[int, int]]:
    """The cells the polylines' segments pass through (their bounding boxes, generously)."""
    keys: set[tuple[int, int]] = set()
    for a, b in (pair for line in lines for pair in _pairs(line)):
        r0, c0 = cell(min(a[0], b[0]), min(a[1], b[1]))
        r1, c1 = cell(max(a[0], b[0]), max(a[1], b[1]))
        for r in range(r0, r1 + 1):
            for c in range(c0, c1 + 1):
                keys.add((r, c))
    return keys
