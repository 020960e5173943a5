"""Geo helpers: H3 cells, point-in-polygon, area lookup and Chinese coordinate systems.

SafeCity stores places as WGS84 longitude/latitude plus an H3 cell index for aggregation.
Chinese devices and map services often report other datums:

* **GCJ-02** ("Mars coordinates"): the obfuscated datum mandated for maps published in
  mainland China (AMap/Gaode, Tencent, Apple Maps in China). Offsets of 100–700 m.
* **BD-09**: Baidu's further transform of GCJ-02.

The forward WGS84→GCJ-02 and GCJ-02↔BD-09 transforms follow the published formulas
(Krasovsky ellipsoid, the well-known polynomial/sine offset series). GCJ-02→WGS84 has no
closed form; it is inverted by fixed-point iteration to well under a millimetre, and so is
BD-09→GCJ-02. Outside mainland China (a coarse bounding box, as the published formulas use)
every conversion is the identity: the obfuscation is not applied there.

Coordinates are passed in GeoJSON order, ``(lng, lat)``, and returned as :class:`LngLat`.
Functions that take a point by keyword (``lat=``, ``lng=``) do so to make the order
impossible to confuse.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import h3
import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry import MultiPolygon, Point, Polygon, mapping, shape
from shapely.geometry.base import BaseGeometry

from safecity.platform.errors import InvalidInput

# --------------------------------------------------------------------------- basics


class LngLat(NamedTuple):
    """A point in GeoJSON order."""

    lng: float
    lat: float


CRS = Literal["wgs84", "gcj02", "bd09"]
CRS_NAMES: tuple[CRS, ...] = ("wgs84", "gcj02", "bd09")

EARTH_RADIUS_M = 6_371_008.8  # mean Earth radius (IUGG)


def distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle (haversine) distance in metres between two ``(lng, lat)`` points."""
    lng1, lat1 = math.radians(a[0]), math.radians(a[1])
    lng2, lat2 = math.radians(b[0]), math.radians(b[1])
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lng2 - lng1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def check_lng_lat(lng: float, lat: float) -> LngLat:
    """Validate a WGS84 point; raise :class:`InvalidInput` when out of range or not finite."""
    if not (math.isfinite(lng) and math.isfinite(lat)):
        raise InvalidInput("coordinates must be finite numbers")
    if not -180.0 <= lng <= 180.0:
        raise InvalidInput(f"longitude {lng} is outside [-180, 180]")
    if not -90.0 <= lat <= 90.0:
        raise InvalidInput(f"latitude {lat} is outside [-90, 90]")
    return LngLat(float(lng), float(lat))


# --------------------------------------------------------------------------- H3

DEFAULT_H3_RESOLUTION = 9  # ~0.1 km² hexagons: street-block aggregation


def h3_cell(*, lat: float, lng: float, resolution: int = DEFAULT_H3_RESOLUTION) -> str:
    """The H3 (v4) cell containing the WGS84 point, as a hex string."""
    check_lng_lat(lng, lat)
    if not 0 <= resolution <= 15:
        raise InvalidInput(f"H3 resolution {resolution} is outside 0..15")
    return str(h3.latlng_to_cell(lat, lng, resolution))


def h3_cell_center(cell: str) -> LngLat:
    """The centre of an H3 cell."""
    if not h3.is_valid_cell(cell):
        raise InvalidInput(f"{cell!r} is not an H3 cell")
    lat, lng = h3.cell_to_latlng(cell)
    return LngLat(lng, lat)


def h3_resolution(cell: str) -> int:
    if not h3.is_valid_cell(cell):
        raise InvalidInput(f"{cell!r} is not an H3 cell")
    return int(h3.get_resolution(cell))


# --------------------------------------------------------------------------- GCJ-02 / BD-09

# Krasovsky 1940 ellipsoid, as used by the published GCJ-02 formulas.
_KRASOVSKY_A = 6378245.0
_KRASOVSKY_EE = 0.00669342162296594323
_BD_X_PI = math.pi * 3000.0 / 180.0
_ITER_TOLERANCE_DEG = 1e-10  # ~0.01 mm
_ITER_MAX = 40


def out_of_china(lng: float, lat: float) -> bool:
    """True outside the coarse mainland-China box where GCJ-02 is not applied."""
    return not (72.004 <= lng <= 137.8347 and 0.8293 <= lat <= 55.8271)


def _offset_lat(x: float, y: float) -> float:
    ret = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x))
    ret += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    ret += (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
    ret += (160.0 * math.sin(y / 12.0 * math.pi) + 320.0 * math.sin(y * math.pi / 30.0)) * 2 / 3
    return ret


def _offset_lng(x: float, y: float) -> float:
    ret = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x))
    ret += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    ret += (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
    ret += (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2 / 3
    return ret


def _gcj_delta(lng: float, lat: float) -> tuple[float, float]:
    """The GCJ-02 offset (degrees) to add to a WGS84 point."""
    dlat = _offset_lat(lng - 105.0, lat - 35.0)
    dlng = _offset_lng(lng - 105.0, lat - 35.0)
    rad_lat = math.radians(lat)
    magic = 1.0 - _KRASOVSKY_EE * math.sin(rad_lat) ** 2
    sqrt_magic = math.sqrt(magic)
    dlat = (dlat * 180.0) / (
        (_KRASOVSKY_A * (1.0 - _KRASOVSKY_EE)) / (magic * sqrt_magic) * math.pi
    )
    dlng = (dlng * 180.0) / (_KRASOVSKY_A / sqrt_magic * math.cos(rad_lat) * math.pi)
    return dlng, dlat


def wgs84_to_gcj02(lng: float, lat: float) -> LngLat:
    """WGS84 → GCJ-02 (identity outside mainland China)."""
    if out_of_china(lng, lat):
        return LngLat(lng, lat)
    dlng, dlat = _gcj_delta(lng, lat)
    return LngLat(lng + dlng, lat + dlat)


def _invert(forward: Callable[[float, float], LngLat], lng: float, lat: float) -> LngLat:
    """Solve ``forward(p) == (lng, lat)`` for ``p`` by fixed-point iteration.

    The transforms are small, smooth perturbations of the identity, so the iteration
    ``p ← p − (forward(p) − target)`` converges fast (a few steps to 1e-10°).
    """
    x, y = lng, lat
    for _ in range(_ITER_MAX):
        fx, fy = forward(x, y)
        ex, ey = fx - lng, fy - lat
        x, y = x - ex, y - ey
        if abs(ex) < _ITER_TOLERANCE_DEG and abs(ey) < _ITER_TOLERANCE_DEG:
            break
    return LngLat(x, y)


def gcj02_to_wgs84(lng: float, lat: float) -> LngLat:
    """GCJ-02 → WGS84 by iteration (sub-millimetre; identity outside mainland China)."""
    if out_of_china(lng, lat):
        return LngLat(lng, lat)
    return _invert(wgs84_to_gcj02, lng, lat)


def gcj02_to_bd09(lng: float, lat: float) -> LngLat:
    """GCJ-02 → BD-09 (identity outside mainland China)."""
    if out_of_china(lng, lat):
        return LngLat(lng, lat)
    z = math.hypot(lng, lat) + 0.00002 * math.sin(lat * _BD_X_PI)
    theta = math.atan2(lat, lng) + 0.000003 * math.cos(lng * _BD_X_PI)
    return LngLat(z * math.cos(theta) + 0.0065, z * math.sin(theta) + 0.006)


def _bd09_to_gcj02_approx(lng: float, lat: float) -> LngLat:
    x, y = lng - 0.0065, lat - 0.006
    z = math.hypot(x, y) - 0.00002 * math.sin(y * _BD_X_PI)
    theta = math.atan2(y, x) - 0.000003 * math.cos(x * _BD_X_PI)
    return LngLat(z * math.cos(theta), z * math.sin(theta))


def bd09_to_gcj02(lng: float, lat: float) -> LngLat:
    """BD-09 → GCJ-02: the published closed-form inverse, refined by iteration."""
    if out_of_china(lng, lat):
        return LngLat(lng, lat)
    start = _bd09_to_gcj02_approx(lng, lat)
    x, y = start
    for _ in range(_ITER_MAX):
        fx, fy = gcj02_to_bd09(x, y)
        ex, ey = fx - lng, fy - lat
        x, y = x - ex, y - ey
        if abs(ex) < _ITER_TOLERANCE_DEG and abs(ey) < _ITER_TOLERANCE_DEG:
            break
    return LngLat(x, y)


def wgs84_to_bd09(lng: float, lat: float) -> LngLat:
    """WGS84 → BD-09 (via GCJ-02)."""
    if out_of_china(lng, lat):
        return LngLat(lng, lat)
    return gcj02_to_bd09(*wgs84_to_gcj02(lng, lat))


def bd09_to_wgs84(lng: float, lat: float) -> LngLat:
    """BD-09 → WGS84 (via GCJ-02)."""
    if out_of_china(lng, lat):
        return LngLat(lng, lat)
    return gcj02_to_wgs84(*bd09_to_gcj02(lng, lat))


_CONVERTERS: dict[tuple[str, str], Callable[[float, float], LngLat]] = {
    ("wgs84", "gcj02"): wgs84_to_gcj02,
    ("gcj02", "wgs84"): gcj02_to_wgs84,
    ("gcj02", "bd09"): gcj02_to_bd09,
    ("bd09", "gcj02"): bd09_to_gcj02,
    ("wgs84", "bd09"): wgs84_to_bd09,
    ("bd09", "wgs84"): bd09_to_wgs84,
}


def convert(lng: float, lat: float, *, src: str, dst: str) -> LngLat:
    """Convert a point between ``wgs84``, ``gcj02`` and ``bd09``."""
    for name in (src, dst):
        if name not in CRS_NAMES:
            raise InvalidInput(f"unknown coordinate system {name!r}; expected one of {CRS_NAMES}")
    check_lng_lat(lng, lat)
    if src == dst:
        return LngLat(lng, lat)
    return _CONVERTERS[(src, dst)](lng, lat)


def to_wgs84(lng: float, lat: float, *, crs: str) -> LngLat:
    """A device's reported point in ``crs`` as WGS84."""
    return convert(lng, lat, src=crs, dst="wgs84")


# --------------------------------------------------------------------------- GeoJSON areas

AREA_TYPES = ("Polygon", "MultiPolygon")


def area_geometry(geojson: Mapping[str, Any]) -> Polygon | MultiPolygon:
    """Parse and check a GeoJSON area (a Polygon/MultiPolygon geometry, or a Feature of one).

    Raises :class:`InvalidInput` with a plain reason for anything else: wrong type,
    coordinates outside WGS84 ranges, or an invalid (e.g. self-intersecting) polygon.
    """
    if not isinstance(geojson, Mapping):
        raise InvalidInput("area must be a GeoJSON object")
    if geojson.get("type") == "Feature":
        inner = geojson.get("geometry")
        if not isinstance(inner, Mapping):
            raise InvalidInput("area Feature has no geometry")
        geojson = inner
    kind = geojson.get("type")
    if kind not in AREA_TYPES:
        raise InvalidInput(f"area must be a Polygon or MultiPolygon, not {kind!r}")
    try:
        geom = shape(geojson)
    except Exception as exc:  # shapely raises several types for malformed coordinates
        raise InvalidInput(f"area coordinates are malformed: {exc}") from None
    if geom.is_empty:
        raise InvalidInput("area is empty")
    coords = shapely.get_coordinates(geom)
    if not bool((abs(coords[:, 0]) <= 180).all() and (abs(coords[:, 1]) <= 90).all()):
        raise InvalidInput("area coordinates are outside WGS84 ranges (lng, lat order)")
    if not geom.is_valid:
        reason = shapely.is_valid_reason(geom)
        raise InvalidInput(f"area is not a valid polygon: {reason}")
    assert isinstance(geom, Polygon | MultiPolygon)
    return geom


def normalise_area(geojson: Mapping[str, Any]) -> dict[str, Any]:
    """A checked area as a plain GeoJSON geometry dict (Feature wrappers removed)."""
    return geometry_to_geojson(area_geometry(geojson))


def geometry_to_geojson(geom: BaseGeometry) -> dict[str, Any]:
    """A shapely geometry as a JSON-ready GeoJSON dict (lists, not tuples)."""
    out: dict[str, Any] = _listify(mapping(geom))
    return out


def _listify(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_listify(v) for v in value]
    if isinstance(value, dict):
        return {k: _listify(v) for k, v in value.items()}
    return value


def point_in_area(*, lat: float, lng: float, area: Mapping[str, Any]) -> bool:
    """Whether the WGS84 point lies in (or on the edge of) a GeoJSON area."""
    check_lng_lat(lng, lat)
    return bool(area_geometry(area).covers(Point(lng, lat)))


def transform_geometry(
    geojson: Mapping[str, Any], fn: Callable[[float, float], tuple[float, float]]
) -> dict[str, Any]:
    """Apply ``fn(lng, lat)`` to every coordinate of a GeoJSON geometry (e.g. GCJ→WGS)."""
    geom = shape(geojson)

    def _apply(coords: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return np.array([fn(float(x), float(y)) for x, y in coords], dtype=np.float64)

    return geometry_to_geojson(shapely.transform(geom, _apply))


@dataclass(frozen=True)
class _Entry:
    key: Hashable
    geometry: BaseGeometry
    area: float


class AreaIndex:
    """Which of many areas contains a point: an STR-tree over prepared polygons.

    Build it once from ``(key, geojson)`` pairs; :meth:`find` returns the key of the
    smallest area that covers the point (so nested areas resolve to the most specific).
    """

    def __init__(self, areas: Iterable[tuple[Hashable, Mapping[str, Any]]]) -> None:
        entries = []
        for key, geojson in areas:
            geom = area_geometry(geojson)
            shapely.prepare(geom)
            entries.append(_Entry(key=key, geometry=geom, area=float(geom.area)))
        self._entries = entries
        self._tree = shapely.STRtree([e.geometry for e in entries])

    def __len__(self) -> int:
        return len(self._entries)

    def find(self, *, lat: float, lng: float) -> Hashable | None:
        check_lng_lat(lng, lat)
        point = Point(lng, lat)
        hits = [self._entries[int(i)] for i in self._tree.query(point, predicate="intersects")]
        if not hits:
            return None
        return min(hits, key=lambda e: e.area).key


def find_org_for_point(
    areas: Iterable[tuple[str, Mapping[str, Any]]], *, lat: float, lng: float
) -> str | None:
    """The id of the org (e.g. a station) whose area contains the point, if any.

    ``areas`` are ``(org_id, geojson_area)`` pairs; for repeated look-ups build an
    :class:`AreaIndex` once instead.
    """
    found = AreaIndex(areas).find(lat=lat, lng=lng)
    return None if found is None else str(found)


def voronoi_areas(
    points: Mapping[str, tuple[float, float]], clip: Mapping[str, Any]
) -> dict[str, dict[str, Any]]:
    """Synthetic areas: the Voronoi cells of ``points`` (``key → (lng, lat)``) clipped to
    the ``clip`` area. Every point must lie inside ``clip``; returns ``key → geometry``."""
    boundary = area_geometry(clip)
    if not points:
        return {}
    keys = list(points)
    pts = [Point(points[k]) for k in keys]
    for key, pt in zip(keys, pts, strict=True):
        if not boundary.covers(pt):
            raise InvalidInput(f"point {key!r} lies outside the area it should divide")
    if len(keys) == 1:
        return {keys[0]: geometry_to_geojson(boundary)}
    cells = shapely.voronoi_polygons(
        shapely.MultiPoint(pts), extend_to=boundary.envelope.buffer(1.0)
    )
    out: dict[str, dict[str, Any]] = {}
    for cell in shapely.get_parts(cells):
        owners = [k for k, pt in zip(keys, pts, strict=True) if cell.covers(pt)]
        if not owners:
            continue
        clipped = shapely.make_valid(cell.intersection(boundary))
        polys = [g for g in shapely.get_parts(clipped) if isinstance(g, Polygon) and g.area > 0]
        if not polys:
            continue
        geom: BaseGeometry = polys[0] if len(polys) == 1 else MultiPolygon(polys)
        out[owners[0]] = geometry_to_geojson(geom)
    return out
