"""``safecity sensors mqtt-worker`` end to end: a private Mosquitto → connector → pipeline
(the published rules) → alerts and durable dead letters; a red-light crossing → a display
command."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from rich.console import Console
from sqlalchemy import func, select

from safecity.alerts.models import Alert
from safecity.platform.runtime import Runtime
from safecity.sensing import service as sensors
from safecity.sensing.connectors.mqtt import MqttConfig
from safecity.sensing.mqtt_worker import run_mqtt_worker
from safecity.sensing.ops_models import DeadLetterRow
from tests.conftest import City
from tests.sensing.conftest import Broker, publish_events

pytestmark = [pytest.mark.db, pytest.mark.services]


def wait_until(check: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def test_worker_turns_broker_traffic_into_alerts(
    runtime: Runtime, city: City, mosquitto: Callable[..., Broker]
) -> None:
    broker = mosquitto()
    with runtime.sessions.begin() as s:
        sensors.register(
            session=s, actor=None, sensor_id="ir-9", type="intrusion", lng=121.405, lat=31.205
        )
    stop, ready = threading.Event(), threading.Event()
    result: dict[str, dict[str, int]] = {}
    config = MqttConfig(port=broker.port, client_id="worker-test", batch_max_wait_s=0.02)
    worker = threading.Thread(
        target=lambda: result.update(
            counters=run_mqtt_worker(
                config,
                status_every=0,
                console=Console(quiet=True),
                stop=stop,
                runtime=runtime,
                ready=ready,
            )
        ),
        daemon=True,
    )
    worker.start()
    now = datetime.now(UTC).isoformat()
    topic = "safecity/sensors/ir-9/intrusion.detected"
    bodies = [
        (
            topic,
            json.dumps(
                {
                    "time": now,
                    "seq": i,
                    "payload": {"zone_id": "z9", "detector": "pir", "armed": True},
                }
            ).encode(),
        )
        for i in range(3)
    ]
    bodies.append((topic, b"{not json"))
    bodies.append(("safecity/sensors/ghost/intrusion.detected", bodies[0][1]))
    try:
        assert ready.wait(20), "the worker did not subscribe"
        published = publish_events(broker.port, 0, bodies=bodies)
        assert published.failures == []

        def alerted() -> bool:
            with runtime.sessions() as s:
                return bool(s.scalar(select(func.count()).select_from(Alert)))

        found = wait_until(alerted)
    finally:
        stop.set()
        worker.join(30)
    assert not worker.is_alive()
    counters = result["counters"]
    assert found, f"no alert from three intrusions: {counters}"
    assert counters["received"] == 5
    assert counters["accepted"] == 3
    assert counters["acked"] == 5
    with runtime.sessions() as s:
        alert = s.scalars(select(Alert)).one()
        reasons = sorted(s.scalars(select(DeadLetterRow.reason)))
    assert alert.category == "intrusion"
    assert alert.detail["window_count"] == 3
    assert reasons == ["malformed", "unknown_sensor"]
