"""Versioned rule sets: publish (validated as a whole), audit, hot reload in every process."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from safecity import cli
from safecity.alerts.models import Alert
from safecity.platform.errors import InvalidInput
from safecity.platform.outbox import OutboxEvent
from safecity.platform.runtime import Runtime
from safecity.security import audit
from safecity.security.audit import AuditEntry
from safecity.sensing import rules_cli, rulesets
from safecity.sensing.ingest_api import get_pipeline
from safecity.sensing.pipeline import Pipeline
from safecity.sensing.rulesets import RuleWatcher
from tests.conftest import City
from tests.sensing.test_pipeline import intrusion, registered  # noqa: F401  (fixture)

pytestmark = pytest.mark.db

COUNT_RULE = """
  - id: intrusion-3
    kind: count
    event: intrusion.detected
    count: 3
    within: 30m
    key: [sensor_id]
    severity: high
    alert: {title: alerts.intrusion_repeated, category: intrusion, cooldown: 1m}
"""
SMOKE_RULE = """
  - id: smoke-any
    kind: threshold
    event: smoke.detected
    threshold: {field: payload.obscuration, op: ">=", value: 1}
    key: [sensor_id]
    severity: high
    alert: {title: alerts.smoke_dense, category: fire}
"""
DOOR_RULE = """
  - id: door-forced-any
    kind: threshold
    event: door.forced
    threshold: {field: payload.held_open_s, op: ">=", value: 0}
    key: [sensor_id]
    severity: medium
    alert: {title: alerts.door_forced, category: access}
"""
V1 = "version: 1\nrules:\n" + COUNT_RULE + SMOKE_RULE
V2 = "version: 1\nrules:\n" + COUNT_RULE + DOOR_RULE
BAD = """version: 1
rules:
  - id: intrusion-3
    kind: count
    event: intrusion.detected
    count: 0
    within: -5m
    alert: {title: x, category: intrusion}
  - id: Bad Id
    kind: nonsense
"""


def publish(runtime: Runtime, text: str, note: str = "") -> int:
    with runtime.sessions.begin() as s:
        return rulesets.publish(s, yaml_text=text, actor=audit.SYSTEM, note=note).version


def t(minutes: float) -> datetime:
    return datetime.now(UTC) - timedelta(minutes=20) + timedelta(minutes=minutes)


def test_publish_reloads_this_process_on_the_next_batch_keeping_unchanged_state(
    runtime: Runtime,
    registered: City,  # noqa: F811
) -> None:
    watcher = RuleWatcher(runtime.sessions, interval_s=3600)  # only the local wake-up helps
    pipeline = Pipeline(sessions=runtime.sessions, watcher=watcher)
    assert publish(runtime, V1, "first") == 1
    first = pipeline.process_raw([intrusion(1, t(0)), intrusion(2, t(1))])
    assert first.matches == 0
    assert set(pipeline.engine.rules) == {"intrusion-3", "smoke-any"}
    assert watcher.version_of(pipeline.engine) == 1

    assert publish(runtime, V2, "swap smoke for door") == 2
    second = pipeline.process_raw([intrusion(3, t(2))])
    assert set(pipeline.engine.rules) == {"intrusion-3", "door-forced-any"}
    assert watcher.last_report is not None
    assert watcher.last_report["version"] == 2
    assert watcher.last_report["kept"] == ["intrusion-3"]
    assert watcher.last_report["added"] == ["door-forced-any"]
    assert watcher.last_report["removed"] == ["smoke-any"]
    # the window of the unchanged rule survived the reload: the third event completes it
    assert second.matches == 1
    with runtime.sessions() as s:
        assert [a.category for a in s.scalars(select(Alert))] == ["intrusion"]
        entry = s.scalars(
            select(AuditEntry).where(AuditEntry.action == "sensing.rules.publish")
        ).all()
        assert [e.target_id for e in entry] == ["1", "2"]
        assert entry[1].detail["added"] == ["door-forced-any"]
        assert entry[1].detail["removed"] == ["smoke-any"]
        published = s.scalars(
            select(OutboxEvent).where(OutboxEvent.type == rulesets.PUBLISHED)
        ).all()
        assert [e.payload["version"] for e in published] == [1, 2]


def test_another_process_reloads_within_its_interval(
    runtime: Runtime,
    registered: City,  # noqa: F811
) -> None:
    now = [0.0]
    watcher = RuleWatcher(runtime.sessions, interval_s=5, listen_local=False, clock=lambda: now[0])
    other = Pipeline(sessions=runtime.sessions, watcher=watcher)  # stands for process 2
    publish(runtime, V1)
    other.process_raw([intrusion(1, t(0))])
    assert set(other.engine.rules) == {"intrusion-3", "smoke-any"}
    publish(runtime, V2)
    now[0] = 2.0  # within the interval: not checked yet
    other.process_raw([intrusion(2, t(1))])
    assert "smoke-any" in other.engine.rules
    now[0] = 6.0
    result = other.process_raw([intrusion(3, t(2))])
    assert set(other.engine.rules) == {"intrusion-3", "door-forced-any"}
    assert result.matches == 1  # state of the kept rule carried over
    assert watcher.checks == 2  # one cheap max(version) query per interval


def test_invalid_file_is_rejected_whole_with_every_error(runtime: Runtime) -> None:
    publish(runtime, V1)
    with runtime.sessions.begin() as s, pytest.raises(InvalidInput) as caught:
        rulesets.publish(s, yaml_text=BAD, actor=audit.SYSTEM)
    errors = caught.value.extra["errors"]
    assert len(errors) >= 3
    assert any("rules[0] 'intrusion-3'" in e for e in errors)
    assert any("rules[1]" in e for e in errors)
    with runtime.sessions() as s:
        version, active = rulesets.active(s)
    assert version == 1
    assert {r.id for r in active.rules} == {"intrusion-3", "smoke-any"}


def test_version_zero_is_the_shipped_set(runtime: Runtime) -> None:
    with runtime.sessions() as s:
        version, active = rulesets.active(s)
        zero = rulesets.get_version(s, version=0)
    assert version == 0
    assert len(active) >= 15
    assert zero.active is True
    assert "version: 1" in zero.yaml_text


def test_api_publish_list_show_diff_rollback_and_permissions(
    client: TestClient, make_actor: Any, city: City, runtime: Runtime
) -> None:
    admin = make_actor("admin", city.city)
    analyst = make_actor("analyst", city.city)
    url = "/api/sensing/rules"
    r = client.post(url, json={"yaml_text": V1, "note": "first"}, headers=admin.headers)
    assert r.status_code == 201, r.text
    assert r.json()["version"] == 1
    r = client.post(url, json={"yaml_text": V2}, headers=admin.headers)
    assert r.json()["diff"]["added"] == ["door-forced-any"]

    bad = client.post(url, json={"yaml_text": BAD}, headers=admin.headers)
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("application/problem+json")
    assert len(bad.json()["errors"]) >= 3

    forbidden = client.post(url, json={"yaml_text": V1}, headers=analyst.headers)
    assert forbidden.status_code == 403
    listed = client.get(url, headers=analyst.headers)
    assert listed.status_code == 200
    assert [(v["version"], v["active"]) for v in listed.json()["items"]] == [
        (2, True),
        (1, False),
    ]
    shown = client.get(f"{url}/1", headers=analyst.headers).json()
    assert shown["yaml_text"] == V1
    assert client.get(f"{url}/9", headers=analyst.headers).status_code == 404
    diff = client.get(f"{url}/2/diff", headers=analyst.headers).json()
    assert (diff["kept"], diff["changed"], diff["removed"]) == (
        ["intrusion-3"],
        [],
        ["smoke-any"],
    )

    back = client.post(f"{url}/1/rollback", json={}, headers=admin.headers)
    assert back.status_code == 201
    assert back.json()["version"] == 3
    assert back.json()["diff"]["rollback_of"] == 1
    with runtime.sessions() as s:
        version, active = rulesets.active(s)
    assert version == 3
    assert {r.id for r in active.rules} == {"intrusion-3", "smoke-any"}
    device = make_actor("device", city.city, kind="device")
    assert client.post("/api/ingest/events", json=[], headers=device.headers).status_code == 202
    ingest = get_pipeline(client.app)  # type: ignore[arg-type]
    assert set(ingest.engine.rules) == {"intrusion-3", "smoke-any"}  # the app's pipeline too


def test_cli_publish_and_versions(
    runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rules_cli, "_runtime", lambda: runtime)
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(V1, encoding="utf-8")
    bad.write_text(BAD, encoding="utf-8")
    runner = CliRunner()
    ok = runner.invoke(cli.app, ["rules", "publish", str(good), "--note", "from cli"])
    assert ok.exit_code == 0, ok.output
    assert "published version 1" in ok.output
    failed = runner.invoke(cli.app, ["rules", "publish", str(bad)])
    assert failed.exit_code == 2
    assert "rules[0] 'intrusion-3'" in failed.output
    listed = runner.invoke(cli.app, ["rules", "versions", "--json"])
    assert listed.exit_code == 0, listed.output
    rows = [json.loads(line) for line in listed.output.splitlines()]
    assert [(r["version"], r["note"], r["active"]) for r in rows] == [(1, "from cli", True)]
