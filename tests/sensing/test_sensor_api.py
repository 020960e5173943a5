"""Sensor registry API: permissions per role, org scope, registration, upload import."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from safecity.platform.outbox import OutboxEvent
from safecity.platform.runtime import Runtime
from safecity.security.audit import AuditEntry
from safecity.sensing.models import Sensor
from tests.conftest import City
from tests.sensing.test_registry import GCJ, WGS, give_stations_areas

pytestmark = pytest.mark.db

# One sensor per station: hp-s1, hp-s2, pd-s1, pd-s2 (see test_registry.BANDS).
POINTS = {
    "hp1": (121.42, 31.2),
    "hp2": (121.47, 31.2),
    "pd1": (121.51, 31.2),
    "pd2": (121.56, 31.2),
}


@pytest.fixture
def stocked(runtime: Runtime, city: City, client: TestClient, make_actor: Any) -> dict[str, Any]:
    give_stations_areas(runtime, city)
    admin = make_actor("admin", city.city)
    for sensor_id, (lng, lat) in POINTS.items():
        r = client.post(
            "/api/sensors",
            json={"id": sensor_id, "type": "door", "lng": lng, "lat": lat, "unit": "1201"},
            headers=admin.headers,
        )
        assert r.status_code == 201, r.text
    return {"admin": admin, "city": city}


def test_admin_registers_a_gcj02_sensor_audited_and_announced(
    runtime: Runtime, city: City, client: TestClient, make_actor: Any
) -> None:
    give_stations_areas(runtime, city)
    admin = make_actor("admin", city.city)
    body = {"id": "gcj-1", "type": "smoke", "lng": GCJ[0], "lat": GCJ[1], "crs": "gcj02"}
    r = client.post("/api/sensors", json=body, headers=admin.headers)
    assert r.status_code == 201, r.text
    data = r.json()
    assert (data["lng"], data["lat"]) == pytest.approx(WGS, abs=1e-7)
    assert data["org_id"] == city.stations[2].id
    again = client.post("/api/sensors", json=body, headers=admin.headers)
    assert again.status_code == 409
    assert again.headers["content-type"].startswith("application/problem+json")
    with runtime.sessions() as s:
        event = s.scalars(
            select(OutboxEvent).where(OutboxEvent.type == "sensing.sensor.registered")
        ).one()
        assert event.payload["sensor_id"] == "gcj-1"
        assert event.org_id == city.stations[2].id
        entry = s.scalars(
            select(AuditEntry).where(AuditEntry.action == "sensing.sensor.register")
        ).one()
        assert entry.target_id == "gcj-1"


@pytest.mark.parametrize(
    "body",
    [
        {"id": "x", "type": "door", "lng": 121.4, "lat": 95},
        {"id": "x", "type": "toaster", "lng": 121.4, "lat": 31.2},
        {"id": "x y", "type": "door", "lng": 121.4, "lat": 31.2},
        {"id": "x", "type": "door", "lng": 121.4, "lat": 31.2, "crs": "utm"},
        {"id": "x", "type": "door", "lng": 121.4, "lat": 31.2, "colour": "red"},
    ],
)
def test_bad_registrations_are_422(
    city: City, client: TestClient, make_actor: Any, body: dict[str, Any]
) -> None:
    admin = make_actor("admin", city.city)
    r = client.post("/api/sensors", json=body, headers=admin.headers)
    assert r.status_code == 422, r.text


@pytest.mark.parametrize("role", ["officer", "supervisor", "analyst"])
def test_district_roles_see_only_their_district(
    stocked: dict[str, Any], client: TestClient, make_actor: Any, role: str
) -> None:
    city: City = stocked["city"]
    actor = make_actor(role, city.districts[0])  # hp
    r = client.get("/api/sensors", headers=actor.headers)
    assert r.status_code == 200, r.text
    assert [s["id"] for s in r.json()["items"]] == ["hp1", "hp2"]
    assert client.get("/api/sensors/hp2", headers=actor.headers).status_code == 200
    hidden = client.get("/api/sensors/pd1", headers=actor.headers)
    assert hidden.status_code == 404
    assert client.get("/api/sensors/nope", headers=actor.headers).status_code == 404


def test_a_station_officer_sees_only_the_station(
    stocked: dict[str, Any], client: TestClient, make_actor: Any
) -> None:
    city: City = stocked["city"]
    officer = make_actor("officer", city.stations[3])  # pd-s2
    r = client.get("/api/sensors", headers=officer.headers)
    assert [s["id"] for s in r.json()["items"]] == ["pd2"]


@pytest.mark.parametrize("role", ["officer", "supervisor", "analyst"])
def test_only_admin_writes(
    stocked: dict[str, Any], client: TestClient, make_actor: Any, role: str
) -> None:
    actor = make_actor(role, stocked["city"].city)
    body = {"id": "n-1", "type": "door", "lng": 121.42, "lat": 31.2}
    assert client.post("/api/sensors", json=body, headers=actor.headers).status_code == 403
    files = {"file": ("s.csv", b"id,type,lng,lat\nn-1,door,121.42,31.2\n", "text/csv")}
    r = client.post(
        "/api/sensors/import", files=files, data={"crs": "wgs84"}, headers=actor.headers
    )
    assert r.status_code == 403


@pytest.mark.parametrize("role", ["citizen", "department_staff", "auditor", "device"])
def test_roles_without_sensing_read_get_403(
    stocked: dict[str, Any], client: TestClient, make_actor: Any, role: str
) -> None:
    actor = make_actor(role, stocked["city"].city)
    assert client.get("/api/sensors", headers=actor.headers).status_code == 403
    assert client.get("/api/sensors/hp1", headers=actor.headers).status_code == 403


def test_anonymous_is_401(stocked: dict[str, Any], client: TestClient) -> None:
    assert client.get("/api/sensors").status_code == 401


def test_list_filters_and_sorts(stocked: dict[str, Any], client: TestClient) -> None:
    admin = stocked["admin"]
    city: City = stocked["city"]
    r = client.get("/api/sensors", params={"org_id": city.stations[1].id}, headers=admin.headers)
    assert [s["id"] for s in r.json()["items"]] == ["hp2"]
    r = client.get("/api/sensors", params={"sort": "-id", "limit": 2}, headers=admin.headers)
    body = r.json()
    assert [s["id"] for s in body["items"]] == ["pd2", "pd1"]
    assert body["total"] == 4
    assert (
        client.get("/api/sensors", params={"type": "smoke"}, headers=admin.headers).json()["total"]
        == 0
    )
    assert (
        client.get("/api/sensors", params={"colour": "x"}, headers=admin.headers).status_code == 422
    )


def test_unit_is_marked_personal_in_the_openapi_spec(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    unit = spec["components"]["schemas"]["SensorRead"]["properties"]["unit"]
    assert unit.get("x-personal") is True


def test_upload_import_all_or_nothing_then_skip_invalid(
    runtime: Runtime, city: City, client: TestClient, make_actor: Any
) -> None:
    give_stations_areas(runtime, city)
    admin = make_actor("admin", city.city)
    content = f"id,type,lng,lat\nu-1,door,{GCJ[0]},{GCJ[1]}\nu-2,dor,121.42,31.2\n".encode()
    files = {"file": ("batch.csv", content, "text/csv")}
    bad = client.post(
        "/api/sensors/import", files=files, data={"crs": "gcj02"}, headers=admin.headers
    )
    assert bad.status_code == 422
    problem = bad.json()
    assert "batch.csv line 3: unknown sensor type 'dor'" in problem["detail"]
    assert problem["errors"] == [
        {"where": "batch.csv line 3", "message": "unknown sensor type 'dor'"}
    ]
    with runtime.sessions() as s:
        assert s.get(Sensor, "u-1") is None

    ok = client.post(
        "/api/sensors/import",
        files=files,
        data={"crs": "gcj02", "skip_invalid": "true"},
        headers=admin.headers,
    )
    assert ok.status_code == 200, ok.text
    report = ok.json()
    assert (report["created"], report["skipped"], report["format"]) == (1, 1, "csv")
    with runtime.sessions() as s:
        sensor = s.get(Sensor, "u-1")
        assert sensor is not None
        assert sensor.org_id == city.stations[2].id
        assert (
            s.scalars(select(AuditEntry).where(AuditEntry.action == "sensing.sensors.import"))
            .one()
            .actor_id
            == admin.user_id
        )

    wrong = client.post(
        "/api/sensors/import", files=files, data={"crs": "mars"}, headers=admin.headers
    )
    assert wrong.status_code == 422


def test_reads_are_audited(stocked: dict[str, Any], client: TestClient, runtime: Runtime) -> None:
    admin = stocked["admin"]
    assert client.get("/api/sensors/hp1", headers=admin.headers).status_code == 200
    assert client.get("/api/sensors", headers=admin.headers).status_code == 200
    with runtime.sessions() as s:
        actions = s.scalars(
            select(AuditEntry.action).where(AuditEntry.actor_id == admin.user_id)
        ).all()
    assert "sensing.sensor.read" in actions
    assert "sensing.sensors.list" in actions
