"""Station responsibility areas and locating a point in them with a spatial index."""
from __future__ import annotations

from dataclasses import dataclass

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
