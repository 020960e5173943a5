"""HTTP ingest keys per device group: events from another group's sensors are rejected."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from safecity import cli
from safecity.platform.runtime import Runtime
from safecity.security.audit import AuditEntry
from safecity.sensing import cli as sensors_cli
from safecity.sensing import service as sensors
from safecity.sensing.ingest_api import get_pipeline
from tests.conftest import City
from tests.sensing.test_pipeline import intrusion, raw, registered  # noqa: F401  (fixture)

pytestmark = pytest.mark.db

URL = "/api/ingest/events"


@pytest.fixture
def grouped(runtime: Runtime, registered: City) -> City:  # noqa: F811
    with runtime.sessions.begin() as s:
        sensors.get(session=s, sensor_id="ir-1").device_group = "estate-a"
        sensors.get(session=s, sensor_id="smk-1").device_group = "estate-b"
    return registered


def smoke() -> dict[str, Any]:
    return raw("smk-1", "smoke.detected", {"zone_id": "z", "obscuration": 1, "unit": "%/m"})


def test_a_group_key_posts_only_for_its_group(
    client: TestClient, make_actor: Any, grouped: City
) -> None:
    admin = make_actor("admin", grouped.city)
    r = client.post(
        "/api/sensing/keys", json={"device_group": "estate-a", "name": "gw"}, headers=admin.headers
    )
    assert r.status_code == 201, r.text
    key = r.json()
    assert key["device_group"] == "estate-a"
    headers = {"Authorization": f"Bearer {key['token']}"}
    t0 = datetime.now(UTC) - timedelta(minutes=1)
    batch = [intrusion(1, t0), smoke(), raw("ghost-9", "intrusion.detected", {"zone_id": "z-7"}), 7]
    r = client.post(URL, json=batch, headers=headers)
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["accepted"] == 1
    assert [(x["index"], x["reason"]) for x in body["rejections"]] == [
        (1, "wrong_group"),
        (2, "unknown_sensor"),
        (3, "envelope"),
    ]
    pipeline = get_pipeline(client.app)  # type: ignore[arg-type]
    letters = pipeline.dead_letters.recent()  # type: ignore[attr-defined]
    assert [(d.reason, d.sensor_id) for d in letters] == [
        ("wrong_group", "smk-1"),
        ("unknown_sensor", "ghost-9"),
        ("envelope", None),
    ]

    # a device principal without a group binding posts for any registered sensor
    plain = make_actor("device", grouped.stations[0], kind="device")
    r = client.post(URL, json=[smoke()], headers=plain.headers)
    assert r.json()["accepted"] == 1

    officer = make_actor("officer", grouped.stations[0])
    denied = client.post("/api/sensing/keys", json={"device_group": "x"}, headers=officer.headers)
    assert denied.status_code == 403
    bad = client.post("/api/sensing/keys", json={"device_group": "a b"}, headers=admin.headers)
    assert bad.status_code == 422


def test_cli_issues_a_key_that_ingest_accepts(
    client: TestClient, runtime: Runtime, grouped: City, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sensors_cli, "_runtime", lambda: runtime)
    out = CliRunner().invoke(cli.app, ["sensors", "issue-key", "--group", "estate-b"])
    assert out.exit_code == 0, out.output
    token = [line for line in out.output.splitlines() if line.startswith("sct_")]
    assert token, out.output
    headers = {"Authorization": f"Bearer {token[-1]}"}
    t0 = datetime.now(UTC) - timedelta(minutes=1)
    r = client.post(URL, json=[smoke(), intrusion(1, t0)], headers=headers)
    assert r.status_code == 202, r.text
    assert [x["reason"] for x in r.json()["rejections"]] == ["wrong_group"]
    with runtime.sessions() as s:
        actions = s.scalars(select(AuditEntry.action)).all()
    assert "sensing.key.issue" in actions
