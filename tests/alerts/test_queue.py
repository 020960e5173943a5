"""Live alert queue: the map's GeoJSON (scope, shape, filters, cap), the page, the detail
page with its transitions, and the stream that keeps the queue live."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from safecity.alerts import pages as terminal
from safecity.alerts import queue, service
from safecity.platform.db import utcnow
from safecity.platform.runtime import Runtime
from safecity.security import audit
from tests.alerts.conftest import RaiseFn, point_in_station
from tests.conftest import City
from tests.console.conftest import csrf_from, log_in
from tests.console.test_pages import assert_csp_clean

pytestmark = pytest.mark.db


def test_geojson_is_scoped_to_the_officers_station(
    client: TestClient, raise_one: RaiseFn, make_actor: Any, areas: City
) -> None:
    mine = raise_one(0, key="a")
    theirs = raise_one(1, key="b")
    officer = make_actor("officer", areas.stations[0])
    r = client.get("/api/alerts.geojson", headers=officer.headers)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/geo+json")
    ids = [f["id"] for f in r.json()["features"]]
    assert ids == [mine.id]
    assert theirs.id not in r.text
    supervisor = make_actor("supervisor", areas.districts[0])  # district of stations 0, 1
    both = client.get("/api/alerts.geojson", headers=supervisor.headers).json()
    assert {f["id"] for f in both["features"]} == {mine.id, theirs.id}
    other_district = make_actor("officer", areas.stations[2])
    none = client.get("/api/alerts.geojson", headers=other_district.headers).json()
    assert none["features"] == []
    assert client.get("/api/alerts.geojson").status_code == 401
    citizen = make_actor("citizen", areas.stations[0])
    assert client.get("/api/alerts.geojson", headers=citizen.headers).status_code == 403


def test_geojson_shape_has_points_and_no_detail(
    client: TestClient, raise_one: RaiseFn, make_actor: Any, areas: City
) -> None:
    alert = raise_one(0, key="shape", severity="critical")
    officer = make_actor("officer", areas.stations[0])
    body = client.get("/api/alerts.geojson", headers=officer.headers).json()
    assert body["type"] == "FeatureCollection"
    assert body["truncated"] is False
    (f,) = body["features"]
    lat, lng = point_in_station(0)
    assert f["type"] == "Feature"
    assert f["geometry"] == {"type": "Point", "coordinates": [lng, lat]}
    props = f["properties"]
    assert props["severity"] == "critical"
    assert props["state"] == "new"
    assert props["url"] == f"/console/alerts/{alert.id}"
    assert "detail" not in props
    assert "dedup_key" not in props
    assert "S-1" not in json.dumps(body)  # the sensor id in detail stays out


def test_geojson_filters_closed_alerts_and_cap(
    client: TestClient, raise_one: RaiseFn, make_actor: Any, areas: City, runtime: Runtime
) -> None:
    high = raise_one(0, key="h", severity="high")
    low = raise_one(0, key="l", severity="low", category="noise")
    closed = raise_one(0, key="c")
    with runtime.sessions.begin() as s:
        service.transition(
            session=s, principal=audit.SYSTEM, alert_id=closed.id, name="false_alarm", notes="x"
        )
    officer = make_actor("officer", areas.stations[0])
    get = lambda q: [  # noqa: E731
        f["id"]
        for f in client.get(f"/api/alerts.geojson{q}", headers=officer.headers).json()["features"]
    ]
    assert set(get("")) == {high.id, low.id}
    assert get("?severity=low") == [low.id]
    assert get("?category=noise") == [low.id]
    assert get("?state=new&severity=high") == [high.id]
    capped = client.get("/api/alerts.geojson?limit=1", headers=officer.headers).json()
    assert len(capped["features"]) == 1
    assert capped["truncated"] is True
    assert (
        client.get("/api/alerts.geojson?severity=bogus", headers=officer.headers).status_code == 422
    )
    assert (
        client.get("/api/alerts.geojson?state=resolved", headers=officer.headers).status_code == 422
    )


def test_queue_is_sorted_by_severity_then_age(
    runtime: Runtime, raise_one: RaiseFn, areas: City
) -> None:
    now = utcnow()
    old_low = raise_one(0, key="1", severity="low", at=now - timedelta(minutes=30))
    new_high = raise_one(0, key="2", severity="high", at=now - timedelta(minutes=1))
    old_high = raise_one(0, key="3", severity="high", at=now - timedelta(minutes=20))
    crit = raise_one(0, key="4", severity="critical", at=now)
    with runtime.sessions() as s:
        got = queue.queue(session=s, principal=audit.SYSTEM)
    assert [a.id for a in got] == [crit.id, old_high.id, new_high.id, old_low.id]


def test_page_renders_rows_filters_map_and_nav(
    client: TestClient, raise_one: RaiseFn, make_actor: Any, areas: City
) -> None:
    mine = raise_one(0, key="a", severity="critical", category="smoke")
    other = raise_one(1, key="b")
    officer = make_actor("officer", areas.stations[0])
    r = client.get("/console/alerts", headers={**officer.headers, "Accept-Language": "en"})
    assert r.status_code == 200
    assert f'id="row-{mine.id}"' in r.text
    assert other.id not in r.text
    assert "Live alert queue" in r.text
    assert areas.stations[0].name_en in r.text  # station column
    assert 'data-geojson-url="/api/alerts.geojson"' in r.text
    assert 'data-stream-url="/console/alerts/stream"' in r.text
    assert 'data-work="alerts"' in r.text
    assert 'aria-current="page"' in r.text
    assert '<option value="smoke"' in r.text
    assert_csp_clean(r.text)
    filtered = client.get("/console/alerts?severity=low", headers=officer.headers)
    assert mine.id not in filtered.text
    assert 'data-stream-url="/console/alerts/stream?severity=low"' in filtered.text
    bad = client.get("/console/alerts?severity=nope", headers=officer.headers)
    assert bad.status_code == 200
    assert 'data-error="filter"' in bad.text
    citizen = make_actor("citizen", areas.stations[0])
    assert client.get("/console/alerts", headers=citizen.headers).status_code == 403


def test_detail_page_shows_timeline_and_applies_transitions(
    client: TestClient, raise_one: RaiseFn, make_staff: Any, make_actor: Any, areas: City
) -> None:
    alert = raise_one(0, key="d")
    log_in(client, make_staff("officer", areas.stations[0]))
    page = client.get(f"/console/alerts/{alert.id}")
    assert page.status_code == 200
    assert 'data-kind="created"' in page.text
    assert f'action="/console/alerts/{alert.id}/transitions/acknowledge"' in page.text
    assert_csp_clean(page.text)
    token = csrf_from(page.text)
    url = f"/console/alerts/{alert.id}/transitions/acknowledge"
    r = client.post(url, data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == f"/console/alerts/{alert.id}"
    again = client.post(url, data={"csrf_token": token})
    assert again.status_code == 409
    assert 'data-error="409"' in again.text
    resolve = f"/console/alerts/{alert.id}/transitions/resolve"
    assert client.post(resolve, data={"csrf_token": token}).status_code == 422
    done = client.get(f"/console/alerts/{alert.id}")
    assert 'data-state="acknowledged"' in done.text
    assert done.text.count('data-kind="transition"') == 1
    other = raise_one(1, key="e")
    outsider = make_actor("officer", areas.stations[0])
    assert client.get(f"/console/alerts/{other.id}", headers=outsider.headers).status_code == 404


def test_stream_sends_rows_and_features_for_matching_alerts(
    client: TestClient,
    runtime: Runtime,
    make_actor: Any,
    areas: City,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(terminal, "STREAM_SECONDS", 4.0)
    monkeypatch.setattr(terminal, "POLL_SECONDS", 0.05)
    officer = make_actor("officer", areas.stations[0])
    received = b""
    raised = False
    deadline = time.monotonic() + 10
    url = "/console/alerts/stream?severity=critical"
    with client.stream("GET", url, headers=officer.headers) as r:
        assert r.status_code == 200
        for chunk in r.iter_bytes():
            received += chunk
            if not raised and b": connected" in received:
                lat, lng = point_in_station(0)
                with runtime.sessions.begin() as s:
                    for severity, key in (("critical", "c"), ("low", "l")):
                        service.raise_alert(
                            s,
                            source="tests",
                            category="smoke",
                            severity=severity,
                            title_key="alerts.title.test",
                            lat=lat,
                            lng=lng,
                            dedup_key=key,
                            occurred_at=utcnow(),
                        )
                raised = True
            if received.count(b"event: alert") >= 2 or time.monotonic() > deadline:
                break
    events = [
        json.loads(line[len("data: ") :])
        for line in received.decode().splitlines()
        if line.startswith("data: ")
    ]
    shown = {e["severity"]: e for e in events}
    assert shown["critical"]["open"] is True
    assert 'class="aq-row aq-row--critical"' in shown["critical"]["html"]
    assert shown["critical"]["feature"]["geometry"]["type"] == "Point"
    assert shown["low"]["open"] is False
    assert shown["low"]["html"] == ""
