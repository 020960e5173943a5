"""Sensor registry import: CSV and GeoJSON in each coordinate system, bad files, upserts."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from safecity.orgs import service as orgs
from safecity.platform.errors import InvalidInput
from safecity.platform.outbox import OutboxEvent
from safecity.platform.runtime import Runtime
from safecity.security.audit import AuditEntry
from safecity.sensing import registry_import
from safecity.sensing.models import Sensor
from tests.conftest import City

pytestmark = pytest.mark.db

# A published WGS84 ↔ GCJ-02 test vector (Shanghai, Pudong): the GCJ-02 point lies ~420 m
# east of the WGS84 one, across the pd-s1 | pd-s2 boundary at lng 121.53 below.
WGS = (121.5272106, 31.1774276)
GCJ = (121.531541859215, 31.17530398364597)
BD = (121.53801568643858, 31.181328606874466)  # the same place in BD-09

# Station areas (WGS84 lng ranges, lat 31.15..31.25), in city order hp-s1, hp-s2, pd-s1, pd-s2.
BANDS = ((121.40, 121.45), (121.45, 121.50), (121.50, 121.53), (121.53, 121.60))


def square(x0: float, x1: float, y0: float = 31.15, y1: float = 31.25) -> dict[str, Any]:
    ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
    return {"type": "Polygon", "coordinates": [ring]}


def give_stations_areas(runtime: Runtime, city: City) -> None:
    with runtime.sessions.begin() as s:
        for station, (x0, x1) in zip(city.stations, BANDS, strict=True):
            orgs.update(session=s, org_id=station.id, area=square(x0, x1))


@pytest.fixture
def stations(runtime: Runtime, city: City) -> City:
    give_stations_areas(runtime, city)
    return city


HEADER = "id,type,lng,lat,compound,building,unit,gateway_id,device_group,status,installed_at\n"


def csv_bytes(*rows: str, header: str = HEADER) -> io.BytesIO:
    return io.BytesIO((header + "".join(r + "\n" for r in rows)).encode("utf-8"))


def run_import(
    runtime: Runtime, source: io.BytesIO, *, crs: str, filename: str = "sensors.csv", **kw: Any
) -> registry_import.ImportResult:
    with runtime.sessions.begin() as s:
        return registry_import.import_sensors(
            session=s, source=source, filename=filename, crs=crs, **kw
        )


def count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(Sensor)) or 0)


@pytest.mark.parametrize(("crs", "point"), [("wgs84", WGS), ("gcj02", GCJ), ("bd09", BD)])
def test_csv_import_converts_each_crs_to_wgs84_and_assigns_the_station(
    runtime: Runtime, stations: City, crs: str, point: tuple[float, float]
) -> None:
    source = csv_bytes(
        f"d-1,door,{point[0]},{point[1]},Sunny Court,3号楼,1201室,gw-1,doors-a,,"
        "2024-05-01T08:00+08:00"
    )
    result = run_import(runtime, source, crs=crs)
    assert (result.total, result.created, result.updated, result.unassigned) == (1, 1, 0, 0)
    with runtime.sessions() as s:
        sensor = s.get(Sensor, "d-1")
        assert sensor is not None
        assert sensor.lng == pytest.approx(WGS[0], abs=1e-7)
        assert sensor.lat == pytest.approx(WGS[1], abs=1e-7)
        assert sensor.org_id == stations.stations[2].id  # pd-s1, not pd-s2 where GCJ lies
        assert sensor.h3_cell.startswith("89")  # resolution 9
        assert (sensor.compound, sensor.building, sensor.unit) == ("Sunny Court", "3号楼", "1201室")
        assert (sensor.gateway_id, sensor.device_group, sensor.status) == (
            "gw-1",
            "doors-a",
            "active",
        )
        assert sensor.installed_at is not None
        assert sensor.installed_at.hour == 0


def test_without_conversion_the_gcj_point_would_land_in_the_neighbouring_station(
    runtime: Runtime, stations: City
) -> None:
    run_import(
        runtime, csv_bytes(f"d-1,door,{GCJ[0]},{GCJ[1]}", header="id,type,lng,lat\n"), crs="wgs84"
    )
    with runtime.sessions() as s:
        sensor = s.get(Sensor, "d-1")
        assert sensor is not None
        assert sensor.org_id == stations.stations[3].id


def feature(sensor_id: str, lng: float, lat: float, **props: Any) -> dict[str, Any]:
    return {
        "type": "Feature",
        "id": sensor_id,
        "geometry": {"type": "Point", "coordinates": [lng, lat]},
        "properties": {"type": "smoke", **props},
    }


@pytest.mark.parametrize(("crs", "point"), [("wgs84", WGS), ("gcj02", GCJ), ("bd09", BD)])
def test_geojson_feature_collection_import(
    runtime: Runtime, stations: City, crs: str, point: tuple[float, float]
) -> None:
    collection = {
        "type": "FeatureCollection",
        "name": "sensors",
        "crs": {"type": "name", "properties": {"name": "ignored"}},
        "features": [feature("s-1", *point, building="B2"), feature("s-2", 121.42, 31.2)],
    }
    text = json.dumps(collection, indent=2)
    result = run_import(runtime, io.BytesIO(text.encode()), crs=crs, filename="s.geojson")
    assert (result.created, result.format) == (2, "geojson")
    with runtime.sessions() as s:
        one = s.get(Sensor, "s-1")
        assert one is not None
        assert one.building == "B2"
        assert one.type == "smoke"
        assert (one.lng, one.lat) == pytest.approx(WGS, abs=1e-7)
        assert one.org_id == stations.stations[2].id
        two = s.get(Sensor, "s-2")
        assert two is not None
        assert two.org_id == stations.stations[0].id


def test_newline_delimited_geojson_is_read_as_a_stream(runtime: Runtime, stations: City) -> None:
    lines = [json.dumps(feature(f"n-{i}", 121.41 + i * 0.05, 31.2)) for i in range(4)]
    source = io.BytesIO(("\n".join(lines) + "\n").encode())
    result = run_import(runtime, source, crs="wgs84", filename="s.geojsonl")
    assert result.created == 4
    with runtime.sessions() as s:
        owners = [s.get(Sensor, f"n-{i}").org_id for i in range(4)]  # type: ignore[union-attr]
    assert owners == [st.id for st in stations.stations]


def test_a_point_outside_every_station_is_kept_unassigned(runtime: Runtime, stations: City) -> None:
    result = run_import(
        runtime, csv_bytes("far-1,parking,120.0,30.0", header="id,type,lng,lat\n"), crs="wgs84"
    )
    assert result.unassigned == 1
    with runtime.sessions() as s:
        sensor = s.get(Sensor, "far-1")
        assert sensor is not None
        assert sensor.org_id is None


def test_reimport_updates_and_keeps_what_the_file_does_not_give(
    runtime: Runtime, stations: City
) -> None:
    first = csv_bytes(
        "u-1,door,121.42,31.2,,,,gw-1,,,2024-01-01T00:00Z", "u-2,smoke,121.42,31.2,,,,,,,"
    )
    run_import(runtime, first, crs="wgs84")
    with runtime.sessions() as s:
        created_at = s.get(Sensor, "u-1").created_at  # type: ignore[union-attr]
    second = csv_bytes(
        "u-1,intrusion,121.56,31.2,,,,gw-9,,maintenance,", "u-3,door,121.47,31.2,,,,,,,"
    )
    result = run_import(runtime, second, crs="wgs84")
    assert (result.created, result.updated) == (1, 1)
    with runtime.sessions() as s:
        assert count(s) == 3
        sensor = s.get(Sensor, "u-1")
        assert sensor is not None
        assert (sensor.type, sensor.status, sensor.gateway_id) == (
            "intrusion",
            "maintenance",
            "gw-9",
        )
        assert sensor.org_id == stations.stations[3].id  # moved to pd-s2
        assert sensor.installed_at is not None
        assert sensor.installed_at.year == 2024
        assert sensor.created_at == created_at


def test_one_audit_record_and_one_event_per_import(runtime: Runtime, stations: City) -> None:
    rows = [f"e-{i},water_meter,121.42,31.2" for i in range(30)]
    result = run_import(
        runtime, csv_bytes(*rows, header="id,type,lng,lat\n"), crs="wgs84", batch_rows=7
    )
    assert result.created == 30
    with runtime.sessions() as s:
        events = s.scalars(select(OutboxEvent).where(OutboxEvent.source == "sensing")).all()
        assert [e.type for e in events] == ["sensing.sensors.imported"]
        assert events[0].payload["created"] == 30
        assert events[0].payload["crs"] == "wgs84"
        audits = s.scalars(
            select(AuditEntry).where(AuditEntry.action == "sensing.sensors.import")
        ).all()
        assert len(audits) == 1
        assert audits[0].target_id == result.import_id


BAD_FILES = [
    ("id,type,lng\nx,door,121.4\n", "line 1: missing column(s) lat"),
    ("id,type,lng,lat,colour\n", "unknown column(s) 'colour'"),
    (
        "id,type,lng,lat\nok-1,door,121.42,31.2\nb-1,door,abc,31.2\n",
        "line 3: lng 'abc' is not a number",
    ),
    ("id,type,lng,lat\nb-1,door,121.42,95\n", "line 2: bad coordinates: latitude 95.0"),
    ("id,type,lng,lat\nb-1,door,,31.2\n", "line 2: lng is required"),
    ("id,type,lng,lat\nb-1,dor,121.42,31.2\n", "line 2: unknown sensor type 'dor'"),
    (
        "id,type,lng,lat\nb-1,door,121.42,31.2\nb-2,door,121.42,31.2\nb-1,smoke,121.42,31.2\n",
        "line 4: duplicate id 'b-1' (first at line 2)",
    ),
    ("id,type,lng,lat,status\nb-1,door,121.42,31.2,broken\n", "line 2: unknown status 'broken'"),
    (
        "id,type,lng,lat,installed_at\nb-1,door,121.4,31.2,2024-01-01\n",
        "line 2: installed_at needs a timezone",
    ),
    ("id,type,lng,lat\nb 1,door,121.42,31.2\n", "line 2: id 'b 1' must be"),
    ("id,type,lng,lat\nb-1,door,121.42\n", "line 2: has 3 fields, the header has 4"),
]


@pytest.mark.parametrize(("text", "message"), BAD_FILES)
def test_bad_csv_files_are_rejected_with_line_numbers_and_nothing_written(
    runtime: Runtime, stations: City, text: str, message: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        run_import(runtime, io.BytesIO(text.encode()), crs="wgs84")
    assert message in caught.value.detail
    assert "sensors.csv" in caught.value.detail
    with runtime.sessions() as s:
        assert count(s) == 0
        assert s.scalars(select(OutboxEvent).where(OutboxEvent.source == "sensing")).all() == []


def test_every_bad_row_is_reported(runtime: Runtime, stations: City) -> None:
    text = "id,type,lng,lat\nb-1,dor,1,1\nok,door,121.42,31.2\nb-3,door,x,1\nb-4,door,1,-91\n"
    with pytest.raises(registry_import.ImportFailed) as caught:
        run_import(runtime, io.BytesIO(text.encode()), crs="gcj02")
    assert [p.where for p in caught.value.problems] == [
        "sensors.csv line 2",
        "sensors.csv line 4",
        "sensors.csv line 5",
    ]
    assert caught.value.detail.startswith("sensors.csv: 3 problems, nothing imported")


def test_skip_invalid_imports_the_good_rows_and_reports_the_bad(
    runtime: Runtime, stations: City
) -> None:
    text = "id,type,lng,lat\nb-1,dor,1,1\nok,door,121.42,31.2\nok,smoke,121.42,31.2\n"
    result = run_import(runtime, io.BytesIO(text.encode()), crs="wgs84", skip_invalid=True)
    assert (result.created, result.skipped) == (1, 2)
    assert [str(p) for p in result.problems] == [
        "sensors.csv line 2: unknown sensor type 'dor'",
        "sensors.csv line 4: duplicate id 'ok' (first at line 3)",
    ]
    with runtime.sessions() as s:
        sensor = s.get(Sensor, "ok")
        assert sensor is not None
        assert sensor.type == "door"


def test_a_wrong_crs_name_is_refused_before_reading(runtime: Runtime, stations: City) -> None:
    with pytest.raises(InvalidInput, match="unknown coordinate system 'wgs-84'"):
        run_import(
            runtime, csv_bytes("a,door,121.42,31.2", header="id,type,lng,lat\n"), crs="wgs-84"
        )


BAD_GEOJSON = [
    ('{"type": "FeatureCollection", "features": [\n{"type": "Feature"', "line 2: not valid JSON"),
    ('{"type": "Topology", "features": []}', "not a GeoJSON FeatureCollection"),
    (
        '{"type": "FeatureCollection", "features": [\n'
        '{"type": "Feature", "id": "a",'
        ' "geometry": {"type": "Point", "coordinates": [121.42, 31.2]},'
        ' "properties": {"type": "door"}},\n'
        '{"type": "Feature", "id": "b", "geometry": {"type": "LineString", "coordinates": []},'
        ' "properties": {"type": "door"}},\n'
        '{"type": "Feature", "id": "c", "geometry": {"type": "Point", "coordinates": [200, 31.2]},'
        ' "properties": {"type": "door"}}]}',
        "s.geojson line 3: geometry must be a Point; s.geojson line 4: bad coordinates",
    ),
]


@pytest.mark.parametrize(("text", "message"), BAD_GEOJSON)
def test_bad_geojson_is_rejected_and_nothing_written(
    runtime: Runtime, stations: City, text: str, message: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        run_import(runtime, io.BytesIO(text.encode()), crs="wgs84", filename="s.geojson")
    assert message in caught.value.detail
    with runtime.sessions() as s:
        assert count(s) == 0


def test_generated_registries_import_cleanly(
    runtime: Runtime, stations: City, tmp_path: Path
) -> None:
    for fmt, name in (("csv", "gen.csv"), ("geojson", "gen.geojson")):
        path = tmp_path / name
        registry_import.generate(300, path, fmt=fmt, crs="gcj02", seed=3)  # type: ignore[arg-type]
        with path.open("rb") as fh:
            result = run_import(runtime, fh, crs="gcj02", filename=name)  # type: ignore[arg-type]
        assert result.total == 300
        assert result.skipped == 0
    with runtime.sessions() as s:
        assert count(s) == 300
        types = set(s.scalars(select(Sensor.type).distinct()))
        assert {"door", "smoke", "water_meter"} <= types
        units = s.scalars(select(Sensor.unit).where(Sensor.type == "parking")).all()
        assert set(units) == {None}


def test_a_feature_per_line_file_may_start_with_any_key(runtime: Runtime, stations: City) -> None:
    line = '{"id": "k-1", "properties": {"type": "door"}, "type": "Feature",'
    line += ' "geometry": {"type": "Point", "coordinates": [121.42, 31.2]}}\n'
    result = run_import(runtime, io.BytesIO(line.encode()), crs="wgs84", filename="s.geojsonl")
    assert result.created == 1
