"""Console work-order queue: list, detail, transition and reply forms, scope, nav link."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from safecity.platform.runtime import Runtime
from tests.dispatch.conftest import DispatchCity
from tests.dispatch.test_service import open_order

pytestmark = pytest.mark.db


def test_queue_detail_and_forms(
    client: TestClient, runtime: Runtime, dcity: DispatchCity, make_actor: Any
) -> None:
    order = open_order(runtime, 0, description="overflowing bins")
    road = open_order(runtime, 2, "road_damage")
    staff = make_actor("department_staff", dcity.sanitation)
    h = {**staff.headers, "Accept-Language": "en"}

    page = client.get("/console/dispatch", headers=h)
    assert page.status_code == 200
    assert f'data-work-order="{order.id}"' in page.text
    assert road.id not in page.text
    assert 'href="/console/dispatch"' in page.text  # the nav entry
    assert "Litter" in page.text

    detail = client.get(f"/console/dispatch/{order.id}", headers=h)
    assert detail.status_code == 200
    assert "overflowing bins" in detail.text
    assert 'data-action="accept"' in detail.text
    assert 'data-action="start"' not in detail.text

    base = f"/console/dispatch/{order.id}"
    r = client.post(f"{base}/transitions/accept", headers=h, follow_redirects=False)
    assert r.status_code == 303
    r = client.post(f"{base}/transitions/accept", headers=h, follow_redirects=False)
    assert r.status_code == 409
    assert 'data-error="409"' in r.text
    r = client.post(
        f"{base}/replies",
        data={"body": "crew sent", "public": "on"},
        headers=h,
        follow_redirects=False,
    )
    assert r.status_code == 303
    r = client.post(f"{base}/transitions/close", data={"notes": ""}, headers=h)
    assert r.status_code == 422
    r = client.post(f"{base}/transitions/close", data={"notes": "done"}, headers=h)
    assert r.status_code == 200  # followed the redirect to the detail page
    assert "crew sent" in r.text
    assert "Closed" in r.text

    assert client.get(f"/console/dispatch/{road.id}", headers=h).status_code == 404
    closed = client.get("/console/dispatch?status=closed", headers=h)
    assert f'data-work-order="{order.id}"' in closed.text
    assert f'data-work-order="{order.id}"' not in client.get("/console/dispatch", headers=h).text


def test_queue_needs_the_read_permission(
    client: TestClient, dcity: DispatchCity, make_actor: Any
) -> None:
    citizen = make_actor("citizen", dcity.stations[0])
    r = client.get("/console/dispatch", headers=citizen.headers)
    assert r.status_code == 403
    r = client.get("/console/dispatch", follow_redirects=False)
    assert r.status_code == 303
    assert "/console/login" in r.headers["location"]


def test_notices_page_is_public_and_empty(client: TestClient, dcity: DispatchCity) -> None:
    r = client.get("/notices", headers={"Accept-Language": "en"})
    assert r.status_code == 200
    assert "No notices." in r.text
