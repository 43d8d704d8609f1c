"""The demo district's map and organisation: 26 station areas (Voronoi cells in a district outline) and units.

The layout is fixed (the same for every seed) so that places keep their names: the point
(30.10 N, 120.45 E) always lies in ps-yiqiao, a rural station. Seeds vary the records, not the map.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass

from shapely.geometry import MultiPoint, Point, Polygon, mapping
from shapely.ops import voronoi_diagram

LAT0, LON0 = 30.12, 120.40  # the district's centre
KM_PER_DEG_LAT = 111.2
KM_PER_DEG_LON = KM_PER_DEG_LAT * math.cos(math.radians(LAT0))
URBAN_CORE_KM = (-9.0, 8.0)  # (east, north) of the centre: the old town lies north-west
YIQIAO_POINT = (30.10, 120.45)  # (lat, lon) other tests rely on: inside ps-yiqiao

URBAN = ["chengxiang", "beigan", "shushan", "ningwei", "xinjie", "xintang"]
FRINGE = ["wenyan", "yaqian", "guali", "jingjiang", "nanyang"]
RURAL = ["yiqiao", "heshang", "louta", "daicun", "jinhua", "puyang", "linpu", "suoqian", "hongshan", "dangwan",
         "yinong", "yipeng", "hezhuang", "qianjin", "xinwan"]
CHINESE = {
    "chengxiang": "城厢", "beigan": "北干", "shushan": "蜀山", "ningwei": "宁围", "xinjie": "新街", "xintang": "新塘",
    "wenyan": "闻堰", "yaqian": "衙前", "guali": "瓜沥", "jingjiang": "靖江", "nanyang": "南阳", "yiqiao": "义桥",
    "heshang": "河上", "louta": "楼塔", "daicun": "戴村", "jinhua": "进化", "puyang": "浦阳", "linpu": "临浦",
    "suoqian": "所前", "hongshan": "红山", "dangwan": "党湾", "yinong": "益农", "yipeng": "义蓬", "hezhuang": "河庄",
    "qianjin": "前进", "xinwan": "新湾",
}


@dataclass(frozen=True)
class StationArea:
    """A station's place on the map."""

    id: str
    name: str
    area_type: str
    polygon: Polygon  # lon/lat
    area_km2: float
    parent_id: str


def to_lonlat(x_km: float, y_km: float) -> tuple[float, float]:
    """Kilometres east/north of the centre → (lon, lat)."""
    return LON0 + x_km / KM_PER_DEG_LON, LAT0 + y_km / KM_PER_DEG_LAT


def to_km(lon: float, lat: float) -> tuple[float, float]:
    """(lon, lat) → kilometres east/north of the centre."""
    return (lon - LON0) * KM_PER_DEG_LON, (lat - LAT0) * KM_PER_DEG_LAT


def _outline_km() -> Polygon:
    """An irregular district outline, about 1,400 km²."""
    radii = [23, 21, 24, 22, 19, 21, 24, 25, 22, 20, 21, 23]
    return Polygon([(r * math.cos(2 * math.pi * i / len(radii)), r * math.sin(2 * math.pi * i / len(radii)))
                    for i, r in enumerate(radii)])


def _seed_points(outline: Polygon) -> tuple[list[tuple[float, float]], list[tuple[float, float]],
                                           list[tuple[float, float]]]:
    ux, uy = URBAN_CORE_KM
    urban = [(ux, uy)] + [(ux + 3.6 * math.cos(a), uy + 3.6 * math.sin(a))
                          for a in (math.radians(d) for d in (10, 82, 154, 226, 298))]
    fringe = [(ux + 8.5 * math.cos(a), uy + 8.5 * math.sin(a)) for a in (math.radians(d) for d in (-40, 30, 110,
                                                                                                  185, 255))]
    fringe = [p if outline.contains(Point(p)) else (ux + 0.7 * (p[0] - ux), uy + 0.7 * (p[1] - uy)) for p in fringe]
    rng = random.Random(7)  # fixed: the map does not change with the records' seed
    rural: list[tuple[float, float]] = []
    taken = urban + fringe
    while len(rural) < len(RURAL):
        p = (rng.uniform(-24, 24), rng.uniform(-24, 24))
        if not outline.buffer(-2.5).contains(Point(p)) or math.dist(p, (ux, uy)) < 14.5:
            continue
        if all(math.dist(p, q) > 7.2 for q in rural) and all(math.dist(p, q) > 5 for q in taken):
            rural.append(p)
    return urban, fringe, rural


def _km2(poly_km: Polygon) -> float:
    return round(poly_km.area, 1)


def station_areas() -> list[StationArea]:
    """The 26 stations with their areas, area type, size and parent unit (fixed layout)."""
    outline = _outline_km()
    urban, fringe, rural = _seed_points(outline)
    points = urban + fringe + rural
    cells = voronoi_diagram(MultiPoint(points), envelope=outline.buffer(10))
    by_point: dict[int, Polygon] = {}
    for cell in cells.geoms:
        for i, p in enumerate(points):
            if cell.contains(Point(p)):
                by_point[i] = cell.intersection(outline)
    yiqiao_km = to_km(YIQIAO_POINT[1], YIQIAO_POINT[0])
    rural_order = list(range(len(urban) + len(fringe), len(points)))
    yiqiao_i = next(i for i in rural_order if by_point[i].contains(Point(yiqiao_km)))
    rural_names = iter(n for n in RURAL if n != "yiqiao")
    # rural stations split among three squadrons by bearing from the centre (west, south, east)
    bearings = {i: math.degrees(math.atan2(points[i][1], points[i][0])) % 360 for i in rural_order}
    ranked = sorted(rural_order, key=lambda i: bearings[i])
    squadron_of = {i: f"sq-rural-{1 + ranked.index(i) * 3 // len(ranked)}" for i in rural_order}
    areas = []
    for i, poly_km in sorted(by_point.items()):
        if i < len(urban):
            key, kind, parent = URBAN[i], "urban", "sq-urban"
        elif i < len(urban) + len(fringe):
            key, kind, parent = FRINGE[i - len(urban)], "fringe", "brigade"
        else:
            key = "yiqiao" if i == yiqiao_i else next(rural_names)
            kind, parent = "rural", squadron_of[i]
        ring = [to_lonlat(x, y) for x, y in poly_km.exterior.coords]
        poly = Polygon([(round(lon, 6), round(lat, 6)) for lon, lat in ring])
        areas.append(StationArea(f"ps-{key}", station_name(key, one_stop=kind == "fringe"), kind, poly,
                                 _km2(poly_km), parent))
    return areas


def station_name(key: str, *, one_stop: bool = False) -> str:
    """A station's name as officers write it, pinyin and English beside: 义桥派出所 (Yiqiao station)."""
    kind = "one-stop station" if one_stop else "station"
    return f"{CHINESE[key]}派出所{'（一站式）' if one_stop else ''} ({key.capitalize()} {kind})"


def village_name(station_key: str, n: int) -> str:
    """A village (村社) in a station's area: 义桥第3村 (Yiqiao village 3)."""
    return f"{CHINESE[station_key]}第{n}村 ({station_key.capitalize()} village {n})"


NUMERALS = {1: "一", 2: "二", 3: "三"}


def organisation_units() -> list[dict]:
    """Brigade, its offices and squadrons (9 officers in each traffic duty squadron)."""
    units = [
        {"id": "brigade", "name": "交警大队 (district traffic police brigade)", "kind": "brigade"},
        {"id": "case-squadron", "name": "查案中队 (case squadron)", "kind": "case_squadron", "parent_id": "brigade"},
        {"id": "order-squadron", "name": "秩序中队 (order squadron)", "kind": "order_squadron", "parent_id": "brigade"},
        {"id": "foundation-squadron", "name": "基础中队 (foundation squadron)", "kind": "foundation_squadron",
         "parent_id": "brigade"},
        {"id": "sq-urban", "name": "城区交警执勤中队 (urban traffic duty squadron, 9 officers)", "kind": "squadron",
         "parent_id": "brigade"},
    ]
    units += [{"id": f"sq-rural-{n}", "name": f"农村交警执勤{NUMERALS[n]}中队 (rural traffic duty squadron {n}, "
               "9 officers)", "kind": "squadron", "parent_id": "brigade"} for n in (1, 2, 3)]
    return units


def station_unit(area: StationArea, population: int) -> dict:
    """A station as `POST /api/v1/units` takes it."""
    return {"id": area.id, "name": area.name, "kind": "station", "parent_id": area.parent_id,
            "area_type": area.area_type, "population": population, "area_km2": area.area_km2,
            "area": mapping(area.polygon)}
