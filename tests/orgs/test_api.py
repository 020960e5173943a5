"""Organisation routes: allowed → 2xx, denied → 403, out of scope → 404, per role."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from safecity.orgs import service as orgs
from safecity.platform.outbox import OutboxEvent
from safecity.platform.runtime import Runtime
from tests.conftest import Actor, City

pytestmark = pytest.mark.db

MakeActor = Callable[..., Actor]

SQUARE = {
    "type": "Polygon",
    "coordinates": [[[121.0, 31.0], [121.1, 31.0], [121.1, 31.1], [121.0, 31.1], [121.0, 31.0]]],
}
READERS = ("officer", "supervisor", "analyst", "department_staff", "admin")
NON_READERS = ("citizen", "auditor")
ALL_ROLES = READERS + NON_READERS


def _home(city: City, role: str) -> Any:
    """Where a user of ``role`` sits in the test city."""
    return {
        "officer": city.stations[0],
        "supervisor": city.districts[0],
        "analyst": city.districts[0],
        "department_staff": city.department,
        "admin": city.city,
        "citizen": city.city,
        "auditor": city.city,
    }[role]


@pytest.fixture
def with_areas(city: City, runtime: Runtime) -> City:
    with runtime.sessions.begin() as s:
        for district in city.districts:
            orgs.update(session=s, org_id=district.id, area=SQUARE)
        for station in city.stations:
            orgs.update(session=s, org_id=station.id, area=SQUARE, area_synthetic=True)
    return city


# --------------------------------------------------------------------------- reads


@pytest.mark.parametrize("role", ALL_ROLES)
def test_list_per_role(client: TestClient, city: City, make_actor: MakeActor, role: str) -> None:
    actor = make_actor(role, _home(city, role))
    response = client.get("/api/orgs", headers=actor.headers)
    if role in NON_READERS:
        assert response.status_code == 403
        assert response.headers["content-type"].startswith("application/problem+json")
        return
    assert response.status_code == 200
    codes = {item["code"] for item in response.json()["items"]}
    assert "sanitation" in codes  # departments are visible to all staff
    assert "sh" in codes  # so is the city above everyone
    if role == "admin":
        assert codes == {"sh", "hp", "pd", "hp-s1", "hp-s2", "pd-s1", "pd-s2", "sanitation"}
    else:
        assert not codes & {"pd", "pd-s1", "pd-s2"}  # never another district


def test_list_for_a_station_officer_is_own_station_and_its_ancestors(
    client: TestClient, city: City, make_actor: MakeActor
) -> None:
    officer = make_actor("officer", city.stations[0])
    body = client.get("/api/orgs", headers=officer.headers).json()
    assert {i["code"] for i in body["items"]} == {"sh", "hp", "hp-s1", "sanitation"}
    assert body["total"] == 4
    supervisor = make_actor("supervisor", city.districts[0])
    body = client.get("/api/orgs?kind=station", headers=supervisor.headers).json()
    assert [i["code"] for i in body["items"]] == ["hp-s1", "hp-s2"]


def test_list_filters_and_paginates(client: TestClient, city: City, make_actor: MakeActor) -> None:
    admin = make_actor("admin", city.city)
    page = client.get("/api/orgs?limit=3&offset=2&sort=code", headers=admin.headers).json()
    assert page["next"] == "/api/orgs?limit=3&sort=code&offset=5"
    assert (page["total"], page["limit"], page["offset"], len(page["items"])) == (8, 3, 2, 3)
    stations = client.get(
        f"/api/orgs?parent_id={city.districts[1].id}", headers=admin.headers
    ).json()
    assert [i["code"] for i in stations["items"]] == ["pd-s1", "pd-s2"]
    assert client.get("/api/orgs?kind=planet", headers=admin.headers).status_code == 422
    assert client.get("/api/orgs?limit=0", headers=admin.headers).status_code == 422


def test_reads_need_a_login(client: TestClient, city: City) -> None:
    for path in ("/api/orgs", "/api/orgs/tree", "/api/orgs/areas.geojson"):
        response = client.get(path)
        assert response.status_code == 401
    assert client.get(f"/api/orgs/{city.city.id}").status_code == 401


@pytest.mark.parametrize("role", ALL_ROLES)
def test_get_one_per_role(client: TestClient, city: City, make_actor: MakeActor, role: str) -> None:
    home = _home(city, role)
    actor = make_actor(role, home)
    response = client.get(f"/api/orgs/{home.id}", headers=actor.headers)
    assert response.status_code == (403 if role in NON_READERS else 200)
    if response.status_code == 200:
        body = response.json()
        assert body["code"] == home.code
        assert body["ancestor_ids"] == [p for p in home.path.split("/") if p][:-1]


@pytest.mark.parametrize("role", ["officer", "supervisor", "analyst", "department_staff"])
def test_another_district_is_not_found(
    client: TestClient, city: City, make_actor: MakeActor, role: str
) -> None:
    actor = make_actor(role, _home(city, role))
    for other in (city.districts[1], city.stations[2]):
        response = client.get(f"/api/orgs/{other.id}", headers=actor.headers)
        assert response.status_code == 404
        assert response.json()["status"] == 404


def test_an_unknown_id_is_not_found(client: TestClient, city: City, make_actor: MakeActor) -> None:
    admin = make_actor("admin", city.city)
    assert client.get("/api/orgs/does-not-exist", headers=admin.headers).status_code == 404


@pytest.mark.parametrize("role", ALL_ROLES)
def test_tree_per_role(client: TestClient, city: City, make_actor: MakeActor, role: str) -> None:
    actor = make_actor(role, _home(city, role))
    response = client.get("/api/orgs/tree", headers=actor.headers)
    assert response.status_code == (403 if role in NON_READERS else 200)
    if response.status_code != 200:
        return
    (root,) = response.json()
    assert root["code"] == "sh"
    children = [c["code"] for c in root["children"]]
    assert "sanitation" in children
    assert ("pd" in children) is (role == "admin")


@pytest.mark.parametrize("role", ALL_ROLES)
def test_areas_geojson_per_role(
    client: TestClient, with_areas: City, make_actor: MakeActor, role: str
) -> None:
    actor = make_actor(role, _home(with_areas, role))
    response = client.get("/api/orgs/areas.geojson", headers=actor.headers)
    assert response.status_code == (403 if role in NON_READERS else 200)
    if response.status_code != 200:
        return
    assert response.headers["content-type"].startswith("application/geo+json")
    body = response.json()
    assert body["type"] == "FeatureCollection"
    codes = {f["properties"]["code"] for f in body["features"]}
    expected = {
        "admin": {"hp", "pd", "hp-s1", "hp-s2", "pd-s1", "pd-s2"},
        "officer": {"hp", "hp-s1"},
        "supervisor": {"hp", "hp-s1", "hp-s2"},
        "analyst": {"hp", "hp-s1", "hp-s2"},
        "department_staff": set(),
    }[role]
    assert codes == expected
    for feature in body["features"]:
        props = feature["properties"]
        assert props["synthetic"] is (props["kind"] == "station")
        assert feature["geometry"]["type"] == "Polygon"


def test_areas_geojson_can_ask_for_one_kind(
    client: TestClient, with_areas: City, make_actor: MakeActor
) -> None:
    admin = make_actor("admin", with_areas.city)
    body = client.get("/api/orgs/areas.geojson?kind=district", headers=admin.headers).json()
    assert {f["properties"]["kind"] for f in body["features"]} == {"district"}


# --------------------------------------------------------------------------- writes

NEW_STATION = {
    "code": "hp-s3",
    "kind": "station",
    "name_zh": "新派出所",
    "name_en": "New Station",
    "area": SQUARE,
    "area_synthetic": True,
}


@pytest.mark.parametrize("role", ALL_ROLES)
def test_create_per_role(
    client: TestClient, city: City, make_actor: MakeActor, runtime: Runtime, role: str
) -> None:
    actor = make_actor(role, _home(city, role))
    body = {**NEW_STATION, "parent_id": city.districts[0].id}
    response = client.post("/api/orgs", json=body, headers=actor.headers)
    if role != "admin":
        assert response.status_code == 403
        with runtime.sessions() as s:
            assert s.scalars(select(OutboxEvent).where(OutboxEvent.org_id.is_(None))).all() == []
            assert orgs.list_orgs(session=s, search="hp-s3")[1] == 0
        return
    assert response.status_code == 201
    created = response.json()
    assert created["code"] == "hp-s3"
    assert created["area"] == SQUARE
    assert created["area_synthetic"] is True
    assert created["has_area"] is True
    with runtime.sessions() as s:
        event = s.scalars(
            select(OutboxEvent).where(
                OutboxEvent.type == "orgs.org.created", OutboxEvent.org_id == created["id"]
            )
        ).one()
        assert event.payload["parent_id"] == city.districts[0].id


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"kind": "moon"}, 422),
        ({"extra": "field"}, 422),
        ({"code": "bad code!"}, 422),
        ({"code": "hp"}, 409),
        ({"parent_id": "nope"}, 404),
        ({"area": {"type": "Point", "coordinates": [1, 2]}}, 422),
        ({"service_codes": ["litter"]}, 422),
    ],
)
def test_create_refuses_bad_input(
    client: TestClient, city: City, make_actor: MakeActor, change: dict[str, Any], status: int
) -> None:
    admin = make_actor("admin", city.city)
    body = {**NEW_STATION, "parent_id": city.districts[0].id, **change}
    response = client.post("/api/orgs", json=body, headers=admin.headers)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize("role", ALL_ROLES)
def test_patch_per_role(
    client: TestClient, city: City, make_actor: MakeActor, runtime: Runtime, role: str
) -> None:
    actor = make_actor(role, _home(city, role))
    target = city.stations[0]
    response = client.patch(
        f"/api/orgs/{target.id}", json={"name_en": "Renamed"}, headers=actor.headers
    )
    with runtime.sessions() as s:
        name = orgs.get(session=s, org_id=target.id).name_en
    if role != "admin":
        assert response.status_code == 403
        assert name == target.name_en
        return
    assert response.status_code == 200
    assert response.json()["name_en"] == name == "Renamed"


def test_patch_moves_redraws_and_deactivates(
    client: TestClient, city: City, make_actor: MakeActor, runtime: Runtime
) -> None:
    admin = make_actor("admin", city.city)
    station = city.stations[0]
    moved = client.patch(
        f"/api/orgs/{station.id}",
        json={"parent_id": city.districts[1].id, "area": SQUARE},
        headers=admin.headers,
    )
    assert moved.status_code == 200
    assert moved.json()["parent_id"] == city.districts[1].id
    assert moved.json()["area"] == SQUARE
    cleared = client.patch(f"/api/orgs/{station.id}", json={"area": None}, headers=admin.headers)
    assert cleared.json()["area"] is None
    busy = client.patch(
        f"/api/orgs/{city.districts[0].id}", json={"active": False}, headers=admin.headers
    )
    assert busy.status_code == 409
    gone = client.patch(
        f"/api/orgs/{city.districts[0].id}",
        json={"active": False, "cascade": True},
        headers=admin.headers,
    )
    assert gone.status_code == 200
    assert gone.json()["active"] is False
    listed = client.get("/api/orgs?kind=district", headers=admin.headers).json()
    assert [i["code"] for i in listed["items"]] == ["pd"]
    everything = client.get(
        "/api/orgs?kind=district&include_inactive=true", headers=admin.headers
    ).json()
    assert [i["code"] for i in everything["items"]] == ["hp", "pd"]
    back = client.patch(
        f"/api/orgs/{city.districts[0].id}", json={"active": True}, headers=admin.headers
    )
    assert back.json()["active"] is True
    assert (
        client.patch("/api/orgs/nope", json={"name_en": "x"}, headers=admin.headers).status_code
        == 404
    )
    with runtime.sessions() as s:
        types = set(s.scalars(select(OutboxEvent.type)))
    assert {"orgs.org.updated", "orgs.org.deactivated", "orgs.org.reactivated"} <= types


IMPORT_CSV = (
    "code,kind,name_zh,name_en,parent\n"
    "jd,district,嘉定区,Jiading,sh\n"
    "jd-s1,station,嘉定镇派出所,Jiading Town,jd\n"
)


@pytest.mark.parametrize("role", ALL_ROLES)
def test_import_per_role(
    client: TestClient, city: City, make_actor: MakeActor, runtime: Runtime, role: str
) -> None:
    actor = make_actor(role, _home(city, role))
    response = client.post(
        "/api/orgs/import",
        files={"file": ("orgs.csv", IMPORT_CSV.encode(), "text/csv")},
        headers=actor.headers,
    )
    with runtime.sessions() as s:
        imported = orgs.list_orgs(session=s, search="jd")[1]
    if role != "admin":
        assert response.status_code == 403
        assert imported == 0
        return
    assert response.status_code == 200
    assert response.json() == {
        "filename": "orgs.csv",
        "dry_run": False,
        "total": 2,
        "created": 2,
        "updated": 0,
        "unchanged": 0,
    }
    assert imported == 2


def test_import_of_a_bad_file_is_a_problem_naming_the_line(
    client: TestClient, city: City, make_actor: MakeActor, runtime: Runtime
) -> None:
    admin = make_actor("admin", city.city)
    bad = IMPORT_CSV + "jd-s2,station,站,S,nowhere\n"
    response = client.post(
        "/api/orgs/import",
        files={"file": ("orgs.csv", bad.encode(), "text/csv")},
        headers=admin.headers,
    )
    assert response.status_code == 422
    problem = response.json()
    assert "orgs.csv line 4: unknown parent 'nowhere'" in problem["detail"]
    assert problem["errors"] == [
        {"where": "orgs.csv line 4", "message": "unknown parent 'nowhere'"}
    ]
    with runtime.sessions() as s:
        assert orgs.list_orgs(session=s, search="jd")[1] == 0


def test_import_dry_run_and_yaml(
    client: TestClient, city: City, make_actor: MakeActor, runtime: Runtime
) -> None:
    admin = make_actor("admin", city.city)
    yaml_text = json.dumps(
        [{"code": "jd", "kind": "district", "name_zh": "嘉定区", "name_en": "J", "parent": "sh"}]
    )
    response = client.post(
        "/api/orgs/import?dry_run=true",
        files={"file": ("orgs.yaml", yaml_text.encode(), "application/yaml")},
        headers=admin.headers,
    )
    assert response.status_code == 200
    assert response.json()["dry_run"] is True
    assert response.json()["created"] == 1
    with runtime.sessions() as s:
        assert orgs.list_orgs(session=s, search="jd")[1] == 0


def test_list_refuses_unknown_parameters_and_sorts(
    client: TestClient, city: City, make_actor: MakeActor
) -> None:
    admin = make_actor("admin", city.city)
    assert client.get("/api/orgs?colour=red", headers=admin.headers).status_code == 422
    assert client.get("/api/orgs?sort=secret", headers=admin.headers).status_code == 422
    body = client.get("/api/orgs?sort=-code&q=hp", headers=admin.headers).json()
    assert [i["code"] for i in body["items"]] == ["hp-s2", "hp-s1", "hp"]
