"""Geo helpers: H3 cells, areas, point-in-polygon and the GCJ-02/BD-09 conversions."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import shape

from safecity.platform import geo
from safecity.platform.errors import InvalidInput

# --------------------------------------------------------------------------- references

# Published reference values of the standard formulas (as quoted by the widely used
# coordtransform implementations) for Tiananmen, Beijing.
BEIJING = (116.404, 39.915)
BEIJING_WGS_TO_GCJ = (116.41024449916938, 39.91640428150164)
BEIJING_GCJ_TO_BD = (116.41036949371029, 39.92133699351021)
BEIJING_BD_TO_GCJ_CLOSED_FORM = (116.39762729119315, 39.90865673957631)


def test_wgs84_to_gcj02_matches_the_published_reference() -> None:
    got = geo.wgs84_to_gcj02(*BEIJING)
    assert got == pytest.approx(BEIJING_WGS_TO_GCJ, abs=1e-12)


def test_gcj02_to_bd09_matches_the_published_reference() -> None:
    got = geo.gcj02_to_bd09(*BEIJING)
    assert got == pytest.approx(BEIJING_GCJ_TO_BD, abs=1e-12)


def test_bd09_to_gcj02_refines_the_closed_form_inverse() -> None:
    got = geo.bd09_to_gcj02(*BEIJING)
    # The published closed form is itself approximate; the refined answer stays within
    # a few centimetres of it and maps back exactly.
    assert geo.distance_m(got, BEIJING_BD_TO_GCJ_CLOSED_FORM) < 0.1
    assert geo.distance_m(geo.gcj02_to_bd09(*got), BEIJING) < 0.001


def test_gcj02_to_wgs84_inverts_the_reference_point_to_the_millimetre() -> None:
    got = geo.gcj02_to_wgs84(*BEIJING_WGS_TO_GCJ)
    assert geo.distance_m(got, BEIJING) < 0.001


def test_the_shanghai_offset_has_the_known_size_and_direction() -> None:
    peoples_square = (121.4737, 31.2304)
    gcj = geo.wgs84_to_gcj02(*peoples_square)
    # In Shanghai GCJ-02 shifts points roughly 450 m east and 200 m south.
    assert 0.004 < gcj.lng - peoples_square[0] < 0.005
    assert -0.003 < gcj.lat - peoples_square[1] < -0.001
    assert 400 < geo.distance_m(gcj, peoples_square) < 600


def test_convert_dispatches_and_rejects_unknown_systems() -> None:
    assert geo.convert(*BEIJING, src="wgs84", dst="gcj02") == geo.wgs84_to_gcj02(*BEIJING)
    assert geo.convert(*BEIJING, src="bd09", dst="bd09") == BEIJING
    assert geo.to_wgs84(*BEIJING_WGS_TO_GCJ, crs="gcj02") == pytest.approx(BEIJING, abs=1e-8)
    with pytest.raises(InvalidInput, match="unknown coordinate system"):
        geo.convert(*BEIJING, src="wgs84", dst="epsg:3857")
    with pytest.raises(InvalidInput, match="latitude"):
        geo.convert(116.0, 95.0, src="wgs84", dst="gcj02")


# --------------------------------------------------------------------------- properties

inside_china = st.tuples(
    st.floats(min_value=73.5, max_value=134.8, allow_nan=False),
    st.floats(min_value=18.2, max_value=53.5, allow_nan=False),
)
outside_china = st.one_of(
    st.tuples(
        st.floats(min_value=-180, max_value=72.0, allow_nan=False),
        st.floats(min_value=-90, max_value=90, allow_nan=False),
    ),
    st.tuples(
        st.floats(min_value=137.9, max_value=180, allow_nan=False),
        st.floats(min_value=-90, max_value=90, allow_nan=False),
    ),
    st.tuples(
        st.floats(min_value=72.0, max_value=137.9, allow_nan=False),
        st.floats(min_value=55.9, max_value=90, allow_nan=False),
    ),
    st.tuples(
        st.floats(min_value=72.0, max_value=137.9, allow_nan=False),
        st.floats(min_value=-90, max_value=0.8, allow_nan=False),
    ),
)

ROUND_TRIPS = [
    ("wgs84", "gcj02"),
    ("gcj02", "wgs84"),
    ("gcj02", "bd09"),
    ("bd09", "gcj02"),
    ("wgs84", "bd09"),
    ("bd09", "wgs84"),
]


@settings(max_examples=150)
@given(point=inside_china, pair=st.sampled_from(ROUND_TRIPS))
def test_round_trips_inside_china_stay_within_half_a_metre(
    point: tuple[float, float], pair: tuple[str, str]
) -> None:
    src, dst = pair
    there = geo.convert(*point, src=src, dst=dst)
    back = geo.convert(*there, src=dst, dst=src)
    assert geo.distance_m(back, point) < 0.5


@settings(max_examples=100)
@given(point=inside_china)
def test_conversions_inside_china_really_move_the_point(point: tuple[float, float]) -> None:
    gcj = geo.wgs84_to_gcj02(*point)
    bd = geo.wgs84_to_bd09(*point)
    # GCJ-02 offsets are tens to hundreds of metres, never kilometres away.
    assert 1.0 < geo.distance_m(gcj, point) < 1500.0
    assert 1.0 < geo.distance_m(bd, gcj) < 1500.0


@settings(max_examples=150)
@given(point=outside_china, pair=st.sampled_from(ROUND_TRIPS))
def test_every_conversion_is_the_identity_outside_china(
    point: tuple[float, float], pair: tuple[str, str]
) -> None:
    src, dst = pair
    assert geo.convert(*point, src=src, dst=dst) == point


# --------------------------------------------------------------------------- H3


def test_h3_cell_matches_the_h3_reference_cell() -> None:
    # The example from the H3 documentation (San Francisco, resolution 9).
    cell = geo.h3_cell(lat=37.7752702151959, lng=-122.418307270836, resolution=9)
    assert cell == "8928308280fffff"
    assert geo.h3_resolution(cell) == 9
    centre = geo.h3_cell_center(cell)
    assert geo.distance_m(centre, (-122.418307270836, 37.7752702151959)) < 300


def test_h3_resolution_is_configurable_and_nested() -> None:
    fine = geo.h3_cell(lat=31.2304, lng=121.4737, resolution=11)
    coarse = geo.h3_cell(lat=31.2304, lng=121.4737, resolution=7)
    default = geo.h3_cell(lat=31.2304, lng=121.4737)
    assert geo.h3_resolution(fine) == 11
    assert geo.h3_resolution(coarse) == 7
    assert geo.h3_resolution(default) == geo.DEFAULT_H3_RESOLUTION
    import h3

    assert h3.cell_to_parent(fine, 7) == coarse


@pytest.mark.parametrize(
    ("lat", "lng", "resolution", "message"),
    [
        (91.0, 0.0, 9, "latitude"),
        (0.0, 181.0, 9, "longitude"),
        (math.nan, 0.0, 9, "finite"),
        (0.0, 0.0, 16, "resolution"),
    ],
)
def test_h3_cell_rejects_bad_input(lat: float, lng: float, resolution: int, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        geo.h3_cell(lat=lat, lng=lng, resolution=resolution)


def test_h3_rejects_a_string_that_is_not_a_cell() -> None:
    with pytest.raises(InvalidInput, match="not an H3 cell"):
        geo.h3_cell_center("not-a-cell")


# --------------------------------------------------------------------------- areas

SQUARE = {
    "type": "Polygon",
    "coordinates": [[[121.0, 31.0], [121.1, 31.0], [121.1, 31.1], [121.0, 31.1], [121.0, 31.0]]],
}
INNER = {
    "type": "Polygon",
    "coordinates": [
        [[121.02, 31.02], [121.04, 31.02], [121.04, 31.04], [121.02, 31.04], [121.02, 31.02]]
    ],
}


def test_point_in_area_uses_lng_lat_order_and_includes_the_edge() -> None:
    assert geo.point_in_area(lat=31.05, lng=121.05, area=SQUARE)
    assert geo.point_in_area(lat=31.0, lng=121.05, area=SQUARE)  # on the edge
    with pytest.raises(InvalidInput, match="latitude"):  # swapped order is caught
        geo.point_in_area(lat=121.05, lng=31.05, area=SQUARE)
    assert not geo.point_in_area(lat=31.2, lng=121.05, area=SQUARE)
    feature = {"type": "Feature", "properties": {}, "geometry": SQUARE}
    assert geo.point_in_area(lat=31.05, lng=121.05, area=feature)


@pytest.mark.parametrize(
    ("area", "message"),
    [
        ({"type": "Point", "coordinates": [121.0, 31.0]}, "Polygon or MultiPolygon"),
        ({"type": "Polygon", "coordinates": "nope"}, "malformed"),
        ({"type": "Polygon", "coordinates": []}, "empty"),
        (
            {
                "type": "Polygon",
                "coordinates": [[[31.0, 121.0], [31.1, 121.0], [31.1, 121.1], [31.0, 121.0]]],
            },
            "outside WGS84",
        ),
        (
            {  # a bow tie: self-intersecting
                "type": "Polygon",
                "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]],
            },
            "not a valid polygon",
        ),
        ({"type": "Feature", "geometry": None}, "no geometry"),
        ([1, 2, 3], "GeoJSON object"),
    ],
)
def test_bad_areas_are_refused_with_a_reason(area: object, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        geo.area_geometry(area)  # type: ignore[arg-type]


def test_area_index_returns_the_most_specific_area() -> None:
    index = geo.AreaIndex([("outer", SQUARE), ("inner", INNER)])
    assert len(index) == 2
    assert index.find(lat=31.03, lng=121.03) == "inner"
    assert index.find(lat=31.08, lng=121.08) == "outer"
    assert index.find(lat=30.0, lng=121.03) is None


def test_find_org_for_point() -> None:
    areas = [("station-a", INNER), ("station-b", SQUARE)]
    assert geo.find_org_for_point(areas, lat=31.03, lng=121.03) == "station-a"
    assert geo.find_org_for_point(areas, lat=31.09, lng=121.09) == "station-b"
    assert geo.find_org_for_point(areas, lat=40.0, lng=116.0) is None


def test_voronoi_areas_partition_the_clip_area() -> None:
    points = {"a": (121.02, 31.02), "b": (121.08, 31.02), "c": (121.05, 31.08)}
    cells = geo.voronoi_areas(points, SQUARE)
    assert set(cells) == {"a", "b", "c"}
    clip = shape(SQUARE)
    total = sum(shape(c).area for c in cells.values())
    assert total == pytest.approx(clip.area, rel=1e-9)
    for key, (lng, lat) in points.items():
        assert geo.point_in_area(lat=lat, lng=lng, area=cells[key])
        assert shape(cells[key]).within(clip.buffer(1e-9))
    assert geo.voronoi_areas({"only": (121.05, 31.05)}, SQUARE)["only"]["type"] == "Polygon"


def test_voronoi_refuses_points_outside_the_clip_area() -> None:
    with pytest.raises(InvalidInput, match="outside"):
        geo.voronoi_areas({"a": (121.5, 31.5), "b": (121.05, 31.05)}, SQUARE)


def test_transform_geometry_converts_every_vertex() -> None:
    moved = geo.transform_geometry(SQUARE, geo.wgs84_to_gcj02)
    first = moved["coordinates"][0][0]
    assert first == pytest.approx(list(geo.wgs84_to_gcj02(121.0, 31.0)))
    back = geo.transform_geometry(moved, geo.gcj02_to_wgs84)
    assert back["coordinates"][0][2] == pytest.approx([121.1, 31.1], abs=1e-9)


def test_distance_m_is_haversine() -> None:
    # One degree of latitude is about 111.2 km.
    assert geo.distance_m((0.0, 0.0), (0.0, 1.0)) == pytest.approx(111_195, rel=1e-3)
    assert geo.distance_m(BEIJING, BEIJING) == 0.0
