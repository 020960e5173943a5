"""HTTP batch ingest: device tokens only, 202 with per-item reasons, alerts raised."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from safecity.alerts.models import Alert
from safecity.platform.runtime import Runtime
from safecity.sensing.ingest_api import MAX_BATCH, get_pipeline
from tests.conftest import City
from tests.sensing.test_pipeline import intrusion, raw, registered  # noqa: F401  (fixture)

pytestmark = pytest.mark.db

URL = "/api/ingest/events"


@pytest.fixture
def device(make_actor: Any, registered: City) -> Any:  # noqa: F811
    return make_actor("device", registered.stations[0], kind="device")


def burst() -> list[dict[str, Any]]:
    t0 = datetime.now(UTC) - timedelta(minutes=2)
    return [intrusion(i, t0 + timedelta(seconds=i)) for i in range(4)]


def test_device_token_gets_202_and_the_alert_is_raised(
    client: TestClient, device: Any, runtime: Runtime
) -> None:
    bad = raw("ghost-1", "intrusion.detected", {"zone_id": "z-7"})
    r = client.post(URL, json=[*burst(), bad, 42], headers=device.headers)
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["accepted"] == 4
    assert body["rejected"] == 2
    assert [(x["index"], x["reason"]) for x in body["rejections"]] == [
        (4, "unknown_sensor"),
        (5, "envelope"),
    ]
    assert body["matches"] == 2
    assert body["alerts"] == 1
    with runtime.sessions() as s:
        alerts = list(s.scalars(select(Alert)))
    assert [(a.category, a.count) for a in alerts] == [("intrusion", 2)]
    pipeline = get_pipeline(client.app)  # type: ignore[arg-type]
    assert pipeline.connector == "http"
    assert pipeline.counters["accepted"] == 4
    assert pipeline.counters["rejected"] == 2
    dead = pipeline.dead_letters.recent()  # type: ignore[attr-defined]
    assert [d.reason for d in dead] == ["unknown_sensor", "envelope"]


def test_one_pipeline_per_app_keeps_windows_across_requests(
    client: TestClient, device: Any, runtime: Runtime
) -> None:
    events = burst()
    for event in events[:3]:  # one event per request: the window lives in the pipeline
        assert client.post(URL, json=[event], headers=device.headers).status_code == 202
    with runtime.sessions() as s:
        assert [a.count for a in s.scalars(select(Alert))] == [1]


def test_officer_token_is_forbidden(
    client: TestClient,
    make_actor: Any,
    registered: City,  # noqa: F811
) -> None:
    officer = make_actor("officer", registered.stations[0])
    r = client.post(URL, json=burst(), headers=officer.headers)
    assert r.status_code == 403
    assert r.headers["content-type"].startswith("application/problem+json")


def test_no_token_is_unauthenticated(client: TestClient, registered: City) -> None:  # noqa: F811
    r = client.post(URL, json=burst())
    assert r.status_code == 401


@pytest.mark.parametrize(
    "content",
    [b"{not json", b'{"sensor_id": "ir-1"}', b'"a string"'],
    ids=["malformed", "object-not-list", "string"],
)
def test_malformed_body_is_422_problem(client: TestClient, device: Any, content: bytes) -> None:
    headers = {**device.headers, "content-type": "application/json"}
    r = client.post(URL, content=content, headers=headers)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")


def test_oversized_batch_is_413(client: TestClient, device: Any, runtime: Runtime) -> None:
    event = raw("ir-1", "sensor.heartbeat", {})
    r = client.post(URL, json=[event] * (MAX_BATCH + 1), headers=device.headers)
    assert r.status_code == 413
    assert r.headers["content-type"].startswith("application/problem+json")


def test_body_over_the_size_limit_is_413(client: TestClient, device: Any) -> None:
    big = [raw("ir-1", "report.submitted", {"text": "x" * 2000})] * 600  # > 1 MiB
    r = client.post(URL, json=big, headers=device.headers)
    assert r.status_code == 413
