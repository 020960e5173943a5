"""Open311 GeoReport v2: discovery, services, requests (GET redacted, POST with api_key),
JSON and XML, and the specification's error format."""

from __future__ import annotations

import secrets
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from fastapi.testclient import TestClient

from safecity.platform.runtime import Runtime
from safecity.security.auth import issue_token
from safecity.security.models import User, UserRole
from tests.dispatch.conftest import DispatchCity, point_in_station
from tests.publicguard import CANARIES, assert_no_canary, seed_canaries

pytestmark = pytest.mark.db

V2 = "/open311/v2"


def parse_xml(content: bytes) -> ET.Element:
    """Parse a response of the app under test (our own XML, not untrusted input)."""
    return ET.fromstring(content)  # noqa: S314


def make_api_key(runtime: Runtime, dcity: DispatchCity, role: str = "open311_client") -> str:
    with runtime.sessions.begin() as s:
        user = User(
            username=f"o311-{secrets.token_hex(3)}",
            display_name="city app",
            kind="apikey",
            org_id=dcity.city.city.id,
        )
        s.add(user)
        s.flush()
        s.add(UserRole(user_id=user.id, role=role))
        return issue_token(session=s, user_id=user.id, name="open311")


@pytest.fixture
def api_key(runtime: Runtime, dcity: DispatchCity) -> str:
    return make_api_key(runtime, dcity)


def post(client: TestClient, fmt: str = "json", **form: str) -> Any:
    return client.post(f"{V2}/requests.{fmt}", data=form)


def test_discovery_and_services_json_and_xml(client: TestClient, dcity: DispatchCity) -> None:
    r = client.get(f"{V2}/discovery.json")
    assert r.status_code == 200
    endpoint = r.json()["endpoints"][0]
    assert endpoint["url"].endswith("/open311/v2/")
    assert endpoint["formats"] == ["text/xml", "application/json"]
    root = parse_xml(client.get(f"{V2}/discovery.xml").content)
    assert root.tag == "discovery"
    assert [f.text for f in root.findall("endpoints/endpoint/formats/format")] == [
        "text/xml",
        "application/json",
    ]

    services = client.get(f"{V2}/services.json").json()
    codes = [s["service_code"] for s in services]
    assert codes == ["litter", "road_damage", "streetlight"]
    assert services[0] == {
        "service_code": "litter",
        "service_name": "Litter",
        "description": "乱扔垃圾",
        "metadata": False,
        "type": "realtime",
        "keywords": "rubbish,trash",
        "group": "sanitation",
    }
    zh = client.get(f"{V2}/services.json", headers={"Accept-Language": "zh-CN"}).json()
    assert zh[0]["service_name"] == "乱扔垃圾"
    r = client.get(f"{V2}/services.xml")
    assert r.headers["content-type"].startswith("text/xml")
    root = parse_xml(r.content)
    assert root.tag == "services"
    assert [s.findtext("service_code") for s in root.findall("service")] == codes
    assert root.find("service/metadata").text == "false"  # type: ignore[union-attr]

    definition = client.get(f"{V2}/services/litter.json").json()
    assert definition == {"service_code": "litter", "attributes": []}
    root = parse_xml(client.get(f"{V2}/services/litter.xml").content)
    assert root.tag == "service_definition"
    assert root.findtext("service_code") == "litter"


def test_post_then_read_back_redacted(
    client: TestClient, runtime: Runtime, dcity: DispatchCity, api_key: str, make_actor: Any
) -> None:
    lat, lng = point_in_station(0)
    r = post(
        client,
        api_key=api_key,
        service_code="litter",
        lat=str(lat),
        long=str(lng),
        address_string=CANARIES.flat,
        description=f"rubbish here, call {CANARIES.phone}",
        email="canary@example.org",
        first_name=CANARIES.name,
        last_name=CANARIES.name_en,
        phone=CANARIES.phone,
        media_url="https://example.org/photo.jpg",
        **{"attribute[bags]": "3"},
    )
    assert r.status_code == 201, r.text
    created = r.json()
    assert len(created) == 1
    number = created[0]["service_request_id"]

    one = client.get(f"{V2}/requests/{number}.json")
    assert one.status_code == 200
    [req] = one.json()
    assert req["service_request_id"] == number
    assert req["status"] == "open"
    assert req["service_code"] == "litter"
    assert req["agency_responsible"] == "Sanitation"
    assert req["lat"] == round(lat, 4)
    assert req["media_url"] == "https://example.org/photo.jpg"
    assert "室" not in req["address"]
    assert req["address"]
    for key in ("email", "first_name", "last_name", "phone"):
        assert key not in req
    assert_no_canary(one.text)
    xml = client.get(f"{V2}/requests/{number}.xml")
    root = parse_xml(xml.content)
    assert root.tag == "service_requests"
    assert root.findtext("request/service_request_id") == number
    assert_no_canary(xml.text)
    listed = client.get(f"{V2}/requests.json")
    assert [x["service_request_id"] for x in listed.json()] == [number]
    assert_no_canary(listed.text)

    # the department sees the requester, closes the order: Open311 shows it closed + notes
    staff = make_actor("department_staff", dcity.sanitation)
    orders = client.get("/api/dispatch/work-orders", headers=staff.headers).json()["items"]
    [order] = orders
    assert order["requester_phone"] == CANARIES.phone
    assert order["source"] == "open311"
    assert order["detail"]["attributes"] == {"bags": "3"}
    base = f"/api/dispatch/work-orders/{order['id']}/transitions"
    client.post(f"{base}/accept", headers=staff.headers)
    client.post(f"{base}/close", json={"notes": "cleared"}, headers=staff.headers)
    [req] = client.get(f"{V2}/requests/{number}.json").json()
    assert req["status"] == "closed"
    assert req["status_notes"] == "cleared"


def test_post_xml_and_address_only(client: TestClient, dcity: DispatchCity, api_key: str) -> None:
    r = post(
        client,
        "xml",
        api_key=api_key,
        service_code="road_damage",
        address_string="南京东路100号",
        description="pothole",
    )
    assert r.status_code == 201, r.text
    root = parse_xml(r.content)
    assert root.tag == "service_requests"
    number = root.findtext("request/service_request_id")
    assert number
    [req] = client.get(f"{V2}/requests/{number}.json").json()
    assert req["address"] == "南京东路100号"
    assert req["lat"] is None


def test_get_requests_filters(client: TestClient, dcity: DispatchCity, api_key: str) -> None:
    lat, lng = point_in_station(0)
    numbers = {}
    for code in ("litter", "road_damage"):
        r = post(client, api_key=api_key, service_code=code, lat=str(lat), long=str(lng))
        numbers[code] = r.json()[0]["service_request_id"]

    def got(**params: str) -> list[str]:
        r = client.get(f"{V2}/requests.json", params=params)
        assert r.status_code == 200, r.text
        return sorted(x["service_request_id"] for x in r.json())

    assert got(service_code="litter") == [numbers["litter"]]
    assert got(service_code="litter,road_damage") == sorted(numbers.values())
    assert got(status="open") == sorted(numbers.values())
    assert got(status="closed") == []
    assert got(service_request_id=numbers["road_damage"]) == [numbers["road_damage"]]
    assert got(start_date="2000-01-01T00:00:00Z", end_date="2000-02-01T00:00:00Z") == []
    assert got(start_date="2020-01-01T00:00:00Z") == []


def spec_error(r: Any, code: int, fmt: str = "json") -> str:
    assert r.status_code == code, r.text
    if fmt == "xml":
        assert r.headers["content-type"].startswith("text/xml")
        root = parse_xml(r.content)
        assert root.tag == "errors"
        [error] = root.findall("error")
        assert error.findtext("code") == str(code)
        return error.findtext("description") or ""
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert isinstance(body, list)
    assert len(body) == 1
    assert set(body[0]) == {"code", "description"}
    assert body[0]["code"] == code
    return str(body[0]["description"])


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_post_errors_use_the_spec_format(
    client: TestClient, runtime: Runtime, dcity: DispatchCity, api_key: str, fmt: str
) -> None:
    lat, lng = (str(x) for x in point_in_station(0))
    good = {"service_code": "litter", "lat": lat, "long": lng}
    assert "api_key" in spec_error(post(client, fmt, **good), 403, fmt)
    assert "invalid" in spec_error(post(client, fmt, api_key="sc_nope", **good), 403, fmt)
    staff_key = make_api_key(runtime, dcity, role="citizen")
    spec_error(post(client, fmt, api_key=staff_key, **good), 403, fmt)
    bad_code = {**good, "service_code": "teleport"}
    assert "teleport" in spec_error(post(client, fmt, api_key=api_key, **bad_code), 400, fmt)
    missing = spec_error(post(client, fmt, api_key=api_key, service_code="litter"), 400, fmt)
    assert "location" in missing
    spec_error(post(client, fmt, api_key=api_key, **{**good, "lat": "north"}), 400, fmt)
    spec_error(post(client, fmt, api_key=api_key, **{**good, "lat": "95"}), 400, fmt)
    spec_error(post(client, fmt, api_key=api_key, **{**good, "media_url": "ftp://x"}), 400, fmt)
    assert client.get(f"{V2}/requests.json").json() == []  # nothing was filed


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_get_errors_use_the_spec_format(client: TestClient, dcity: DispatchCity, fmt: str) -> None:
    assert "malformed" in spec_error(client.get(f"{V2}/requests/bad!id.{fmt}"), 400, fmt)
    spec_error(client.get(f"{V2}/requests/WO-0000000000.{fmt}"), 404, fmt)
    spec_error(client.get(f"{V2}/services/teleport.{fmt}"), 404, fmt)
    spec_error(client.get(f"{V2}/requests.{fmt}", params={"status": "pending"}), 400, fmt)
    spec_error(client.get(f"{V2}/requests.{fmt}", params={"start_date": "yesterday"}), 400, fmt)
    spec_error(
        client.get(
            f"{V2}/requests.{fmt}",
            params={"start_date": "2020-01-01T00:00:00Z", "end_date": "2021-01-01T00:00:00Z"},
        ),
        400,
        fmt,
    )
    spec_error(client.get(f"{V2}/no-such-thing.{fmt}"), 404, fmt)
    spec_error(client.get(f"{V2}/services.yaml"), 400)


def test_public_routes_show_no_personal_data(
    client: TestClient, runtime: Runtime, dcity: DispatchCity
) -> None:
    seeded = seed_canaries(runtime)
    assert seeded.path_values["request_id"]
    for fmt in ("json", "xml"):
        listed = client.get(f"{V2}/requests.{fmt}")
        assert listed.status_code == 200
        assert_no_canary(listed.text)
        for number in seeded.path_values["request_id"]:
            one = client.get(f"{V2}/requests/{number}.{fmt}")
            assert one.status_code == 200
            assert_no_canary(one.text)
