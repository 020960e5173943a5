"""Officer terminal: the page, its forms (CSRF) and the live SSE stream."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from safecity.alerts import pages, service
from safecity.platform.db import utcnow
from safecity.platform.runtime import Runtime
from safecity.security import audit
from tests.alerts.conftest import RaiseFn, point_in_station
from tests.conftest import City
from tests.console.conftest import csrf_from, log_in
from tests.console.test_pages import assert_csp_clean

pytestmark = pytest.mark.db


def test_terminal_renders_open_alerts_of_the_station_for_an_officer(
    client: TestClient, raise_one: RaiseFn, make_actor: Any, areas: City
) -> None:
    mine = raise_one(0, key="a")
    other = raise_one(1, key="b")
    officer = make_actor("officer", areas.stations[0])
    r = client.get("/console/terminal", headers=officer.headers)
    assert r.status_code == 200
    assert 'name="viewport" content="width=device-width' in r.text
    assert f'id="alert-{mine.id}"' in r.text
    assert other.id not in r.text
    assert f'action="/console/terminal/alerts/{mine.id}/acknowledge"' in r.text
    assert "/console/static/console/terminal.js" in r.text
    assert 'data-stream-url="/console/terminal/stream"' in r.text
    assert_csp_clean(r.text)


def test_terminal_is_403_for_a_citizen_and_login_for_nobody(
    client: TestClient, make_actor: Any, areas: City
) -> None:
    citizen = make_actor("citizen", areas.stations[0])
    assert client.get("/console/terminal", headers=citizen.headers).status_code == 403
    r = client.get("/console/terminal", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"].startswith("/console/login")
    assert client.get("/console/terminal/stream", headers=citizen.headers).status_code == 403


def test_buttons_post_with_the_session_csrf_token(
    client: TestClient, raise_one: RaiseFn, make_staff: Any, areas: City, runtime: Runtime
) -> None:
    alert = raise_one(0)
    log_in(client, make_staff("officer", areas.stations[0]))
    page = client.get("/console/terminal")
    token = csrf_from(page.text)
    url = f"/console/terminal/alerts/{alert.id}/acknowledge"
    assert client.post(url, data={}, follow_redirects=False).status_code == 403  # no token
    r = client.post(url, data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303
    again = client.post(url, data={"csrf_token": token}, follow_redirects=False)
    assert again.status_code == 409
    assert 'data-error="409"' in again.text
    resolve = f"/console/terminal/alerts/{alert.id}/resolve"
    assert client.post(resolve, data={"csrf_token": token}).status_code == 422
    r = client.post(resolve, data={"csrf_token": token, "notes": "ok"}, follow_redirects=False)
    assert r.status_code == 303
    with runtime.sessions() as s:
        done = service.get_alert(session=s, principal=audit.SYSTEM, alert_id=alert.id)
        assert done.state == "resolved"
    assert alert.id not in client.get("/console/terminal").text


def test_stream_delivers_an_alert_raised_after_connecting(
    client: TestClient,
    runtime: Runtime,
    make_actor: Any,
    areas: City,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pages, "STREAM_SECONDS", 5.0)  # the stream ends by itself
    monkeypatch.setattr(pages, "POLL_SECONDS", 0.05)
    officer = make_actor("officer", areas.stations[0])
    received = b""
    alert_id = None
    deadline = time.monotonic() + 10
    with client.stream("GET", "/console/terminal/stream", headers=officer.headers) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        for chunk in r.iter_bytes():
            received += chunk
            if alert_id is None and b": connected" in received:
                lat, lng = point_in_station(0)
                with runtime.sessions.begin() as s:
                    alert_id = service.raise_alert(
                        s,
                        source="tests",
                        category="smoke",
                        severity="critical",
                        title_key="alerts.title.test",
                        lat=lat,
                        lng=lng,
                        dedup_key="smoke:1",
                        occurred_at=utcnow(),
                    ).id
            if alert_id and alert_id.encode() in received:
                break
            assert len(received) < 1_000_000
            assert time.monotonic() < deadline
    assert alert_id is not None
    events = [b for b in received.decode().split("\n\n") if "event: alert" in b]
    assert events, received
    data = json.loads(
        next(line for line in events[0].splitlines() if line.startswith("data: "))[6:]
    )
    assert data["id"] == alert_id
    assert data["open"] is True
    assert data["state"] == "new"
    assert f'id="alert-{alert_id}"' in data["html"]
    assert "/console/terminal/alerts/" in data["html"]
    assert "csrf_token" in data["html"]


def test_stream_skips_alerts_out_of_scope_and_replays_from_last_event_id(
    client: TestClient,
    raise_one: RaiseFn,
    make_actor: Any,
    areas: City,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pages, "STREAM_SECONDS", 0.3)
    monkeypatch.setattr(pages, "POLL_SECONDS", 0.05)
    since = utcnow()
    mine = raise_one(0, key="a")
    other = raise_one(1, key="b")
    officer = make_actor("officer", areas.stations[0])
    headers = {**officer.headers, "Last-Event-ID": since.isoformat()}
    body = client.get("/console/terminal/stream", headers=headers).text  # ends by itself
    assert mine.id in body
    assert other.id not in body
