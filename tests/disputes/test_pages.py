"""Console pages of the disputes register: list, new, detail with follow-ups and actions."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.alerts.conftest import point_in_station
from tests.conftest import City
from tests.console.conftest import csrf_from, log_in
from tests.console.test_pages import assert_csp_clean
from tests.disputes.conftest import RecordFn

pytestmark = pytest.mark.db


def test_officer_records_follows_up_and_mediates_in_the_console(
    client: TestClient, make_staff: Any, areas: City
) -> None:
    log_in(client, make_staff("officer", areas.stations[0]))
    form = client.get("/console/disputes/new")
    assert form.status_code == 200
    assert_csp_clean(form.text)
    token = csrf_from(form.text)
    lat, lng = point_in_station(0)
    data = {
        "csrf_token": token,
        "category": "water_leak",
        "description": "ceiling drips",
        "building": "B7",
        "address": "幸福路 7 号 301",
        "party_a_name": "张三",
        "party_a_phone": "13900001111",
        "lat": str(lat),
        "lng": str(lng),
        "next_follow_up_at": "2026-06-01T09:30",
    }
    bad = client.post("/console/disputes/new", data={**data, "lat": "north"})
    assert bad.status_code == 422
    assert 'data-error="invalid"' in bad.text
    assert 'value="B7"' in bad.text  # the form keeps what was typed
    r = client.post("/console/disputes/new", data=data, follow_redirects=False)
    assert r.status_code == 303
    url = r.headers["location"]
    page = client.get(url)
    assert page.status_code == 200
    assert "张三" in page.text  # own station: in full
    assert "2026-06-01 09:30:00" in page.text
    assert 'data-transition="mediate"' in page.text
    assert_csp_clean(page.text)
    r = client.post(
        f"{url}/follow-ups",
        data={"csrf_token": token, "kind": "visit", "notes": "plumber booked"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    r = client.post(f"{url}/transitions/mediate", data={"csrf_token": token})
    assert r.status_code == 200  # followed the redirect
    assert 'data-state="mediating"' in r.text
    assert "plumber booked" in r.text
    again = client.post(f"{url}/transitions/mediate", data={"csrf_token": token})
    assert again.status_code == 409
    assert 'data-error="409"' in again.text
    no_notes = client.post(f"{url}/transitions/agree", data={"csrf_token": token})
    assert no_notes.status_code == 422
    listed = client.get("/console/disputes?state=mediating")
    assert url.rsplit("/", 1)[1] in listed.text
    assert 'data-work="disputes"' in listed.text
    assert url.rsplit("/", 1)[1] not in client.get("/console/disputes?state=reported").text


def test_pages_mask_parties_for_the_district_and_hide_other_stations(
    client: TestClient, make_actor: Any, areas: City, record: RecordFn
) -> None:
    dispute = record(0)
    other = record(2)
    supervisor = make_actor("supervisor", areas.districts[0])
    page = client.get(f"/console/disputes/{dispute.id}", headers=supervisor.headers)
    assert page.status_code == 200
    assert "王小明" not in page.text
    assert "13912345678" not in page.text
    assert "data-masked" in page.text
    listed = client.get("/console/disputes", headers=supervisor.headers)
    assert dispute.id in listed.text
    assert "王小明" not in listed.text
    assert other.id not in listed.text
    assert (
        client.get(f"/console/disputes/{other.id}", headers=supervisor.headers).status_code == 404
    )
    analyst = make_actor("analyst", areas.stations[0])
    assert client.get("/console/disputes/new", headers=analyst.headers).status_code == 403
