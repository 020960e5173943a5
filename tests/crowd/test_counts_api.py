"""``POST /api/crowd/counts`` and ``GET /api/crowd/hotspots/{code}/counts``: who may post
and read, problem+json for bad batches, scope."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from safecity.crowd import counts
from safecity.crowd.models import CrowdSensorHour
from safecity.platform.runtime import Runtime
from tests.conftest import City
from tests.crowd.test_counts import make_hotspot

pytestmark = pytest.mark.db

HOUR = timedelta(hours=1)
BASE = counts.floor_hour(datetime.now(UTC)) - 3 * HOUR


def reading(sensor: str = "gate-1", hour: datetime = BASE, count: Any = 120, **more: Any) -> dict:
    return {
        "hotspot": "bund",
        "sensor": sensor,
        "hour": hour.isoformat(),
        "count": count,
        "kind": "turnstile",
        **more,
    }


@pytest.fixture
def bund(runtime: Runtime, city: City) -> str:
    with runtime.sessions.begin() as s:
        make_hotspot(s, city.stations[0], "bund", expected_sensors=2)
    return "bund"


def test_a_device_posts_counts_and_an_officer_cannot(
    client: TestClient, city: City, make_actor: Any, bund: str
) -> None:
    device = make_actor("device", city.districts[0], kind="device")
    officer = make_actor("officer", city.stations[0])
    body = [reading(), reading(sensor="gate-2", count=30), reading(hour=BASE + HOUR)]
    assert client.post("/api/crowd/counts", json=body).status_code == 401
    assert client.post("/api/crowd/counts", json=body, headers=officer.headers).status_code == 403
    r = client.post("/api/crowd/counts", json=body, headers=device.headers)
    assert r.status_code == 202, r.text
    assert r.json() == {
        "accepted": 3,
        "stored": 3,
        "duplicates": 0,
        "replaced": 0,
        "hours": 2,
        "hotspots": ["bund"],
    }

    got = client.get(
        "/api/crowd/hotspots/bund/counts",
        params={"start": BASE.isoformat(), "end": (BASE + 3 * HOUR).isoformat()},
        headers=officer.headers,
    )
    assert got.status_code == 200, got.text
    data = got.json()
    assert (data["hotspot"], data["timezone"]) == ("bund", "UTC")
    assert [(h["count"], h["status"], h["sensors"]) for h in data["hours"]] == [
        (150.0, "ok", 2),
        (120.0, "partial", 1),
    ]
    default = client.get("/api/crowd/hotspots/bund/counts", headers=officer.headers)
    assert default.status_code == 200
    assert len(default.json()["hours"]) == 2  # the last 24 hours


def test_unknown_hotspot_is_a_problem_naming_it_and_nothing_is_stored(
    client: TestClient, runtime: Runtime, city: City, make_actor: Any, bund: str
) -> None:
    device = make_actor("device", city.city, kind="device")
    r = client.post(
        "/api/crowd/counts",
        json=[reading(), {**reading(sensor="gate-2"), "hotspot": "atlantis"}],
        headers=device.headers,
    )
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["detail"] == "report 1: unknown hotspot 'atlantis'"
    assert (problem["index"], problem["hotspot"]) == (1, "atlantis")
    with runtime.sessions() as s:
        assert s.scalar(select(func.count()).select_from(CrowdSensorHour)) == 0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            '[{"hotspot": "bund", "sensor": "g", "hour": "%s", "count": NaN, "kind": "wifi"}]',
            "report 0: count nan is not a finite number",
        ),
        (
            '[{"hotspot": "bund", "sensor": "g", "hour": "%s", "count": -3, "kind": "wifi"}]',
            "report 0: negative count -3",
        ),
        (
            '[{"hotspot": "bund", "sensor": "g", "hour": "%s", "count": 1e9, "kind": "wifi"}]',
            "report 0: count 1e+09 is above the limit 10000",
        ),
        (
            '[{"hotspot": "bund", "sensor": "g", "hour": "2026-10-01T10:00:00", "count": 1,'
            ' "kind": "wifi"}]',
            "report 0: hour '2026-10-01T10:00:00' has no UTC offset",
        ),
        (
            '[{"hotspot": "bund", "sensor": "g", "hour": "%s", "count": 1, "kind": "wifi",'
            ' "imsi": "460001234567890"}]',
            "report 0: unknown field 'imsi'",
        ),
        ("[]", "a batch needs at least one report"),
    ],
)
def test_bad_reports_are_refused_with_problem_json(
    client: TestClient, city: City, make_actor: Any, bund: str, content: str, message: str
) -> None:
    device = make_actor("device", city.city, kind="device")
    body = content.replace("%s", BASE.isoformat())
    r = client.post(
        "/api/crowd/counts",
        content=body,
        headers={**device.headers, "Content-Type": "application/json"},
    )
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["detail"].startswith(message)


def test_too_many_reports_is_413(
    client: TestClient, city: City, make_actor: Any, bund: str
) -> None:
    device = make_actor("device", city.city, kind="device")
    body = [reading(sensor=f"s{i}") for i in range(counts.MAX_BATCH + 1)]
    r = client.post("/api/crowd/counts", json=body, headers=device.headers)
    assert r.status_code == 413
    assert r.headers["content-type"].startswith("application/problem+json")


def test_a_device_cannot_report_for_a_hotspot_outside_its_org(
    client: TestClient, city: City, make_actor: Any, bund: str
) -> None:
    elsewhere = make_actor("device", city.districts[1], kind="device")
    r = client.post("/api/crowd/counts", json=[reading()], headers=elsewhere.headers)
    assert r.status_code == 422
    assert r.json()["detail"] == "report 0: unknown hotspot 'bund'"


def test_reading_is_scoped_and_checked(
    client: TestClient, city: City, make_actor: Any, bund: str
) -> None:
    outsider = make_actor("officer", city.stations[2])  # the other district
    officer = make_actor("officer", city.stations[0])
    device = make_actor("device", city.stations[0], kind="device")
    assert (
        client.get("/api/crowd/hotspots/bund/counts", headers=outsider.headers).status_code == 404
    )
    assert client.get("/api/crowd/hotspots/nope/counts", headers=officer.headers).status_code == 404
    assert client.get("/api/crowd/hotspots/bund/counts", headers=device.headers).status_code == 403
    naive = client.get(
        "/api/crowd/hotspots/bund/counts",
        params={"start": "2026-10-01T00:00:00"},
        headers=officer.headers,
    )
    assert naive.status_code == 422
    assert "UTC offset" in naive.json()["detail"]
    too_long = client.get(
        "/api/crowd/hotspots/bund/counts",
        params={"start": "2026-01-01T00:00:00Z", "end": "2026-03-01T00:00:00Z"},
        headers=officer.headers,
    )
    assert too_long.status_code == 422
    backwards = client.get(
        "/api/crowd/hotspots/bund/counts",
        params={"start": "2026-03-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"},
        headers=officer.headers,
    )
    assert backwards.status_code == 422
