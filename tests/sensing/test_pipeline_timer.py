"""The pipeline's wall clock: an absence rule fires with no new event; last-seen flushes."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from safecity.alerts.models import Alert
from safecity.platform.runtime import Runtime
from safecity.sensing.models import Sensor
from safecity.sensing.pipeline import Pipeline
from safecity.sensing.timer import PipelineTimer
from tests.conftest import City
from tests.sensing.rule_helpers import rule, ruleset
from tests.sensing.test_pipeline import raw, registered  # noqa: F401  (fixture)

pytestmark = pytest.mark.db

NO_DISARM = rule(
    "intrusion-not-disarmed",
    "absence",
    first={"event": "intrusion.detected"},
    then={"event": "door.opened"},
    within="2m",
    lateness="10s",
    key=["sensor_id"],
    severity="high",
    alert={"title": "alerts.intrusion_repeated", "category": "intrusion"},
)


def test_absence_rule_fires_on_the_timer_without_new_events(
    runtime: Runtime,
    registered: City,  # noqa: F811
) -> None:
    pipeline = Pipeline(sessions=runtime.sessions, ruleset=ruleset(NO_DISARM))
    start = datetime.now(UTC)
    result = pipeline.process_raw(
        [raw("ir-1", "intrusion.detected", {"zone_id": "z-1", "armed": True}, seq=1, at=start)]
    )
    assert result.accepted == 1
    assert result.matches == 0
    clock = [start.timestamp() + 60]
    timer = PipelineTimer(lambda: pipeline, lag_s=5, clock=lambda: clock[0])
    assert timer.tick() == 0  # one minute later: not yet due
    clock[0] = start.timestamp() + 2 * 60 + 10 + 6  # within + lateness + lag passed
    assert timer.tick() == 1
    with runtime.sessions() as s:
        alerts = list(s.scalars(select(Alert)))
    assert [(a.category, a.detail["rule_id"]) for a in alerts] == [
        ("intrusion", "intrusion-not-disarmed")
    ]
    assert timer.tick() == 0  # fired once


def test_timer_thread_runs_and_flushes_last_seen_when_traffic_stops(
    runtime: Runtime,
    registered: City,  # noqa: F811
) -> None:
    pipeline = Pipeline(sessions=runtime.sessions, ruleset=ruleset(NO_DISARM))
    pipeline.last_seen.flush_every_s = 0.0
    pipeline.last_seen.pending["ir-1"] = time.time()  # as a batch would leave it
    timer = PipelineTimer(lambda: pipeline, interval_s=0.05)
    stop = threading.Event()
    thread = threading.Thread(target=timer.run, args=(stop,), daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    while timer.ticks < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    stop.set()
    thread.join(5)
    assert timer.ticks >= 2
    with runtime.sessions() as s:
        sensor = s.get(Sensor, "ir-1")
        assert sensor is not None
        assert sensor.last_seen_at is not None
        assert datetime.now(UTC) - sensor.last_seen_at < timedelta(seconds=30)


def test_the_running_app_starts_the_timer(client: TestClient) -> None:
    assert any(t.name == "pipeline-timer" and t.is_alive() for t in threading.enumerate())
