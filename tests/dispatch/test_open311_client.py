"""Open311 with an independent client library: ``georeport`` (PyPI, Apache-2.0) against
the app served by uvicorn on a free port.

``georeport`` lists services, reads definitions and reads requests back, in JSON and in
XML (parsed by its own ``xmltodict``). It has no method to *file* a request, so the POST
is a plain form-encoded ``httpx`` call exactly as the specification describes; the
request is then read back through the library.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import georeport  # type: ignore[import-untyped]  # a dev dependency (pyproject)
import httpx
import pytest

from safecity.app import create_app
from safecity.platform.runtime import Runtime
from tests.dispatch.conftest import DispatchCity, point_in_station
from tests.dispatch.test_open311 import make_api_key
from tests.live_server import serve
from tests.publicguard import CANARIES, assert_no_canary

pytestmark = pytest.mark.db


@pytest.fixture
def live_url(runtime: Runtime, dcity: DispatchCity) -> Iterator[str]:
    with serve(create_app(runtime=runtime)) as url:
        yield f"{url}/open311/v2"


def test_georeport_lists_files_and_reads_back(
    live_url: str, runtime: Runtime, dcity: DispatchCity
) -> None:
    api_key = make_api_key(runtime, dcity)
    client = georeport.GeoReport(live_url, api_key=api_key)
    services = client.get_service_list()
    assert [s["service_code"] for s in services] == ["litter", "road_damage", "streetlight"]
    assert client.get_service_definition("road_damage") == {
        "service_code": "road_damage",
        "attributes": [],
    }

    lat, lng = point_in_station(2)
    r = httpx.post(
        f"{live_url}/requests.json",
        data={
            "api_key": client.api_key,
            "service_code": "road_damage",
            "lat": str(lat),
            "long": str(lng),
            "address_string": CANARIES.flat,
            "description": "pothole by the bus stop",
            "first_name": CANARIES.name,
            "phone": CANARIES.phone,
        },
    )
    assert r.status_code == 201, r.text
    number = r.json()[0]["service_request_id"]

    request: dict[str, Any] = client.get_service_request(number)
    assert request["service_request_id"] == number
    assert request["service_code"] == "road_damage"
    assert request["status"] == "open"
    assert request["agency_responsible"] == "Transport"
    assert request["description"] == "pothole by the bus stop"
    assert_no_canary(str(request))
    listed = client.get_service_requests(service_code="road_damage", status="open")
    assert [x["service_request_id"] for x in listed] == [number]

    xml_client = georeport.GeoReport(live_url, output_format="xml")
    xml_services = xml_client.get_service_list()
    assert [s["service_code"] for s in xml_services] == ["litter", "road_damage", "streetlight"]
    assert xml_client.get_service_definition("litter")["service_code"] == "litter"
    xml_request = xml_client.get_service_request(number)
    assert xml_request["service_request_id"] == number
    assert xml_request["status"] == "open"
    assert_no_canary(str(xml_request))

    with pytest.raises(Exception, match="404"):
        client.get_service_request("WO-0000000000")
