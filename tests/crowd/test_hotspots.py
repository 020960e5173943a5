"""Crowd hotspots: validation, area and thresholds, the service, the GeoJSON import
(all or nothing, upsert by code), the API's permissions and scope, the audit records, the
console pages (zh + en) and ``safecity crowd hotspots import | list``."""

from __future__ import annotations

import copy
import json
import math
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from typer.testing import CliRunner

from safecity import cli
from safecity.crowd import cli as crowd_cli
from safecity.crowd import hotspots
from safecity.crowd.models import CrowdHotspot
from safecity.orgs import service as orgs
from safecity.platform.errors import InvalidInput
from safecity.platform.runtime import Runtime
from safecity.security import audit
from safecity.security import service as security
from safecity.security.audit import AuditEntry
from tests.conftest import City
from tests.console.conftest import PASSWORD, Staff, csrf_from, log_in
from tests.console.test_pages import assert_csp_clean

pytestmark = pytest.mark.db

API = "/api/crowd/hotspots"
PAGES = "/console/crowd/hotspots"


def square(lng: float = 121.49, lat: float = 31.24, d: float = 0.002) -> dict[str, Any]:
    ring = [[lng, lat], [lng + d, lat], [lng + d, lat + d], [lng, lat + d], [lng, lat]]
    return {"type": "Polygon", "coordinates": [ring]}


def body(code: str = "bund", org: str = "hp-s1", **extra: Any) -> dict[str, Any]:
    return {
        "code": code,
        "name_zh": "外滩",
        "name_en": "The Bund",
        "org": org,
        "geometry": square(),
        "capacity": 10_000,
        "warn_density": 2.0,
        "critical_density": 4.0,
        "entrances": ["陈毅广场"],
        "transit": [{"name": "南京东路站", "exits": ["1号口", "2号口"]}],
        "expected_sensors": 2,
        **extra,
    }


def feature(code: str, org: str = "hp-s1", **extra: Any) -> dict[str, Any]:
    props = body(code, org, **extra)
    geometry = props.pop("geometry")
    return {"type": "Feature", "properties": props, "geometry": geometry}


def collection(*features: dict[str, Any]) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": list(features)}


def audit_rows(runtime: Runtime, action: str) -> list[AuditEntry]:
    with runtime.sessions() as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def hotspot_count(runtime: Runtime) -> int:
    with runtime.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(CrowdHotspot)) or 0)


def sample_text() -> str:
    path = resources.files("safecity.crowd").joinpath("data", "bund_hotspots.geojson")
    return path.read_text("utf-8")


@pytest.fixture
def demo_orgs(runtime: Runtime, city: City) -> None:
    """The demo city's org codes the sample file names (Huangpu, Pudong and stations)."""
    with runtime.sessions.begin() as s:
        for district, stations in (("310101", ("ps01", "ps02")), ("310115", ("ps01",))):
            parent = orgs.create(
                session=s,
                code=district,
                kind="district",
                name_zh=district,
                name_en=district,
                parent_id=city.city.id,
            )
            for station in stations:
                orgs.create(
                    session=s,
                    code=f"{district}-{station}",
                    kind="station",
                    name_zh=f"{district}-{station}",
                    name_en=f"{district}-{station}",
                    parent_id=parent.id,
                )


# --------------------------------------------------------------------------- geometry


def test_area_of_a_known_square_and_a_hole() -> None:
    # 0.01° × 0.01° at the equator: (2πR / 360 × 0.01)² on the mean-radius sphere.
    side = 2 * math.pi * 6_371_008.8 / 360 * 0.01
    _, area = hotspots.check_geometry(square(0.0, 0.0, 0.01))
    assert area == pytest.approx(side * side, rel=1e-3)
    outer = square(0.0, 0.0, 0.01)["coordinates"][0]
    hole = [[0.002, 0.002], [0.004, 0.002], [0.004, 0.004], [0.002, 0.004], [0.002, 0.002]]
    _, holed = hotspots.check_geometry({"type": "Polygon", "coordinates": [outer, hole]})
    assert holed == pytest.approx(area * (1 - 0.04), rel=1e-3)
    # Shanghai: a 0.002° square shrinks with cos(latitude) east-west.
    _, shanghai = hotspots.check_geometry(square())
    expected = (side / 5) ** 2 * math.cos(math.radians(31.241))
    assert shanghai == pytest.approx(expected, rel=1e-3)


def test_multipolygon_area_is_the_sum_and_altitude_is_dropped() -> None:
    a = square(121.49, 31.24)["coordinates"]
    b = square(121.50, 31.24)["coordinates"]
    b[0] = [[*p, 4.0] for p in b[0]]
    geometry, area = hotspots.check_geometry({"type": "MultiPolygon", "coordinates": [a, b]})
    _, one = hotspots.check_geometry(square(121.49, 31.24))
    assert area == pytest.approx(2 * one, rel=1e-3)
    assert all(len(p) == 2 for p in geometry["coordinates"][1][0])


UNCLOSED = {
    "type": "Polygon",
    "coordinates": [[[121.49, 31.24], [121.5, 31.24], [121.5, 31.25], [121.49, 31.25]]],
}
BOWTIE = {
    "type": "Polygon",
    "coordinates": [
        [[121.49, 31.24], [121.5, 31.25], [121.5, 31.24], [121.49, 31.25], [121.49, 31.24]]
    ],
}


@pytest.mark.parametrize(
    ("geometry", "message"),
    [
        (UNCLOSED, "not closed"),
        (BOWTIE, "not a valid polygon"),
        ({"type": "Point", "coordinates": [121.49, 31.24]}, "Polygon or MultiPolygon"),
        (
            {
                "type": "Polygon",
                "coordinates": [[[121.49, 31.24], [121.5, 31.24], [121.49, 31.24]]],
            },
            "at least 4",
        ),
        (
            {
                "type": "Polygon",
                "coordinates": [
                    [[31.24, 121.49], [31.25, 121.49], [31.25, 121.5], [31.24, 121.49]]
                ],
            },
            "latitude",
        ),
        ({"type": "Polygon", "coordinates": [[["a", 1], [1, 1], [1, 2], ["a", 1]]]}, "numbers"),
        ({"type": "Polygon", "coordinates": [[[True, 1], [1, 1], [1, 2], [True, 1]]]}, "numbers"),
        (
            {"type": "Polygon", "coordinates": [[[math.nan, 1], [1, 1], [1, 2], [math.nan, 1]]]},
            "finite",
        ),
        ({"type": "MultiPolygon", "coordinates": []}, "non-empty"),
        ({"type": "Polygon", "coordinates": []}, "non-empty"),
        (square(d=0.0000001), "between"),
        (square(121.0, 31.0, 0.5), "between"),
        ("POLYGON((0 0, 1 0, 1 1, 0 0))", "GeoJSON object"),
    ],
)
def test_bad_geometry_is_refused_with_a_reason(geometry: Any, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        hotspots.check_geometry(geometry)


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**20), 10**20)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=40,
)
NUMBER = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-400, 400) | st.booleans()
POSITION = st.lists(NUMBER, min_size=0, max_size=4) | JSON_VALUES
RING = st.lists(POSITION, max_size=8)
NEAR_GEOMETRY = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["Polygon", "MultiPolygon", "Point", "Feature", ""]),
        "coordinates": st.lists(RING, max_size=3)
        | st.lists(st.lists(RING, max_size=3), max_size=3)
        | JSON_VALUES,
    }
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=JSON_VALUES | NEAR_GEOMETRY)
def test_geometry_validator_raises_only_invalid_input(value: Any) -> None:
    try:
        geometry, area = hotspots.check_geometry(value)
    except InvalidInput:
        return  # the only exception allowed (anything else fails the test)
    # anything accepted is a polygon with a sane area
    assert geometry["type"] in ("Polygon", "MultiPolygon")
    assert hotspots.MIN_AREA_M2 <= area <= hotspots.MAX_AREA_M2


def test_thresholds_take_the_lower_of_capacity_and_density() -> None:
    roomy = CrowdHotspot(area_m2=10_000.0, capacity=5_000, warn_density=2.0, critical_density=4.0)
    assert hotspots.thresholds(roomy) == hotspots.Thresholds(4_000.0, 5_000.0)  # capacity
    tight = CrowdHotspot(area_m2=1_000.0, capacity=5_000, warn_density=2.0, critical_density=4.0)
    assert hotspots.thresholds(tight) == hotspots.Thresholds(2_000.0, 4_000.0)  # density
    assert hotspots.capacity_at(tight, "warn") == 2_000.0
    assert hotspots.capacity_at(tight, "critical") == 4_000.0


# --------------------------------------------------------------------------- API


def test_supervisor_manages_and_officer_reads(
    client: TestClient, runtime: Runtime, make_actor: Any, city: City
) -> None:
    sup = make_actor("supervisor", city.districts[0])
    officer = make_actor("officer", city.stations[0])
    made = client.post(API, json=body(), headers=sup.headers)
    assert made.status_code == 201, made.text
    data = made.json()
    assert data["org_id"] == city.stations[0].id
    assert 35_000 < data["area_m2"] < 45_000  # ≈ 190 m × 222 m
    assert data["warn_people"] == 8_000  # 0.8 × capacity < 2/m² × area
    assert data["critical_people"] == 10_000
    assert data["transit"] == [{"name": "南京东路站", "exits": ["1号口", "2号口"]}]

    listed = client.get(API, headers=officer.headers)
    assert listed.status_code == 200
    assert [h["code"] for h in listed.json()["items"]] == ["bund"]
    assert client.get(f"{API}/bund", headers=officer.headers).json()["name_en"] == "The Bund"
    for method, url, payload in (
        ("POST", API, body("other")),
        ("PATCH", f"{API}/bund", {"capacity": 1}),
        ("DELETE", f"{API}/bund", None),
        ("POST", f"{API}/import", collection(feature("x"))),
    ):
        denied = client.request(method, url, json=payload, headers=officer.headers)
        assert denied.status_code == 403, (method, url)
        assert denied.headers["content-type"].startswith("application/problem+json")

    second = client.post(API, json=body("nanjing", neighbours=["bund"]), headers=sup.headers)
    assert second.status_code == 201, second.text
    patched = client.patch(
        f"{API}/bund", json={"capacity": 12_000, "neighbours": ["nanjing"]}, headers=sup.headers
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["capacity"] == 12_000
    with runtime.sessions() as s:
        bund = s.scalars(select(CrowdHotspot).where(CrowdHotspot.code == "bund")).one()
        assert [n.code for n in hotspots.neighbours_of(s, bund)] == ["nanjing"]

    geo = client.get(f"{API}.geojson", headers=officer.headers)
    assert geo.status_code == 200
    assert geo.headers["content-type"].startswith("application/geo+json")
    assert {f["properties"]["code"] for f in geo.json()["features"]} == {"bund", "nanjing"}

    gone = client.delete(f"{API}/nanjing", headers=sup.headers)
    assert gone.status_code == 200
    assert gone.json()["active"] is False
    geo = client.get(f"{API}.geojson", headers=officer.headers).json()
    assert [f["properties"]["code"] for f in geo["features"]] == ["bund"]
    with runtime.sessions() as s:
        bund = s.scalars(select(CrowdHotspot).where(CrowdHotspot.code == "bund")).one()
        assert hotspots.neighbours_of(s, bund) == []  # deactivated neighbours are skipped
    active = client.get(API, params={"active": "true"}, headers=officer.headers).json()
    assert [h["code"] for h in active["items"]] == ["bund"]

    assert len(audit_rows(runtime, "crowd.hotspots.create")) == 2
    (update,) = audit_rows(runtime, "crowd.hotspots.update")
    assert update.detail["fields"] == ["capacity", "neighbours"]
    assert update.target_id == data["id"]
    assert len(audit_rows(runtime, "crowd.hotspots.deactivate")) == 1
    client.delete(f"{API}/nanjing", headers=sup.headers)  # already inactive: no new record
    assert len(audit_rows(runtime, "crowd.hotspots.deactivate")) == 1


def test_hotspots_outside_the_scope_are_not_found(
    client: TestClient, make_actor: Any, city: City
) -> None:
    hp = make_actor("supervisor", city.districts[0])
    pd = make_actor("supervisor", city.districts[1])
    assert client.post(API, json=body(), headers=hp.headers).status_code == 201
    assert client.get(f"{API}/bund", headers=pd.headers).status_code == 404
    assert client.patch(f"{API}/bund", json={"capacity": 5}, headers=pd.headers).status_code == 404
    assert client.delete(f"{API}/bund", headers=pd.headers).status_code == 404
    assert client.get(API, headers=pd.headers).json()["total"] == 0
    outside = client.post(API, json=body("pd-spot", org="hp-s2"), headers=pd.headers)
    assert outside.status_code == 403
    assert "outside your scope" in outside.json()["detail"]
    moved = client.patch(f"{API}/bund", json={"org": "pd-s1"}, headers=hp.headers)
    assert moved.status_code == 403


BAD_INPUT: list[tuple[dict[str, Any], str]] = [
    ({"geometry": UNCLOSED}, "not closed"),
    ({"geometry": BOWTIE}, "not a valid polygon"),
    ({"warn_density": 4.0}, "below critical_density"),
    ({"warn_density": 5.0}, "below critical_density"),
    ({"critical_density": 11}, "critical_density"),
    ({"capacity": 0}, "capacity"),
    ({"org": "nowhere"}, "unknown organisation"),
    ({"neighbours": ["atlantis"]}, "unknown neighbour"),
    ({"neighbours": ["bund"]}, "own neighbour"),
    ({"timezone": "Mars/Olympus"}, "time zone"),
    ({"region": "XX"}, "holiday calendar"),
    ({"code": "Bad Code"}, "code"),
    ({"name_zh": "   "}, "blank"),
    ({"transit": [{"name": "x", "exits": [], "lines": ["2"]}]}, "lines"),
    ({"transit": [{"name": "x"}, {"name": "x"}]}, "twice"),
]


def test_create_refuses_bad_input(
    client: TestClient, runtime: Runtime, make_actor: Any, city: City
) -> None:
    sup = make_actor("supervisor", city.districts[0])
    for change, message in BAD_INPUT:
        answer = client.post(API, json=body(**change), headers=sup.headers)
        assert answer.status_code == 422, (change, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json")
        problem = answer.json()
        assert message in str(problem.get("detail", "")) + json.dumps(problem.get("errors", ""))
    assert hotspot_count(runtime) == 0


def test_duplicate_code_conflicts_and_patch_is_checked_whole(
    client: TestClient, make_actor: Any, city: City
) -> None:
    sup = make_actor("supervisor", city.districts[0])
    assert client.post(API, json=body(), headers=sup.headers).status_code == 201
    assert client.post(API, json=body(), headers=sup.headers).status_code == 409
    # a new warn density is checked against the stored critical density
    bad = client.patch(f"{API}/bund", json={"warn_density": 4.5}, headers=sup.headers)
    assert bad.status_code == 422
    assert (
        client.patch(f"{API}/bund", json={"capacity": None}, headers=sup.headers).status_code == 422
    )
    assert client.patch(f"{API}/bund", json={"code": "x"}, headers=sup.headers).status_code == 422
    assert client.get(f"{API}/bund", headers=sup.headers).json()["warn_density"] == 2.0


# --------------------------------------------------------------------------- import


def test_sample_file_imports_cleanly_and_again_unchanged(runtime: Runtime, demo_orgs: None) -> None:
    with runtime.sessions.begin() as s:
        report = hotspots.import_geojson(session=s, principal=audit.SYSTEM, text=sample_text())
    assert (report.total, report.created, report.updated, report.unchanged) == (5, 5, 0, 0)
    assert "bund-promenade" in report.codes
    with runtime.sessions.begin() as s:
        again = hotspots.import_geojson(session=s, principal=audit.SYSTEM, text=sample_text())
    assert (again.created, again.updated, again.unchanged) == (0, 0, 5)
    with runtime.sessions() as s:
        bund = s.scalars(select(CrowdHotspot).where(CrowdHotspot.code == "bund-promenade")).one()
        assert {n.code for n in hotspots.neighbours_of(s, bund)} == {
            "nanjing-road-east",
            "yuyuan",
            "lujiazui-riverside",
        }
        for h in s.scalars(select(CrowdHotspot)):
            limits = hotspots.thresholds(h)
            assert 0 < limits.warn_people < limits.critical_people <= h.capacity
            assert 10_000 < h.area_m2 < 1_000_000
            assert all(t["exits"] for t in h.transit)
    records = audit_rows(runtime, "crowd.hotspots.import")
    assert [r.detail for r in records] == [
        {"total": 5, "created": 5, "updated": 0, "unchanged": 0},
        {"total": 5, "created": 0, "updated": 0, "unchanged": 5},
    ]


def test_import_is_all_or_nothing_with_the_failing_index(runtime: Runtime, city: City) -> None:
    good = feature("sa", neighbours=["sb"])
    bad = feature("sb", warn_density=5.0)
    text = json.dumps(collection(good, bad, feature("sc")))
    with runtime.sessions.begin() as s, pytest.raises(InvalidInput) as info:
        hotspots.import_geojson(session=s, principal=audit.SYSTEM, text=text)
    assert info.value.detail.startswith("features[1] (sb): warn_density")
    assert info.value.extra["index"] == 1
    assert hotspot_count(runtime) == 0
    assert audit_rows(runtime, "crowd.hotspots.import") == []

    cases = [
        (collection(feature("sa"), feature("sa")), "features[1] (sa): code 'sa' appears twice"),
        (collection(feature("sa", neighbours=["zz"])), "features[0] (sa): unknown neighbour"),
        (collection(feature("sa", org="nowhere")), "features[0] (sa): unknown organisation"),
        (collection(feature("sa"), {"type": "Feature", "geometry": square()}), "features[1]: "),
        (
            collection(feature("sa"), {**feature("sb"), "geometry": UNCLOSED}),
            "features[1] (sb): coordinates[0]",
        ),
        (collection(feature("sa", extra="x")), "features[0] (sa): extra"),
        (collection(), "no features"),
        ({"type": "Polygon"}, "FeatureCollection"),
    ]
    for data, message in cases:
        with runtime.sessions.begin() as s, pytest.raises(InvalidInput) as info:
            hotspots.import_collection(session=s, principal=audit.SYSTEM, data=data)
        assert message in info.value.detail, info.value.detail
    with runtime.sessions.begin() as s, pytest.raises(InvalidInput, match="not a JSON document"):
        hotspots.import_geojson(session=s, principal=audit.SYSTEM, text="{nope")
    assert hotspot_count(runtime) == 0


def test_import_upserts_by_code_within_scope(
    client: TestClient, runtime: Runtime, make_actor: Any, city: City
) -> None:
    hp = make_actor("supervisor", city.districts[0])
    first = client.post(
        f"{API}/import", json=collection(feature("sa"), feature("sb")), headers=hp.headers
    )
    assert first.status_code == 200, first.text
    assert first.json() == {
        "total": 2,
        "created": 2,
        "updated": 0,
        "unchanged": 0,
        "codes": ["sa", "sb"],
    }
    client.delete(f"{API}/sb", headers=hp.headers)
    second = client.post(
        f"{API}/import",
        json=collection(feature("sa", capacity=9), feature("sb"), feature("sc")),
        headers=hp.headers,
    )
    assert second.status_code == 200, second.text
    assert (second.json()["created"], second.json()["updated"], second.json()["unchanged"]) == (
        1,
        2,
        0,
    )
    assert client.get(f"{API}/sa", headers=hp.headers).json()["capacity"] == 9
    assert client.get(f"{API}/sb", headers=hp.headers).json()["active"] is True  # reactivated

    pd = make_actor("supervisor", city.districts[1])
    taken = client.post(
        f"{API}/import", json=collection(feature("sa", org="pd-s1")), headers=pd.headers
    )
    assert taken.status_code == 422
    assert "features[0] (sa)" in taken.json()["detail"]
    assert "outside your scope" in taken.json()["detail"]
    assert client.get(f"{API}/sa", headers=hp.headers).json()["org_id"] == city.stations[0].id
    assert len(audit_rows(runtime, "crowd.hotspots.import")) == 2


# --------------------------------------------------------------------------- console


@pytest.fixture
def staff(runtime: Runtime) -> Any:
    """``staff(role, org)`` → a person who can log in to the console."""

    def make(role: str, org: Any) -> Staff:
        name = f"{role}-{org.code}"
        with runtime.sessions.begin() as s:
            change = security.create_user(
                session=s,
                actor=audit.SYSTEM,
                username=name,
                org_id=org.id,
                roles=[role],
                password=PASSWORD,
            )
        return Staff(username=name, password=PASSWORD, totp_secret=change.totp_secret)

    return make


def test_console_list_detail_edit_and_import(
    client: TestClient, runtime: Runtime, staff: Any, make_actor: Any, city: City
) -> None:
    sup = make_actor("supervisor", city.districts[0])
    assert client.post(API, json=body(), headers=sup.headers).status_code == 201
    log_in(client, staff("supervisor", city.districts[0]))

    listing = client.get(PAGES)
    assert listing.status_code == 200
    assert_csp_clean(listing.text)
    assert "人流热点" in listing.text
    assert 'data-hotspot="bund"' in listing.text
    assert 'data-geojson-url="/api/crowd/hotspots.geojson"' in listing.text
    assert 'data-form="hotspot-import"' in listing.text
    assert 'href="/console/crowd/hotspots" data-domain="crowd"' in listing.text
    client.cookies.set("safecity_lang", "en")
    english = client.get(PAGES)
    assert "Crowd hotspots" in english.text
    assert "人流热点" not in english.text

    page = client.get(f"{PAGES}/bund")
    assert page.status_code == 200
    assert_csp_clean(page.text)
    assert "The Bund" in page.text
    assert 'data-form="hotspot-edit"' in page.text
    token = csrf_from(page.text)
    form = {
        "csrf_token": token,
        "name_zh": "外滩观景平台",
        "name_en": "The Bund Promenade",
        "org": "hp-s1",
        "capacity": "20000",
        "warn_density": "2",
        "critical_density": "4",
        "timezone": "Asia/Shanghai",
        "region": "CN",
        "expected_sensors": "3",
        "entrances": "陈毅广场\n金陵东路口",
        "neighbours": "",
        "transit": "南京东路站：1号口，2号口\n豫园站: 4",
        "geometry": json.dumps(square()),
    }
    saved = client.post(f"{PAGES}/bund", data=form, follow_redirects=False)
    assert saved.status_code == 303, saved.text
    data = client.get(f"{API}/bund", headers=sup.headers).json()
    assert data["capacity"] == 20_000
    assert data["entrances"] == ["陈毅广场", "金陵东路口"]
    assert data["transit"] == [
        {"name": "南京东路站", "exits": ["1号口", "2号口"]},
        {"name": "豫园站", "exits": ["4"]},
    ]
    refused = client.post(f"{PAGES}/bund", data={**form, "warn_density": "9"})
    assert refused.status_code == 422
    assert "data-error" in refused.text
    assert "below critical_density" in refused.text
    assert 'value="9"' in refused.text  # what was typed comes back
    no_csrf = client.post(
        f"{PAGES}/bund", data={k: v for k, v in form.items() if k != "csrf_token"}
    )
    assert no_csrf.status_code == 403

    new_page = client.get(f"{PAGES}/new")
    assert new_page.status_code == 200
    assert 'data-form="hotspot-new"' in new_page.text
    created = client.post(
        PAGES, data={**form, "code": "bund-north", "neighbours": "bund"}, follow_redirects=False
    )
    assert created.status_code == 303, created.text
    assert created.headers["location"] == f"{PAGES}/bund-north"
    north = client.get(f"{PAGES}/bund-north")
    assert 'data-neighbour="bund"' in north.text

    upload = json.dumps(collection(feature("yuyuan"))).encode()
    imported = client.post(
        f"{PAGES}/import",
        data={"csrf_token": token},
        files={"file": ("spots.geojson", upload, "application/geo+json")},
    )
    assert imported.status_code == 200
    assert 'data-imported="1"' in imported.text
    broken = client.post(
        f"{PAGES}/import",
        data={"csrf_token": token},
        files={
            "file": (
                "spots.geojson",
                b'{"type": "FeatureCollection", "features": [1]}',
                "application/json",
            )
        },
    )
    assert broken.status_code == 422
    assert "features[0]: not a GeoJSON Feature" in broken.text

    gone = client.post(
        f"{PAGES}/bund-north/deactivate", data={"csrf_token": token}, follow_redirects=False
    )
    assert gone.status_code == 303
    assert 'data-active="false"' in client.get(f"{PAGES}/bund-north").text


def test_officer_sees_pages_without_forms(
    client: TestClient, staff: Any, make_actor: Any, city: City
) -> None:
    sup = make_actor("supervisor", city.districts[0])
    assert client.post(API, json=body(), headers=sup.headers).status_code == 201
    log_in(client, staff("officer", city.stations[0]))
    listing = client.get(PAGES)
    assert listing.status_code == 200
    assert 'data-hotspot="bund"' in listing.text
    assert "hotspot-import" not in listing.text
    page = client.get(f"{PAGES}/bund")
    assert page.status_code == 200
    assert "hotspot-edit" not in page.text
    assert client.get(f"{PAGES}/new").status_code == 403
    assert client.get(f"{PAGES}/nowhere").status_code == 404


# --------------------------------------------------------------------------- CLI


@pytest.fixture
def use_test_db(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> Runtime:
    monkeypatch.setattr(crowd_cli, "_runtime", lambda: runtime)
    return runtime


def run_main(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["safecity", *args])
    with pytest.raises(SystemExit) as info:
        cli.main()
    code = info.value.code
    return int(code) if isinstance(code, int) else 1, capsys.readouterr().err


def test_cli_imports_and_lists(use_test_db: Runtime, demo_orgs: None, tmp_path: Path) -> None:
    path = tmp_path / "bund.geojson"
    path.write_text(sample_text(), encoding="utf-8")
    runner = CliRunner()
    result = runner.invoke(cli.app, ["crowd", "hotspots", "import", str(path)])
    assert result.exit_code == 0, result.output
    assert (
        "imported 5 hotspot(s) from bund.geojson: 5 created, 0 updated, 0 unchanged"
        in result.output
    )
    listed = runner.invoke(cli.app, ["crowd", "hotspots", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    rows = [json.loads(line) for line in listed.output.splitlines()]
    assert [r["code"] for r in rows] == sorted(r["code"] for r in rows)
    assert {r["name_zh"] for r in rows} >= {"外滩观景平台", "豫园及豫园商城"}
    table = runner.invoke(cli.app, ["crowd", "hotspots", "list"], env={"COLUMNS": "200"})
    assert table.exit_code == 0
    assert "yuyuan" in table.output
    assert len(audit_rows(use_test_db, "crowd.hotspots.import")) == 1


def test_cli_bad_file_is_one_line_and_nonzero(
    use_test_db: Runtime,
    city: City,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = collection(feature("sa"), feature("sb", critical_density=1.0))
    bad = tmp_path / "bad.geojson"
    bad.write_text(json.dumps(data), encoding="utf-8")
    code, err = run_main(monkeypatch, capsys, "crowd", "hotspots", "import", str(bad))
    assert code != 0
    assert err.strip().count("\n") == 0
    assert err.startswith("error: features[1] (sb): warn_density")
    garbage = tmp_path / "garbage.geojson"
    garbage.write_text("not json", encoding="utf-8")
    code, err = run_main(monkeypatch, capsys, "crowd", "hotspots", "import", str(garbage))
    assert code != 0
    assert err.startswith("error: not a JSON document")
    code, err = run_main(monkeypatch, capsys, "crowd", "hotspots", "import", str(tmp_path / "none"))
    assert code != 0
    assert "no such file" in err
    assert hotspot_count(use_test_db) == 0


def test_payload_copy_is_not_mutated() -> None:
    geometry = square()
    before = copy.deepcopy(geometry)
    hotspots.check_geometry(geometry)
    assert geometry == before
