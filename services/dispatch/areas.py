"""Station responsibility areas: parsing them, locating a point in them, and serving them as GeoJSON."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field
from shapely import STRtree
from shapely.errors import ShapelyError
from shapely.geometry import Point, shape
from shapely.geometry.base import BaseGeometry

from shared.errors import Invalid


def parse_area(geojson: dict) -> BaseGeometry:
    """A valid polygon from GeoJSON (a Feature, a Polygon or a MultiPolygon); Invalid otherwise."""
    geometry = geojson.get("geometry", geojson) if isinstance(geojson, dict) else None
    if not isinstance(geometry, dict) or geometry.get("type") not in ("Polygon", "MultiPolygon"):
        raise Invalid("area must be a GeoJSON Polygon or MultiPolygon")
    try:
        polygon = shape(geometry)
    except (ValueError, TypeError, IndexError, KeyError, AttributeError, ShapelyError) as exc:
        raise Invalid(f"area is not valid GeoJSON: {exc}") from exc
    if polygon.is_empty or not polygon.is_valid:
        raise Invalid("area polygon is empty or self-intersecting")
    return polygon


@dataclass(frozen=True)
class AreaIndex:
    """An STRtree over station polygons.

    Boundary rule: a point covered by several areas (on a shared edge or corner) goes to the
    station whose id sorts first, so every point has exactly one station.
    """

    station_ids: tuple[str, ...]
    polygons: tuple[BaseGeometry, ...]
    tree: STRtree

    @classmethod
    def build(cls, areas: dict[str, dict]) -> AreaIndex:
        """Index the given {station_id: GeoJSON} areas."""
        ids = tuple(sorted(areas))
        polygons = tuple(parse_area(areas[i]) for i in ids)
        return cls(ids, polygons, STRtree(list(polygons)))

    def locate(self, lat: float, lon: float) -> str | None:
        """The station whose area holds the point, or None if it lies outside every area."""
        point = Point(lon, lat)
        hits = self.tree.query(point, predicate="covered_by")
        if len(hits) == 0:
            return None
        return min(self.station_ids[i] for i in hits)


class AreaProperties(BaseModel):
    """What the map shows of a station beside its polygon."""

    id: str
    name: str
    kind: str
    parent_id: str | None
    area_type: str | None
    population: int | None
    area_km2: float | None
    mode: str | None = Field(None, description="the integration mode in force (basic, deep, full), if classified")


class AreaFeature(BaseModel):
    """One station's responsibility area as a GeoJSON Feature (RFC 7946; coordinates are lon, lat)."""

    type: Literal["Feature"] = "Feature"
    id: str
    geometry: dict[str, Any] = Field(description="GeoJSON Polygon or MultiPolygon")
    properties: AreaProperties


class AreaCollection(BaseModel):
    """Station areas as a GeoJSON FeatureCollection, one page of them (ordered by station id)."""

    type: Literal["FeatureCollection"] = "FeatureCollection"
    features: list[AreaFeature]
    next_cursor: str | None = Field(None, description="pass as `cursor` for the next page (a GeoJSON foreign member)")


def area_feature(unit: Any) -> AreaFeature:
    """A unit with an area as a Feature."""
    geometry = unit.area.get("geometry", unit.area) if unit.area.get("type") == "Feature" else unit.area
    props = AreaProperties(id=unit.id, name=unit.name, kind=unit.kind, parent_id=unit.parent_id,
                           area_type=unit.area_type, population=unit.population, area_km2=unit.area_km2,
                           mode=unit.mode)
    return AreaFeature(id=unit.id, geometry=geometry, properties=props)

